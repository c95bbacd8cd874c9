/*
 * rate_test.c - the per-connection token bucket and abuse detection.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "rate.h"

static void
a_full_bucket_allows_a_burst_then_rejects(void **state)
{
	struct rate r;
	int i;

	rate_init(&r, 10, 5, 1000);
	for (i = 0; i < 5; i++)
		assert_int_equal(rate_take(&r, 1000), RATE_OK);
	assert_int_equal(rate_take(&r, 1000), RATE_REJECT);
}

static void
tokens_refill_at_the_rate_up_to_the_burst(void **state)
{
	struct rate r;
	int i;

	rate_init(&r, 10, 5, 0);
	for (i = 0; i < 5; i++)
		rate_take(&r, 0);
	assert_int_equal(rate_take(&r, 50), RATE_REJECT); /* 0.5 token */
	assert_int_equal(rate_take(&r, 100), RATE_OK);    /* 1 token */
	assert_int_equal(rate_take(&r, 100), RATE_REJECT);
	/* A long pause refills only up to the burst. */
	for (i = 0; i < 5; i++)
		assert_int_equal(rate_take(&r, 100000), RATE_OK);
	assert_int_equal(rate_take(&r, 100000), RATE_REJECT);
}

static void
three_bursts_of_rejections_within_the_window_is_abuse(void **state)
{
	struct rate r;
	int i;

	rate_init(&r, 1, 2, 0);
	rate_take(&r, 0);
	rate_take(&r, 0);
	for (i = 0; i < 5; i++)
		assert_int_equal(rate_take(&r, 10), RATE_REJECT);
	assert_int_equal(rate_take(&r, 10), RATE_ABUSE);
}

static void
rejections_spread_over_windows_are_not_abuse(void **state)
{
	struct rate r;
	uint64_t t = 0;
	int i, w;

	rate_init(&r, 1, 2, 0);
	rate_take(&r, 0);
	rate_take(&r, 0);
	for (w = 0; w < 5; w++) {
		/* Drain what refilled, then be rejected 4 times (< 3 x 2). */
		while (rate_take(&r, t) == RATE_OK)
			;
		for (i = 0; i < 3; i++)
			assert_int_equal(rate_take(&r, t), RATE_REJECT);
		t += RATE_ABUSE_WINDOW_MS + 1;
	}
}

static void
a_zero_rate_disables_limiting(void **state)
{
	struct rate r;
	int i;

	rate_init(&r, 0, 1, 0);
	for (i = 0; i < 1000; i++)
		assert_int_equal(rate_take(&r, 0), RATE_OK);
}

int
main(void)
{
	static const struct CMUnitTest tests[] = {
	    cmocka_unit_test(a_full_bucket_allows_a_burst_then_rejects),
	    cmocka_unit_test(tokens_refill_at_the_rate_up_to_the_burst),
	    cmocka_unit_test(
		three_bursts_of_rejections_within_the_window_is_abuse),
	    cmocka_unit_test(rejections_spread_over_windows_are_not_abuse),
	    cmocka_unit_test(a_zero_rate_disables_limiting),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
