/*
 * connq_test.c - the per-connection frame ring: FIFO order across growth
 * and wrap-around, byte accounting, the bound check, drops, the slow-client
 * policy of connq_offer() (close vs drop_oldest, byte bounds, high-water
 * mark), and that every reference it takes is given back.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "connq.h"

static struct frame *
mk(size_t len)
{
	struct frame *f = frame_new(len, false);

	assert_non_null(f);
	memset(frame_data(f), 'a', len);
	f->len = (uint32_t)len;
	return f;
}

static void
an_idle_queue_allocates_nothing(void **state)
{
	struct connq q;

	connq_init(&q, 100);
	assert_null(q.ring);
	assert_true(connq_empty(&q));
	assert_null(connq_peek(&q));
	assert_null(connq_pop(&q));
	assert_int_equal(connq_drop_oldest(&q), 0);
	connq_fini(&q);
}

static void
frames_come_out_in_order_across_growth_and_wrap(void **state)
{
	struct frame *fs[100];
	struct connq q;
	int i, out = 0;

	connq_init(&q, 1 << 20);
	for (i = 0; i < 100; i++)
		fs[i] = mk((size_t)i + 1);
	/* Interleave pushes and pops so head wraps while the ring grows. */
	for (i = 0; i < 100; i++) {
		assert_int_equal(connq_push(&q, fs[i]), 0);
		assert_int_equal(fs[i]->refs, 2);
		if (i % 3 == 2) {
			struct frame *f = connq_pop(&q);

			assert_ptr_equal(f, fs[out++]);
			frame_unref(f);
		}
	}
	while (!connq_empty(&q)) {
		struct frame *f = connq_pop(&q);

		assert_ptr_equal(f, fs[out++]);
		frame_unref(f);
	}
	assert_int_equal(out, 100);
	assert_int_equal(q.bytes, 0);
	for (i = 0; i < 100; i++) {
		assert_int_equal(fs[i]->refs, 1);
		frame_unref(fs[i]);
	}
	connq_fini(&q);
}

static void
connq_at_indexes_from_the_oldest_across_wrap(void **state)
{
	struct frame *fs[20];
	struct connq q;
	uint32_t j;
	int i, out = 0;

	connq_init(&q, 1 << 20);
	for (i = 0; i < 20; i++)
		fs[i] = mk((size_t)i + 1);
	/* 8 slots, then pops and pushes so the live range wraps. */
	for (i = 0; i < 6; i++)
		connq_push(&q, fs[i]);
	for (i = 0; i < 4; i++)
		frame_unref(connq_pop(&q));
	out = 4;
	for (i = 6; i < 20; i++) {
		connq_push(&q, fs[i]);
		for (j = 0; j < q.count; j++)
			assert_ptr_equal(connq_at(&q, j), fs[out + (int)j]);
	}
	connq_fini(&q);
	for (i = 0; i < 20; i++) {
		assert_int_equal(fs[i]->refs, 1);
		frame_unref(fs[i]);
	}
}

static void
bytes_are_counted_and_the_bound_is_checked(void **state)
{
	struct frame *a = mk(40), *b = mk(50);
	struct connq q;

	connq_init(&q, 100);
	assert_true(connq_fits(&q, 100));
	assert_false(connq_fits(&q, 101));
	connq_push(&q, a);
	connq_push(&q, b);
	assert_int_equal(q.bytes, 90);
	assert_true(connq_fits(&q, 10));
	assert_false(connq_fits(&q, 11));
	assert_int_equal(connq_drop_oldest(&q), 1);
	assert_int_equal(q.bytes, 50);
	assert_int_equal(a->refs, 1);
	assert_ptr_equal(connq_peek(&q), b);
	frame_unref(a);
	frame_unref(b);
	connq_fini(&q);
}

static void
clear_and_fini_release_every_reference(void **state)
{
	struct frame *f = mk(10);
	struct connq q;
	int i;

	connq_init(&q, 1000);
	for (i = 0; i < 20; i++)
		connq_push(&q, f);
	assert_int_equal(f->refs, 21);
	assert_int_equal(connq_clear(&q), 20);
	assert_int_equal(f->refs, 1);
	assert_int_equal(q.bytes, 0);
	for (i = 0; i < 5; i++)
		connq_push(&q, f);
	connq_fini(&q);
	assert_int_equal(f->refs, 1);
	assert_null(q.ring);
	frame_unref(f);
}

static void
a_large_ring_is_freed_once_drained(void **state)
{
	struct frame *f = mk(1);
	struct connq q;
	int i;

	connq_init(&q, 1 << 20);
	for (i = 0; i < 1000; i++)
		connq_push(&q, f);
	assert_true(q.cap >= 1000);
	while (connq_drop_oldest(&q))
		;
	assert_null(q.ring);
	assert_int_equal(q.cap, 0);
	connq_push(&q, f);
	assert_int_equal(connq_clear(&q), 1);
	connq_fini(&q);
	frame_unref(f);
}

