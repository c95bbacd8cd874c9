/*
 * loop_test.c - the bridge event loop (bridge/loop.c): timers, fd
 * watchers, hooks, and removal from inside callbacks.
 */
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

#include <cmocka.h>

#include "clock.h"
#include "loop.h"

struct ctx {
	struct loop *l;
	int fired;
	int fired2;
	uint64_t id, id2;
	struct loop_fd *w, *w2;
	int fds[2];
};

static int
setup(void **state)
{
	static struct ctx c;

	c = (struct ctx){0};
	c.l = loop_new();
	if (c.l == NULL || pipe(c.fds) == -1)
		return -1;
	*state = &c;
	return 0;
}

static int
teardown(void **state)
{
	struct ctx *c = *state;

	loop_free(c->l);
	close(c->fds[0]);
	close(c->fds[1]);
	return 0;
}

static void
count_cb(struct loop *l, uint64_t id, void *arg)
{
	struct ctx *c = arg;

	c->fired++;
}

static void
a_one_shot_timer_fires_once(void **state)
{
	struct ctx *c = *state;
	uint64_t t0 = clock_mono_ms();

	assert_int_not_equal(loop_timer_add(c->l, 20, 0, count_cb, c), 0);
	for (int i = 0; i < 50 && c->fired == 0; i++)
		assert_int_equal(loop_once(c->l, 100), 0);
	assert_int_equal(c->fired, 1);
	assert_true(clock_mono_ms() - t0 >= 20);
	assert_int_equal(loop_once(c->l, 30), 0);
	assert_int_equal(c->fired, 1);
}

static void
a_periodic_timer_repeats_until_deleted(void **state)
{
	struct ctx *c = *state;
	uint64_t id = loop_timer_add(c->l, 0, 5, count_cb, c);

	for (int i = 0; i < 200 && c->fired < 3; i++)
		assert_int_equal(loop_once(c->l, 50), 0);
	assert_int_equal(c->fired, 3);
	assert_int_equal(loop_timer_del(c->l, id), 0);
	assert_int_equal(loop_timer_del(c->l, id), -1);
	assert_int_equal(loop_once(c->l, 20), 0);
	assert_int_equal(c->fired, 3);
}

static void
self_delete_cb(struct loop *l, uint64_t id, void *arg)
{
	struct ctx *c = arg;

	c->fired++;
	assert_int_equal(loop_timer_del(l, id), 0);
	/* Added now: must not run in this same pass. */
	c->id2 = loop_timer_add(l, 0, 0, count_cb, c);
}

static void
a_timer_may_delete_itself_and_add_another(void **state)
{
	struct ctx *c = *state;

	loop_timer_add(c->l, 0, 1, self_delete_cb, c);
	assert_int_equal(loop_once(c->l, 0), 0);
	assert_int_equal(c->fired, 1);
	assert_int_equal(loop_once(c->l, 10), 0);
	assert_int_equal(c->fired, 2); /* the new one-shot, once */
	assert_int_equal(loop_once(c->l, 10), 0);
	assert_int_equal(c->fired, 2);
}

static void
read_cb(struct loop *l, int fd, int revents, void *arg)
{
	struct ctx *c = arg;
	char buf[16];

	assert_true(revents & POLLIN);
	assert_true(read(fd, buf, sizeof(buf)) > 0);
	c->fired++;
}

static void
an_fd_watcher_sees_readable_data(void **state)
{
	struct ctx *c = *state;

	c->w = loop_fd_add(c->l, c->fds[0], POLLIN, read_cb, c);
	assert_non_null(c->w);
	assert_int_equal(loop_once(c->l, 0), 0);
	assert_int_equal(c->fired, 0);
	assert_int_equal(write(c->fds[1], "x", 1), 1);
	assert_int_equal(loop_once(c->l, 1000), 0);
	assert_int_equal(c->fired, 1);
	/* No interest: not reported even when readable. */
	loop_fd_set(c->w, 0);
	assert_int_equal(loop_fd_events(c->w), 0);
	assert_int_equal(write(c->fds[1], "y", 1), 1);
	assert_int_equal(loop_once(c->l, 10), 0);
	assert_int_equal(c->fired, 1);
	loop_fd_set(c->w, POLLIN);
	assert_int_equal(loop_once(c->l, 1000), 0);
	assert_int_equal(c->fired, 2);
	loop_fd_del(c->w);
}

