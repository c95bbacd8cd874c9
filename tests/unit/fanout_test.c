/*
 * fanout_test.c - the worker's routing state: interest refcounts and the
 * ADD/DEL they send, ACK handling (ready, failure, stale ids), re-requests
 * after the ACK timeout and after a resync, and delivery to live
 * memberships only.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "fanout.h"

#define S(lit) lit, sizeof(lit) - 1

struct rec {
	int adds, dels, ready, failed, delivered;
	uint64_t last_req;
	char last_add[64], last_del[64];
	struct fanout *f;
	bool leave_on_fail;
};

static void
rec_add(void *arg, uint64_t req_id, const char *addr, size_t len)
{
	struct rec *r = arg;

	r->adds++;
	r->last_req = req_id;
	snprintf(r->last_add, sizeof(r->last_add), "%.*s", (int)len, addr);
}

static void
rec_del(void *arg, const char *addr, size_t len)
{
	struct rec *r = arg;

	r->dels++;
	snprintf(r->last_del, sizeof(r->last_del), "%.*s", (int)len, addr);
}

static void
rec_ready(void *arg, struct fan_member *m)
{
	struct rec *r = arg;

	assert_true(m->ready);
	r->ready++;
}

static void
rec_failed(void *arg, struct fan_member *m)
{
	struct rec *r = arg;

	assert_null(m->entry);
	r->failed++;
	if (r->leave_on_fail)
		fanout_leave(r->f, m);
}

static void
rec_deliver(void *arg, struct fan_member *m, void *msg)
{
	struct rec *r = arg;

	assert_true(m->live);
	assert_ptr_equal(msg, r);
	r->delivered++;
}

static const struct fanout_ops ops = {
    rec_add,
    rec_del,
    rec_ready,
    rec_failed,
    rec_deliver,
};

static struct fanout *
setup(struct rec *r)
{
	memset(r, 0, sizeof(*r));
	r->f = fanout_new(&ops, r);
	assert_non_null(r->f);
	return r->f;
}

static void
the_first_member_adds_and_the_last_deletes(void **state)
{
	struct rec r;
	struct fanout *f = setup(&r);
	struct dlist o1, o2;
	struct fan_member *a, *b;

	dlist_init(&o1);
	dlist_init(&o2);
	a = fanout_join(f, S("user:42"), &o1, &o1, 0);
	assert_non_null(a);
	assert_int_equal(r.adds, 1);
	assert_string_equal(r.last_add, "user:42");
	assert_false(a->ready);
	b = fanout_join(f, S("user:42"), &o2, &o2, 0);
	assert_int_equal(r.adds, 1); /* refcount only */
	assert_int_equal(a->entry->refs, 2);
	assert_int_equal(fanout_count(f), 1);
	assert_int_equal(fanout_pending_count(f), 1);

	fanout_leave(f, a);
	assert_int_equal(r.dels, 0);
	assert_true(dlist_empty(&o1));
	fanout_leave(f, b);
	assert_int_equal(r.dels, 1);
	assert_string_equal(r.last_del, "user:42");
	assert_int_equal(fanout_count(f), 0);
	assert_int_equal(fanout_pending_count(f), 0);
	fanout_leave(f, NULL);
	fanout_free(f);
}

static void
an_ack_makes_members_ready_and_later_joins_ready_at_once(void **state)
{
	struct rec r;
	struct fanout *f = setup(&r);
	struct dlist o;
	struct fan_member *a, *b;
	uint64_t req;

	dlist_init(&o);
	a = fanout_join(f, S("all"), &o, &o, 0);
	req = r.last_req;
	assert_null(fanout_find(f, S("all")));
	assert_int_equal(fanout_ack(f, req + 100, false), -1); /* unknown */
	assert_int_equal(fanout_ack(f, req, false), 0);
	assert_int_equal(r.ready, 1);
	assert_true(a->ready);
	assert_non_null(fanout_find(f, S("all")));
	assert_int_equal(fanout_ack(f, req, false), -1); /* duplicate */
	assert_int_equal(fanout_pending_count(f), 0);

	b = fanout_join(f, S("all"), &o, &o, 0);
	assert_true(b->ready);
	assert_int_equal(r.ready, 1); /* no callback for an active entry */
	assert_int_equal(r.adds, 1);
	fanout_free(f);
}

static void
only_live_members_receive_messages(void **state)
{
	struct rec r;
	struct fanout *f = setup(&r);
	struct dlist o;
	struct fan_member *a, *b;
	struct fan_entry *e;

	dlist_init(&o);
	a = fanout_join(f, S("channel:news"), &o, &o, 0);
	b = fanout_join(f, S("channel:news"), &o, &o, 0);
	fanout_set_live(a); /* not ready yet: no effect */
	assert_false(a->live);
	fanout_ack(f, r.last_req, false);
	e = fanout_find(f, S("channel:news"));
	assert_int_equal(fanout_deliver(f, e, &r), 0);
	fanout_set_live(a);
	fanout_set_live(a);
	assert_int_equal(e->live, 1);
	assert_int_equal(fanout_deliver(f, e, &r), 1);
	fanout_set_live(b);
	assert_int_equal(fanout_deliver(f, e, &r), 2);
	assert_int_equal(r.delivered, 3);
	fanout_leave(f, a);
	assert_int_equal(e->live, 1);
	fanout_free(f);
}

