/*
 * keepalive_test.c - pings and idle hang-ups: who is due when, in O(1)
 * lists that stay sorted by construction.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "keepalive.h"

#define N 8

struct rec {
	struct keepalive_entry e[N];
	int pinged[N], hung[N];
	int order[64], n_order; /* entry index, negative for hang-ups */
};

static int
idx(struct rec *r, struct keepalive_entry *e)
{
	return (int)(e - r->e);
}

static void
on_ping(struct keepalive_entry *e, void *arg)
{
	struct rec *r = arg;

	r->pinged[idx(r, e)]++;
	r->order[r->n_order++] = idx(r, e);
}

static void
on_hangup(struct keepalive_entry *e, void *arg)
{
	struct rec *r = arg;

	r->hung[idx(r, e)]++;
	r->order[r->n_order++] = -1 - idx(r, e);
}

static uint32_t
tick(struct keepalive *k, struct rec *r, uint64_t now)
{
	bool more;

	return keepalive_tick(k, now, on_ping, on_hangup, r, &more);
}

static void
a_silent_connection_is_pinged_then_hung_up(void **state)
{
	struct keepalive k;
	struct rec r = {0};

	keepalive_init(&k, 25, 60);
	keepalive_add(&k, &r.e[0], 1000);
	assert_int_equal(tick(&k, &r, 1000 + 24999), 0);
	assert_int_equal(tick(&k, &r, 1000 + 25000), 1);
	assert_int_equal(r.pinged[0], 1);
	assert_true(r.e[0].pinged);
	/* Pinged once only, however many ticks pass before the deadline. */
	assert_int_equal(tick(&k, &r, 1000 + 40000), 0);
	assert_int_equal(tick(&k, &r, 1000 + 59999), 0);
	assert_int_equal(tick(&k, &r, 1000 + 60000), 1);
	assert_int_equal(r.pinged[0], 1);
	assert_int_equal(r.hung[0], 1);
	/* No longer tracked: nothing more, and del is harmless. */
	assert_int_equal(tick(&k, &r, 1000 + 999999), 0);
	keepalive_del(&r.e[0]);
}

static void
a_pong_restarts_the_interval(void **state)
{
	struct keepalive k;
	struct rec r = {0};

	keepalive_init(&k, 25, 60);
	keepalive_add(&k, &r.e[0], 0);
	assert_int_equal(tick(&k, &r, 25000), 1);
	keepalive_valid(&k, &r.e[0], 26000);
	assert_false(r.e[0].pinged);
	/* Its old deadline (60 s) is gone with the ping it answered. */
	assert_int_equal(tick(&k, &r, 50999), 0);
	assert_int_equal(tick(&k, &r, 51000), 1); /* pinged again */
	assert_int_equal(tick(&k, &r, 60000), 0);
	assert_int_equal(r.pinged[0], 2);
	assert_int_equal(r.hung[0], 0);
	assert_int_equal(tick(&k, &r, 86000), 1);
	assert_int_equal(r.hung[0], 1);
}

static void
connections_are_served_in_the_order_they_fall_due(void **state)
{
	struct keepalive k;
	struct rec r = {0};

	keepalive_init(&k, 10, 30);
	for (int i = 0; i < 4; i++)
		keepalive_add(&k, &r.e[i], (uint64_t)i * 1000);
	/* 1 answers its ping late, 3 early: 3 moves behind 1. */
	assert_int_equal(tick(&k, &r, 13000), 4);
	keepalive_valid(&k, &r.e[3], 14000);
	keepalive_valid(&k, &r.e[1], 15000);
	r.n_order = 0;
	/* 0 and 2 hang up (deadlines 30 and 32 s), then 3 and 1 are
	 * pinged (valid 14 and 15 s) in that order. */
	assert_int_equal(tick(&k, &r, 32000), 4);
	assert_int_equal(r.n_order, 4);
	assert_int_equal(r.order[0], -1);
	assert_int_equal(r.order[1], -3);
	assert_int_equal(r.order[2], 3);
	assert_int_equal(r.order[3], 1);
}

static void
a_closing_connection_leaves_and_is_never_called(void **state)
{
	struct keepalive k;
	struct rec r = {0};

	keepalive_init(&k, 1, 3);
	keepalive_add(&k, &r.e[0], 0);
	keepalive_add(&k, &r.e[1], 0);
	keepalive_del(&r.e[0]);
	keepalive_valid(&k, &r.e[0], 500); /* after del: stays out */
	assert_int_equal(tick(&k, &r, 1000), 1);
	assert_int_equal(tick(&k, &r, 3000), 1);
	assert_int_equal(r.pinged[0] + r.hung[0], 0);
	assert_int_equal(r.pinged[1], 1);
	assert_int_equal(r.hung[1], 1);
}

static void
a_tick_that_fell_behind_hangs_up_without_pinging(void **state)
{
	struct keepalive k;
	struct rec r = {0};

	keepalive_init(&k, 1, 3);
	keepalive_add(&k, &r.e[0], 0);
	assert_int_equal(tick(&k, &r, 5000), 1);
	assert_int_equal(r.pinged[0], 0);
	assert_int_equal(r.hung[0], 1);
}

static void
count(struct keepalive_entry *e, void *arg)
{
	(*(uint32_t *)arg)++;
}

static void
a_tick_does_a_bounded_amount_of_work(void **state)
{
	static struct keepalive_entry many[KEEPALIVE_TICK_MAX + 10];
	struct keepalive k;
	uint32_t calls = 0;
	bool more;

	keepalive_init(&k, 1, 3);
	for (size_t i = 0; i < KEEPALIVE_TICK_MAX + 10; i++)
		keepalive_add(&k, &many[i], 0);
	assert_int_equal(keepalive_tick(&k, 1000, count, count, &calls, &more),
	    KEEPALIVE_TICK_MAX);
	assert_true(more);
	assert_int_equal(
	    keepalive_tick(&k, 1000, count, count, &calls, &more), 10);
	assert_false(more);
	assert_int_equal(calls, KEEPALIVE_TICK_MAX + 10);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(a_silent_connection_is_pinged_then_hung_up),
	    cmocka_unit_test(a_pong_restarts_the_interval),
	    cmocka_unit_test(connections_are_served_in_the_order_they_fall_due),
	    cmocka_unit_test(a_closing_connection_leaves_and_is_never_called),
	    cmocka_unit_test(a_tick_that_fell_behind_hangs_up_without_pinging),
	    cmocka_unit_test(a_tick_does_a_bounded_amount_of_work),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
