/*
 * workers_test.c - the worker registry (bridge/workers.c): identity by
 * (slot, gen), pipes, the forget callback, expiry, counters.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "workers.h"

struct forgotten {
	int n;
	uint32_t slot[8];
	char why[8][16];
};

static void
forget_cb(void *arg, struct worker *w, const char *why)
{
	struct forgotten *f = arg;

	assert_true(f->n < 8);
	f->slot[f->n] = w->slot;
	strncpy(f->why[f->n], why, sizeof(f->why[0]) - 1);
	f->n++;
}

static struct up_worker
uw(uint32_t slot, uint32_t gen, uint32_t pid)
{
	return (struct up_worker){slot, gen, pid};
}

static void
a_worker_is_known_by_slot_and_generation(void **state)
{
	struct forgotten f = {0};
	struct workers *ws = workers_new(forget_cb, &f);
	struct up_worker a = uw(1, 1, 100), b = uw(1, 2, 101);
	struct worker *wa = workers_touch(ws, &a, 7, 1000);
	struct worker *wb = workers_touch(ws, &b, 8, 1000);

	assert_non_null(wa);
	assert_ptr_not_equal(wa, wb);
	assert_ptr_equal(workers_touch(ws, &a, 7, 1500), wa);
	assert_int_equal(wa->last_seen_ms, 1500);
	assert_int_equal(wa->pid, 100);
	assert_int_equal(workers_count(ws), 2);
	workers_free(ws);
	assert_int_equal(f.n, 0); /* freeing calls nothing back */
}

static void
a_closed_pipe_finds_its_worker_only_while_current(void **state)
{
	struct forgotten f = {0};
	struct workers *ws = workers_new(forget_cb, &f);
	struct up_worker a = uw(1, 1, 100);
	struct worker *w = workers_touch(ws, &a, 7, 0);

	assert_ptr_equal(workers_by_pipe(ws, 7), w);
	workers_touch(ws, &a, 9, 0); /* redialled */
	assert_null(workers_by_pipe(ws, 7));
	assert_ptr_equal(workers_by_pipe(ws, 9), w);
	assert_null(workers_by_pipe(ws, 3));
	workers_forget(ws, w, "pipe_closed");
	assert_int_equal(f.n, 1);
	assert_string_equal(f.why[0], "pipe_closed");
	assert_null(workers_by_pipe(ws, 9));
	assert_int_equal(workers_count(ws), 0);
	workers_free(ws);
}

static void
silent_workers_expire(void **state)
{
	struct forgotten f = {0};
	struct workers *ws = workers_new(forget_cb, &f);
	struct up_worker a = uw(1, 1, 1), b = uw(2, 1, 2), c = uw(3, 1, 3);

	workers_touch(ws, &a, 1, 1000);
	workers_touch(ws, &b, 2, 4000);
	workers_touch(ws, &c, 3, 1000);
	workers_expire(ws, 6000, 5000);
	assert_int_equal(f.n, 0);
	workers_expire(ws, 6001, 5000);
	assert_int_equal(f.n, 2);
	assert_string_equal(f.why[0], "timeout");
	assert_int_equal(workers_count(ws), 1);
	assert_int_equal(f.slot[0] + f.slot[1], 4); /* slots 1 and 3 */
	workers_free(ws);
}

static void
counters_are_replaced_by_the_latest(void **state)
{
	struct forgotten f = {0};
	struct workers *ws = workers_new(forget_cb, &f);
	struct up_worker a = uw(1, 1, 1);
	struct worker *w = workers_touch(ws, &a, 1, 0);
	struct up_counter items[2] = {
	    {{"connections", 11}, 5},
	    {{"frames_out", 10}, 42},
	};
	struct up_counters c = {2, items};

	workers_set_counters(w, &c);
	assert_int_equal(w->n_counters, 2);
	assert_string_equal(w->names[1], "frames_out");
	assert_int_equal(w->values[1], 42);
	c.n = 1;
	items[0].value = 6;
	workers_set_counters(w, &c);
	assert_int_equal(w->n_counters, 1);
	assert_int_equal(w->values[0], 6);
	workers_free(ws);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(a_worker_is_known_by_slot_and_generation),
	    cmocka_unit_test(a_closed_pipe_finds_its_worker_only_while_current),
	    cmocka_unit_test(silent_workers_expire),
	    cmocka_unit_test(counters_are_replaced_by_the_latest),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