static void
a_refused_address_detaches_its_members_without_a_del(void **state)
{
	struct rec r;
	struct fanout *f = setup(&r);
	struct dlist o1, o2;
	struct fan_member *a;

	dlist_init(&o1);
	dlist_init(&o2);
	a = fanout_join(f, S("channel:x"), &o1, &o1, 0);
	fanout_join(f, S("channel:x"), &o2, &o2, 0);
	r.leave_on_fail = true; /* the callback may release at once */
	assert_int_equal(fanout_ack(f, r.last_req, true), 0);
	assert_int_equal(r.failed, 2);
	assert_int_equal(r.dels, 0);
	assert_int_equal(fanout_count(f), 0);
	assert_true(dlist_empty(&o1));
	assert_true(dlist_empty(&o2));
	(void)a;
	fanout_free(f);
}

static void
a_detached_member_can_be_left_later(void **state)
{
	struct rec r;
	struct fanout *f = setup(&r);
	struct dlist o;
	struct fan_member *a;

	dlist_init(&o);
	a = fanout_join(f, S("user:1"), &o, &o, 0);
	fanout_ack(f, r.last_req, true);
	assert_null(a->entry);
	assert_false(dlist_empty(&o));
	fanout_leave(f, a);
	assert_true(dlist_empty(&o));
	assert_int_equal(r.dels, 0);
	fanout_free(f);
}

static void
unacknowledged_adds_are_re_requested_after_the_timeout(void **state)
{
	struct rec r;
	struct fanout *f = setup(&r);
	struct dlist o;
	uint64_t first;

	dlist_init(&o);
	fanout_join(f, S("user:1"), &o, &o, 1000);
	fanout_join(f, S("user:2"), &o, &o, 3000);
	first = r.last_req - 1;
	assert_int_equal(fanout_tick(f, 1000 + FANOUT_ACK_TIMEOUT_MS - 1), 0);
	assert_int_equal(fanout_tick(f, 1000 + FANOUT_ACK_TIMEOUT_MS), 1);
	assert_int_equal(r.adds, 3);
	assert_string_equal(r.last_add, "user:1");
	/* The superseded id no longer counts; the new one does. */
	assert_int_equal(fanout_ack(f, first, false), -1);
	assert_int_equal(fanout_ack(f, r.last_req, false), 0);
	assert_non_null(fanout_find(f, S("user:1")));
	assert_int_equal(fanout_pending_count(f), 1);
	assert_int_equal(fanout_tick(f, 3000 + FANOUT_ACK_TIMEOUT_MS), 1);
	assert_string_equal(r.last_add, "user:2");
	fanout_free(f);
}

static void
a_resync_re_requests_every_pending_entry(void **state)
{
	struct rec r;
	struct fanout *f = setup(&r);
	struct dlist o;
	int i;
	char a[16];

	dlist_init(&o);
	for (i = 0; i < 10; i++) {
		snprintf(a, sizeof(a), "user:%d", i);
		fanout_join(f, a, strlen(a), &o, &o, 0);
	}
	fanout_ack(f, r.last_req, false); /* user:9 active */
	assert_int_equal(fanout_resend_pending(f, 10), 9);
	assert_int_equal(r.adds, 19);
	assert_int_equal(fanout_pending_count(f), 9);
	fanout_free(f);
}

static void
leaving_a_pending_entry_deletes_it_and_ignores_its_late_ack(void **state)
{
	struct rec r;
	struct fanout *f = setup(&r);
	struct dlist o;
	struct fan_member *a;
	uint64_t req;

	dlist_init(&o);
	a = fanout_join(f, S("channel:c"), &o, &o, 0);
	req = r.last_req;
	fanout_leave(f, a);
	assert_int_equal(r.dels, 1);
	assert_int_equal(fanout_ack(f, req, false), -1);
	assert_int_equal(fanout_pending_count(f), 0);
	fanout_free(f);
}

static void
count_entry(void *arg, struct fan_entry *e)
{
	int *n = arg;

	assert_int_equal(e->refs, 1);
	(*n)++;
}

static void
foreach_visits_every_entry(void **state)
{
	struct rec r;
	struct fanout *f = setup(&r);
	struct dlist o;
	int n = 0;

	dlist_init(&o);
	fanout_join(f, S("all"), &o, &o, 0);
	fanout_join(f, S("user:1"), &o, &o, 0);
	fanout_join(f, S("channel:z"), &o, &o, 0);
	fanout_foreach(f, count_entry, &n);
	assert_int_equal(n, 3);
	fanout_free(f);
}

int
main(void)
{
	static const struct CMUnitTest tests[] = {
	    cmocka_unit_test(the_first_member_adds_and_the_last_deletes),
	    cmocka_unit_test(
		an_ack_makes_members_ready_and_later_joins_ready_at_once),
	    cmocka_unit_test(only_live_members_receive_messages),
	    cmocka_unit_test(
		a_refused_address_detaches_its_members_without_a_del),
	    cmocka_unit_test(a_detached_member_can_be_left_later),
	    cmocka_unit_test(
		unacknowledged_adds_are_re_requested_after_the_timeout),
	    cmocka_unit_test(a_resync_re_requests_every_pending_entry),
	    cmocka_unit_test(
		leaving_a_pending_entry_deletes_it_and_ignores_its_late_ack),
	    cmocka_unit_test(foreach_visits_every_entry),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