static void
offer_queues_what_fits_and_raises_the_hwm(void **state)
{
	struct frame *a = mk(40), *b = mk(50);
	struct connq q;
	uint64_t hwm = 0;
	uint32_t dropped = 99;

	connq_init(&q, 100);
	assert_int_equal(
	    connq_offer(&q, a, false, &dropped, &hwm), CONNQ_QUEUED);
	assert_int_equal(dropped, 0);
	assert_int_equal(hwm, 40);
	assert_int_equal(
	    connq_offer(&q, b, false, &dropped, &hwm), CONNQ_QUEUED);
	assert_int_equal(hwm, 90);
	assert_int_equal(a->refs, 2);
	frame_unref(connq_pop(&q));
	/* The mark stays at the largest queue seen. */
	assert_int_equal(
	    connq_offer(&q, a, false, &dropped, &hwm), CONNQ_QUEUED);
	assert_int_equal(q.bytes, 90);
	assert_int_equal(hwm, 90);
	/* A bound reached exactly still fits. */
	connq_fini(&q);
	connq_init(&q, 90);
	hwm = 0;
	assert_int_equal(
	    connq_offer(&q, a, false, &dropped, &hwm), CONNQ_QUEUED);
	assert_int_equal(
	    connq_offer(&q, b, false, &dropped, &hwm), CONNQ_QUEUED);
	assert_int_equal(hwm, 90);
	connq_fini(&q);
	assert_int_equal(a->refs, 1);
	assert_int_equal(b->refs, 1);
	frame_unref(a);
	frame_unref(b);
}

static void
offer_with_close_policy_clears_and_overflows(void **state)
{
	struct frame *f = mk(40), *big = mk(30);
	struct connq q;
	uint64_t hwm = 0;
	uint32_t dropped = 0;

	connq_init(&q, 100);
	assert_int_equal(
	    connq_offer(&q, f, false, &dropped, &hwm), CONNQ_QUEUED);
	assert_int_equal(
	    connq_offer(&q, f, false, &dropped, &hwm), CONNQ_QUEUED);
	/* 80 + 30 > 100: nothing queued, both old frames and this one lost. */
	assert_int_equal(
	    connq_offer(&q, big, false, &dropped, &hwm), CONNQ_OVERFLOW);
	assert_int_equal(dropped, 3);
	assert_true(connq_empty(&q));
	assert_int_equal(q.bytes, 0);
	assert_int_equal(hwm, 80);
	assert_int_equal(f->refs, 1);
	assert_int_equal(big->refs, 1);
	connq_fini(&q);
	frame_unref(f);
	frame_unref(big);
}

static void
offer_with_drop_oldest_drops_until_it_fits(void **state)
{
	struct frame *fs[4], *big = mk(60), *huge = mk(101);
	struct connq q;
	uint64_t hwm = 0;
	uint32_t dropped = 0;
	int i;

	connq_init(&q, 100);
	for (i = 0; i < 4; i++) {
		fs[i] = mk(25);
		assert_int_equal(
		    connq_offer(&q, fs[i], true, &dropped, &hwm), CONNQ_QUEUED);
	}
	/* 100 queued; 60 more needs the three oldest gone. */
	assert_int_equal(
	    connq_offer(&q, big, true, &dropped, &hwm), CONNQ_QUEUED);
	assert_int_equal(dropped, 3);
	assert_int_equal(q.count, 2);
	assert_ptr_equal(connq_at(&q, 0), fs[3]);
	assert_ptr_equal(connq_at(&q, 1), big);
	assert_int_equal(q.bytes, 85);
	assert_int_equal(hwm, 100);
	for (i = 0; i < 3; i++)
		assert_int_equal(fs[i]->refs, 1);
	/* Larger than the bound on its own: everything goes, it too. */
	assert_int_equal(
	    connq_offer(&q, huge, true, &dropped, &hwm), CONNQ_DROPPED);
	assert_int_equal(dropped, 3);
	assert_true(connq_empty(&q));
	assert_int_equal(huge->refs, 1);
	connq_fini(&q);
	for (i = 0; i < 4; i++)
		frame_unref(fs[i]);
	frame_unref(big);
	frame_unref(huge);
}

int
main(void)
{
	static const struct CMUnitTest tests[] = {
	    cmocka_unit_test(an_idle_queue_allocates_nothing),
	    cmocka_unit_test(frames_come_out_in_order_across_growth_and_wrap),
	    cmocka_unit_test(connq_at_indexes_from_the_oldest_across_wrap),
	    cmocka_unit_test(bytes_are_counted_and_the_bound_is_checked),
	    cmocka_unit_test(clear_and_fini_release_every_reference),
	    cmocka_unit_test(a_large_ring_is_freed_once_drained),
	    cmocka_unit_test(offer_queues_what_fits_and_raises_the_hwm),
	    cmocka_unit_test(offer_with_close_policy_clears_and_overflows),
	    cmocka_unit_test(offer_with_drop_oldest_drops_until_it_fits),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
