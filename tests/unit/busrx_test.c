/*
 * busrx_test.c - the bus sequence check: the first number of an epoch is
 * a baseline, a MSG one past the last is no loss, a jump counts the MSGs
 * between, a heartbeat's number is one already sent, repeats and old
 * numbers are ignored, and a new epoch (a restarted bridge) starts over.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "busrx.h"

static void
the_first_number_of_an_epoch_is_a_baseline(void **state)
{
	struct busrx_seq s = {0};

	assert_true(busrx_seq_epoch(&s, 7));
	assert_false(busrx_seq_epoch(&s, 7));
	assert_int_equal(busrx_seq_next(&s, 1000, true), 0);
	assert_int_equal(busrx_seq_next(&s, 1001, true), 0);
	assert_int_equal(busrx_seq_next(&s, 1002, true), 0);
}

static void
a_jump_counts_the_messages_between(void **state)
{
	struct busrx_seq s = {0};

	busrx_seq_epoch(&s, 1);
	assert_int_equal(busrx_seq_next(&s, 1, true), 0);
	assert_int_equal(busrx_seq_next(&s, 5, true), 3); /* 2, 3, 4 */
	assert_int_equal(busrx_seq_next(&s, 6, true), 0);
}

static void
a_heartbeat_carries_the_last_number_sent(void **state)
{
	struct busrx_seq s = {0};

	busrx_seq_epoch(&s, 1);
	/* A heartbeat first: its number is the baseline. */
	assert_int_equal(busrx_seq_next(&s, 10, false), 0);
	assert_int_equal(busrx_seq_next(&s, 11, true), 0);
	/* Nothing new sent: no loss. */
	assert_int_equal(busrx_seq_next(&s, 11, false), 0);
	/* 12 and 13 sent, never seen. */
	assert_int_equal(busrx_seq_next(&s, 13, false), 2);
	assert_int_equal(busrx_seq_next(&s, 14, true), 0);
}

static void
repeats_and_old_numbers_are_ignored(void **state)
{
	struct busrx_seq s = {0};

	busrx_seq_epoch(&s, 1);
	busrx_seq_next(&s, 20, true);
	assert_int_equal(busrx_seq_next(&s, 20, true), 0);
	assert_int_equal(busrx_seq_next(&s, 3, true), 0);
	assert_int_equal(s.last_seq, 20);
	assert_int_equal(busrx_seq_next(&s, 21, true), 0);
}

static void
a_new_epoch_starts_over(void **state)
{
	struct busrx_seq s = {0};

	busrx_seq_epoch(&s, 1);
	busrx_seq_next(&s, 500, true);
	/* A restarted bridge numbers from 1 again: not a gap, not old. */
	assert_true(busrx_seq_epoch(&s, 2));
	assert_int_equal(busrx_seq_next(&s, 1, true), 0);
	assert_int_equal(busrx_seq_next(&s, 2, true), 0);
	assert_int_equal(busrx_seq_next(&s, 4, true), 1);
	assert_int_equal(s.epoch, 2);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(the_first_number_of_an_epoch_is_a_baseline),
	    cmocka_unit_test(a_jump_counts_the_messages_between),
	    cmocka_unit_test(a_heartbeat_carries_the_last_number_sent),
	    cmocka_unit_test(repeats_and_old_numbers_are_ignored),
	    cmocka_unit_test(a_new_epoch_starts_over),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