/* Deletes itself and the other watcher of the same fd. */
static void
killer_cb(struct loop *l, int fd, int revents, void *arg)
{
	struct ctx *c = arg;

	c->fired++;
	loop_fd_del(c->w);
	loop_fd_del(c->w2);
}

static void
victim_cb(struct loop *l, int fd, int revents, void *arg)
{
	struct ctx *c = arg;

	c->fired2++;
}

static void
a_watcher_deleted_in_a_callback_gets_no_more_events(void **state)
{
	struct ctx *c = *state;

	c->w = loop_fd_add(c->l, c->fds[0], POLLIN, killer_cb, c);
	c->w2 = loop_fd_add(c->l, c->fds[0], POLLIN, victim_cb, c);
	assert_int_equal(write(c->fds[1], "x", 1), 1);
	assert_int_equal(loop_once(c->l, 1000), 0);
	assert_int_equal(c->fired, 1);
	assert_int_equal(c->fired2, 0);
	assert_int_equal(loop_once(c->l, 10), 0);
	assert_int_equal(c->fired, 1);
}

static void
write_cb(struct loop *l, int fd, int revents, void *arg)
{
	struct ctx *c = arg;

	if (revents & POLLOUT)
		c->fired++;
}

static void
a_writable_fd_is_reported_for_pollout(void **state)
{
	struct ctx *c = *state;

	c->w = loop_fd_add(c->l, c->fds[1], POLLOUT, write_cb, c);
	assert_int_equal(loop_once(c->l, 1000), 0);
	assert_int_equal(c->fired, 1);
	loop_fd_del(c->w);
	assert_int_equal(loop_once(c->l, 10), 0);
	assert_int_equal(c->fired, 1);
}

static void
hook_cb(struct loop *l, void *arg)
{
	struct ctx *c = arg;

	c->fired2++;
}

static void
hooks_run_before_every_sleep(void **state)
{
	struct ctx *c = *state;

	assert_int_equal(loop_hook_add(c->l, hook_cb, c), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(loop_once(c->l, 0), 0);
	assert_int_equal(c->fired2, 3);
	loop_hook_del(c->l, hook_cb, c);
	assert_int_equal(loop_once(c->l, 0), 0);
	assert_int_equal(c->fired2, 3);
}

static void
stop_cb(struct loop *l, uint64_t id, void *arg)
{
	struct ctx *c = arg;

	c->fired++;
	if (c->fired == 3)
		loop_stop(l);
}

static void
loop_stop_ends_loop_run(void **state)
{
	struct ctx *c = *state;

	loop_timer_add(c->l, 1, 1, stop_cb, c);
	assert_int_equal(loop_run(c->l), 0);
	assert_int_equal(c->fired, 3);
	assert_true(loop_now(c->l) > 0);
}

/* ---- input coalescing ---- */

struct rd {
	int calls;
	int last_bytes;  /* bytes read by the last call */
	size_t per_call; /* read at most this much per call */
};

static void
flow_cb(struct loop *l, int fd, int revents, void *arg)
{
	struct rd *r = arg;
	char buf[64];
	ssize_t n = read(fd, buf, r->per_call);

	r->calls++;
	r->last_bytes = n > 0 ? (int)n : 0;
}

static void
put(struct ctx *c)
{
	assert_int_equal(write(c->fds[1], "x", 1), 1);
}

/* Runs the loop until r->calls reaches want or limit_ms passed. */
static void
run_until(struct ctx *c, struct rd *r, int want, uint64_t limit_ms)
{
	uint64_t t0 = clock_mono_ms();

	while (r->calls < want && clock_mono_ms() - t0 < limit_ms)
		loop_once(c->l, 5);
}

static void
a_dense_flow_is_read_once_per_window(void **state)
{
	struct ctx *c = *state;
	struct rd r = {.per_call = 64};
	uint64_t t0;

	c->w = loop_fd_add(c->l, c->fds[0], POLLIN, flow_cb, &r);
	loop_fd_coalesce(c->w, 60);
	put(c);
	run_until(c, &r, 1, 1000);
	put(c); /* a second read soon after the first: the flow is dense */
	run_until(c, &r, 2, 1000);
	assert_int_equal(r.calls, 2);
	/* Resting now: two messages wait and are read by one call. */
	t0 = clock_mono_ms();
	put(c);
	put(c);
	loop_once(c->l, 20);
	assert_int_equal(r.calls, 2);
	run_until(c, &r, 3, 1000);
	assert_int_equal(r.calls, 3);
	assert_int_equal(r.last_bytes, 2);
	assert_true(clock_mono_ms() - t0 >= 40);
	assert_true(clock_mono_ms() - t0 < 500);
}

static void
a_backlog_is_drained_without_resting(void **state)
{
	struct ctx *c = *state;
	struct rd r = {.per_call = 1}; /* leaves the rest unread */
	uint64_t t0;

	c->w = loop_fd_add(c->l, c->fds[0], POLLIN, flow_cb, &r);
	loop_fd_coalesce(c->w, 200);
	for (int i = 0; i < 4; i++)
		put(c);
	t0 = clock_mono_ms();
	run_until(c, &r, 4, 1000);
	assert_int_equal(r.calls, 4);
	assert_true(clock_mono_ms() - t0 < 150);
}

static void
the_first_message_after_a_quiet_spell_is_read_at_once(void **state)
{
	struct ctx *c = *state;
	struct rd r = {.per_call = 64};
	uint64_t t0;

	c->w = loop_fd_add(c->l, c->fds[0], POLLIN, flow_cb, &r);
	loop_fd_coalesce(c->w, 20);
	put(c);
	run_until(c, &r, 1, 1000);
	usleep(60 * 1000); /* > 2 windows */
	put(c);
	t0 = clock_mono_ms();
	loop_once(c->l, 5);
	assert_int_equal(r.calls, 2);
	assert_true(clock_mono_ms() - t0 < 15);
}

static void
slow_hook(struct loop *l, void *arg)
{
	int *armed = arg;

	if (*armed) {
		*armed = 0;
		usleep(40 * 1000);
	}
}

/*
 * A rest that ends while the loop is busy elsewhere (here a slow hook)
 * must not leave the fd out of a long poll: before the fix the set was
 * built against the time before the hooks and the poll had no timeout, so
 * the waiting message sat there until some other event.
 */
static void
a_rest_that_ended_meanwhile_does_not_stall_the_loop(void **state)
{
	struct ctx *c = *state;
	struct rd r = {.per_call = 64};
	int armed = 0;
	uint64_t t0;

	c->w = loop_fd_add(c->l, c->fds[0], POLLIN, flow_cb, &r);
	loop_fd_coalesce(c->w, 20);
	assert_int_equal(loop_hook_add(c->l, slow_hook, &armed), 0);
	put(c);
	run_until(c, &r, 1, 1000);
	put(c);
	run_until(c, &r, 2, 1000); /* dense: resting for 20 ms now */
	put(c);
	armed = 1; /* the next pass's hook outlasts the rest */
	t0 = clock_mono_ms();
	for (int i = 0; i < 3 && r.calls < 3; i++)
		loop_once(c->l, 2000);
	assert_int_equal(r.calls, 3);
	assert_true(clock_mono_ms() - t0 < 500);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
		a_one_shot_timer_fires_once, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		a_periodic_timer_repeats_until_deleted, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		a_timer_may_delete_itself_and_add_another, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		an_fd_watcher_sees_readable_data, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		a_watcher_deleted_in_a_callback_gets_no_more_events, setup,
		teardown),
	    cmocka_unit_test_setup_teardown(
		a_writable_fd_is_reported_for_pollout, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		hooks_run_before_every_sleep, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		loop_stop_ends_loop_run, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		a_dense_flow_is_read_once_per_window, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		a_backlog_is_drained_without_resting, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		the_first_message_after_a_quiet_spell_is_read_at_once, setup,
		teardown),
	    cmocka_unit_test_setup_teardown(
		a_rest_that_ended_meanwhile_does_not_stall_the_loop, setup,
		teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
