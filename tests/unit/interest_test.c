/*
 * interest_test.c - interest routing state (bridge/interest.c): reference
 * counts, SUBSCRIBE/UNSUBSCRIBE batching, when ACKs go out.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "interest.h"
#include "worker_fixture.h"

#define MAX_REC 64

struct rec_ack {
	uint32_t slot, gen;
	uint64_t req;
	enum ack_status status;
};

struct rec_cmd {
	enum interest_cmd cmd;
	size_t n;
	char first[64], last[64];
};

struct rec {
	struct rec_ack acks[MAX_REC];
	size_t n_acks;
	struct rec_cmd cmds[MAX_REC];
	size_t n_cmds;
	int fail_cmds;
};

static struct rec R;

static void
ack_cb(void *arg, uint32_t slot, uint32_t gen, uint64_t req_id,
    enum ack_status status)
{
	struct rec *r = arg;

	if (r->n_acks < MAX_REC) /* counted beyond, not recorded */
		r->acks[r->n_acks] =
		    (struct rec_ack){slot, gen, req_id, status};
	r->n_acks++;
}

static int
cmd_cb(void *arg, enum interest_cmd cmd, const char *const *names,
    const size_t *lens, size_t n)
{
	struct rec *r = arg;
	struct rec_cmd *c;

	assert_true(r->n_cmds < MAX_REC);
	assert_true(n <= INTEREST_CHUNK);
	c = &r->cmds[r->n_cmds++];
	c->cmd = cmd;
	c->n = n;
	if (n > 0) {
		snprintf(
		    c->first, sizeof(c->first), "%.*s", (int)lens[0], names[0]);
		snprintf(c->last, sizeof(c->last), "%.*s", (int)lens[n - 1],
		    names[n - 1]);
	}
	return r->fail_cmds ? -1 : 0;
}

static int
setup(void **state)
{
	memset(&R, 0, sizeof(R));
	*state = interest_new(false, ack_cb, &R);
	return *state == NULL ? -1 : 0;
}

static int
setup_broadcast(void **state)
{
	memset(&R, 0, sizeof(R));
	*state = interest_new(true, ack_cb, &R);
	return *state == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	interest_free(*state);
	return 0;
}

static void
add(struct interest *in, uint32_t slot, uint64_t req, const char *a)
{
	assert_int_equal(interest_add(in, W(slot, 1), req, a, strlen(a)), 0);
}

static void
confirm(struct interest *in, enum interest_cmd cmd, const char *a)
{
	interest_confirmed(in, cmd, a, strlen(a));
}

/* Link up and the permanent "all" subscribed and confirmed. */
static void
bring_up(struct interest *in)
{
	interest_link_up(in);
	interest_flush(in, cmd_cb, &R);
	confirm(in, INTEREST_SUBSCRIBE, "all");
	R.n_cmds = 0;
}

static void
all_is_subscribed_once_the_link_is_up(void **state)
{
	struct interest *in = *state;

	assert_int_equal(interest_flush(in, cmd_cb, &R), 0);
	interest_link_up(in);
	assert_true(interest_dirty(in));
	assert_int_equal(interest_flush(in, cmd_cb, &R), 1);
	assert_int_equal(R.cmds[0].cmd, INTEREST_SUBSCRIBE);
	assert_string_equal(R.cmds[0].first, "all");
	assert_int_equal(interest_subscribed(in), 0);
	confirm(in, INTEREST_SUBSCRIBE, "all");
	assert_int_equal(interest_subscribed(in), 1);
	assert_int_equal(interest_addresses(in), 1);
}

static void
an_invalid_address_is_refused_at_once(void **state)
{
	struct interest *in = *state;

	add(in, 1, 7, "bogus:x");
	add(in, 1, 8, "user:");
	assert_int_equal(R.n_acks, 2);
	assert_int_equal(R.acks[0].status, ACK_FAILED);
	assert_int_equal(R.acks[0].req, 7);
	assert_int_equal(R.acks[1].status, ACK_FAILED);
	assert_int_equal(interest_workers(in), 0);
}

static void
an_add_is_acked_after_redis_confirms(void **state)
{
	struct interest *in = *state;

	bring_up(in);
	add(in, 1, 1, "user:42");
	assert_int_equal(R.n_acks, 0);
	assert_int_equal(interest_waiting(in), 1);
	assert_int_equal(interest_flush(in, cmd_cb, &R), 1);
	assert_int_equal(R.cmds[0].cmd, INTEREST_SUBSCRIBE);
	assert_string_equal(R.cmds[0].first, "user:42");
	assert_int_equal(R.n_acks, 0);
	confirm(in, INTEREST_SUBSCRIBE, "user:42");
	assert_int_equal(R.n_acks, 1);
	assert_int_equal(R.acks[0].req, 1);
	assert_int_equal(R.acks[0].status, ACK_OK);
	assert_int_equal(interest_waiting(in), 0);
	assert_int_equal(interest_subscribed(in), 2);
}

static void
an_add_while_the_link_is_down_waits_for_it(void **state)
{
	struct interest *in = *state;

	add(in, 1, 1, "channel:news");
	assert_int_equal(interest_flush(in, cmd_cb, &R), 0);
	assert_int_equal(R.n_acks, 0);
	interest_link_up(in);
	assert_int_equal(interest_flush(in, cmd_cb, &R), 1);
	assert_int_equal(R.cmds[0].n, 2); /* all + channel:news */
	confirm(in, INTEREST_SUBSCRIBE, "all");
	assert_int_equal(R.n_acks, 0);
	confirm(in, INTEREST_SUBSCRIBE, "channel:news");
	assert_int_equal(R.n_acks, 1);
}

static void
an_add_for_a_subscribed_address_is_acked_at_once(void **state)
{
	struct interest *in = *state;

	bring_up(in);
	add(in, 1, 1, "all");
	assert_int_equal(R.n_acks, 1);
	add(in, 2, 5, "all");
	assert_int_equal(R.n_acks, 2);
	assert_int_equal(R.acks[1].slot, 2);
	assert_int_equal(interest_flush(in, cmd_cb, &R), 0);
}

static void
a_repeated_add_is_acked_again(void **state)
{
	struct interest *in = *state;

	bring_up(in);
	add(in, 1, 1, "user:a");
	interest_flush(in, cmd_cb, &R);
	confirm(in, INTEREST_SUBSCRIBE, "user:a");
	add(in, 1, 2, "user:a");
	assert_int_equal(R.n_acks, 2);
	assert_int_equal(R.acks[1].req, 2);
	/* Still one reference: one DEL releases it. */
	interest_del(in, W(1, 1), "user:a", 6);
	R.n_cmds = 0;
	assert_int_equal(interest_flush(in, cmd_cb, &R), 1);
	assert_int_equal(R.cmds[0].cmd, INTEREST_UNSUBSCRIBE);
}

static void
a_re_request_replaces_the_pending_req_id(void **state)
{
	struct interest *in = *state;

	bring_up(in);
	add(in, 1, 1, "user:a");
	add(in, 1, 2, "user:a");
	assert_int_equal(interest_waiting(in), 1);
	interest_flush(in, cmd_cb, &R);
	confirm(in, INTEREST_SUBSCRIBE, "user:a");
	assert_int_equal(R.n_acks, 1);
	assert_int_equal(R.acks[0].req, 2);
}

static void
shared_addresses_are_subscribed_once_and_released_by_the_last(void **state)
{
	struct interest *in = *state;

	bring_up(in);
	add(in, 1, 1, "channel:c");
	add(in, 2, 1, "channel:c");
	assert_int_equal(interest_flush(in, cmd_cb, &R), 1);
	assert_int_equal(R.cmds[0].n, 1);
	confirm(in, INTEREST_SUBSCRIBE, "channel:c");
	assert_int_equal(R.n_acks, 2);
	interest_del(in, W(1, 1), "channel:c", 9);
	assert_int_equal(interest_flush(in, cmd_cb, &R), 0);
	interest_del(in, W(2, 1), "channel:c", 9);
	assert_int_equal(interest_flush(in, cmd_cb, &R), 1);
	assert_int_equal(R.cmds[1].cmd, INTEREST_UNSUBSCRIBE);
	assert_string_equal(R.cmds[1].first, "channel:c");
	assert_int_equal(interest_subscribed(in), 1);
	confirm(in, INTEREST_UNSUBSCRIBE, "channel:c");
	assert_int_equal(interest_addresses(in), 1);
}

static void
an_add_and_del_in_one_iteration_send_nothing(void **state)
{
	struct interest *in = *state;

	bring_up(in);
	add(in, 1, 1, "user:q");
	interest_del(in, W(1, 1), "user:q", 6);
	assert_int_equal(interest_flush(in, cmd_cb, &R), 0);
	assert_int_equal(interest_addresses(in), 1);
	assert_int_equal(interest_waiting(in), 0);
}

static void
a_resubscribe_waits_for_the_unsubscribe_in_flight(void **state)
{
	struct interest *in = *state;

	bring_up(in);
	add(in, 1, 1, "user:x");
	interest_flush(in, cmd_cb, &R);
	confirm(in, INTEREST_SUBSCRIBE, "user:x");
	interest_del(in, W(1, 1), "user:x", 6);
	interest_flush(in, cmd_cb, &R); /* UNSUBSCRIBE in flight */
	add(in, 1, 2, "user:x");
	assert_int_equal(R.n_acks, 1);
	assert_int_equal(interest_flush(in, cmd_cb, &R), 0);
	confirm(in, INTEREST_UNSUBSCRIBE, "user:x");
	assert_int_equal(R.n_acks, 1);
	assert_int_equal(interest_flush(in, cmd_cb, &R), 1);
	assert_int_equal(R.cmds[2].cmd, INTEREST_SUBSCRIBE);
	confirm(in, INTEREST_SUBSCRIBE, "user:x");
	assert_int_equal(R.n_acks, 2);
	assert_int_equal(R.acks[1].req, 2);
}

static void
a_del_while_pending_drops_the_wait(void **state)
{
	struct interest *in = *state;

	bring_up(in);
	add(in, 1, 1, "user:x");
	interest_flush(in, cmd_cb, &R);
	interest_del(in, W(1, 1), "user:x", 6);
	assert_int_equal(interest_waiting(in), 0);
	confirm(in, INTEREST_SUBSCRIBE, "user:x");
	assert_int_equal(R.n_acks, 0);
	/* Nobody wants it any more: unsubscribed next. */
	assert_int_equal(interest_flush(in, cmd_cb, &R), 1);
	assert_int_equal(R.cmds[1].cmd, INTEREST_UNSUBSCRIBE);
	confirm(in, INTEREST_UNSUBSCRIBE, "user:x");
	assert_int_equal(interest_addresses(in), 1);
}

static void
a_reconnect_resubscribes_everything_held(void **state)
{
	struct interest *in = *state;

	bring_up(in);
	add(in, 1, 1, "user:a");
	add(in, 2, 1, "channel:b");
	interest_flush(in, cmd_cb, &R);
	confirm(in, INTEREST_SUBSCRIBE, "user:a");
	confirm(in, INTEREST_SUBSCRIBE, "channel:b");
	assert_int_equal(R.n_acks, 2);
	interest_link_down(in);
	assert_int_equal(interest_subscribed(in), 0);
	add(in, 3, 9, "user:a"); /* waits: Redis lost it */
	assert_int_equal(R.n_acks, 2);
	R.n_cmds = 0;
	assert_int_equal(interest_flush(in, cmd_cb, &R), 0);
	interest_link_up(in);
	assert_int_equal(interest_flush(in, cmd_cb, &R), 1);
	assert_int_equal(R.cmds[0].n, 3);
	confirm(in, INTEREST_SUBSCRIBE, "user:a");
	assert_int_equal(R.n_acks, 3);
	assert_int_equal(R.acks[2].slot, 3);
	assert_int_equal(R.acks[2].req, 9);
}

static void
stale_confirmations_are_ignored(void **state)
{
	struct interest *in = *state;

	bring_up(in);
	add(in, 1, 1, "user:a");
	interest_flush(in, cmd_cb, &R);
	interest_link_down(in);
	interest_link_up(in);
	confirm(in, INTEREST_SUBSCRIBE, "user:a"); /* nothing in flight */
	assert_int_equal(R.n_acks, 0);
	confirm(in, INTEREST_SUBSCRIBE, "user:nobody");
	confirm(in, INTEREST_UNSUBSCRIBE, "all");
	assert_int_equal(R.n_acks, 0);
}

static void
forgetting_a_worker_releases_its_addresses(void **state)
{
	struct interest *in = *state;

	bring_up(in);
	add(in, 1, 1, "user:a");
	add(in, 1, 2, "user:b");
	add(in, 2, 1, "user:b");
	interest_flush(in, cmd_cb, &R);
	assert_int_equal(interest_workers(in), 2);
	interest_forget(in, W(1, 1));
	assert_int_equal(interest_workers(in), 1);
	assert_int_equal(interest_waiting(in), 1);
	confirm(in, INTEREST_SUBSCRIBE, "user:a");
	confirm(in, INTEREST_SUBSCRIBE, "user:b");
	assert_int_equal(R.n_acks, 1);
	assert_int_equal(R.acks[0].slot, 2);
	R.n_cmds = 0;
	assert_int_equal(interest_flush(in, cmd_cb, &R), 1);
	assert_int_equal(R.cmds[0].cmd, INTEREST_UNSUBSCRIBE);
	assert_string_equal(R.cmds[0].first, "user:a");
	interest_forget(in, W(9, 9)); /* unknown: no-op */
}

static void
a_sync_replaces_the_set_without_acks(void **state)
{
	struct interest *in = *state;
	struct env_str set1[] = {{"user:a", 6}, {"channel:b", 9}};
	struct env_str set2[] = {
	    {"channel:b", 9}, {"user:c", 6}, {"x", 1}, {NULL, 0}};
	size_t invalid = 99;

	bring_up(in);
	assert_int_equal(interest_sync(in, W(1, 1), set1, 2, &invalid), 0);
	assert_int_equal(invalid, 0);
	interest_flush(in, cmd_cb, &R);
	assert_int_equal(R.cmds[0].n, 2);
	confirm(in, INTEREST_SUBSCRIBE, "user:a");
	confirm(in, INTEREST_SUBSCRIBE, "channel:b");
	assert_int_equal(interest_sync(in, W(1, 1), set2, 4, &invalid), 0);
	assert_int_equal(invalid, 2);
	assert_int_equal(interest_addresses(in), 3); /* all, b, c */
	R.n_cmds = 0;
	assert_int_equal(interest_flush(in, cmd_cb, &R), 2);
	assert_int_equal(R.n_acks, 0);
	confirm(in, INTEREST_SUBSCRIBE, "user:c");
	assert_int_equal(R.n_acks, 0);
}

static void
changes_are_sent_in_chunks_of_500(void **state)
{
	struct interest *in = *state;
	char a[32];

	for (int i = 0; i < 1200; i++) {
		snprintf(a, sizeof(a), "user:%d", i);
		add(in, 1, (uint64_t)i + 1, a);
	}
	interest_link_up(in);
	assert_int_equal(interest_flush(in, cmd_cb, &R), 3);
	assert_int_equal(R.cmds[0].n, 500);
	assert_int_equal(R.cmds[1].n, 500);
	assert_int_equal(R.cmds[2].n, 201); /* and "all" */
	for (int i = 0; i < 1200; i++) {
		snprintf(a, sizeof(a), "user:%d", i);
		confirm(in, INTEREST_SUBSCRIBE, a);
	}
	assert_int_equal(R.n_acks, 1200);
	assert_int_equal(interest_subscribed(in), 1200);
}

static void
broadcast_acks_once_the_pattern_is_confirmed(void **state)
{
	struct interest *in = *state;

	add(in, 1, 1, "user:a");
	add(in, 1, 2, "nope");
	assert_int_equal(R.n_acks, 1);
	assert_int_equal(R.acks[0].status, ACK_FAILED);
	interest_link_up(in);
	assert_int_equal(interest_flush(in, cmd_cb, &R), 1);
	assert_int_equal(R.cmds[0].cmd, INTEREST_PSUBSCRIBE);
	assert_int_equal(interest_flush(in, cmd_cb, &R), 0);
	confirm(in, INTEREST_SUBSCRIBE, "user:a"); /* not ours */
	assert_int_equal(R.n_acks, 1);
	interest_confirmed(in, INTEREST_PSUBSCRIBE, NULL, 0);
	assert_int_equal(R.n_acks, 2);
	assert_int_equal(R.acks[1].req, 1);
	add(in, 2, 3, "channel:z");
	assert_int_equal(R.n_acks, 3);
	assert_int_equal(interest_subscribed(in), 1);
	interest_link_down(in);
	add(in, 2, 4, "channel:y");
	assert_int_equal(R.n_acks, 3);
	interest_link_up(in);
	assert_int_equal(interest_flush(in, cmd_cb, &R), 1);
	interest_confirmed(in, INTEREST_PSUBSCRIBE, NULL, 0);
	assert_int_equal(R.n_acks, 4);
	interest_forget(in, W(2, 1));
	interest_forget(in, W(1, 1));
	interest_flush(in, cmd_cb, &R);
	assert_int_equal(interest_addresses(in), 0);
}

/* ---- the grace period of released addresses ---- */

static uint64_t fake_now;

static uint64_t
fake_clock(void *arg)
{
	return fake_now;
}

static int
setup_grace(void **state)
{
	int rc = setup(state);

	fake_now = 1000;
	if (rc == 0)
		interest_set_grace(*state, 3000, fake_clock, NULL);
	return rc;
}

/* Subscribes addr for worker slot and confirms it. */
static void
subscribed(struct interest *in, uint32_t slot, uint64_t req, const char *a)
{
	add(in, slot, req, a);
	interest_flush(in, cmd_cb, &R);
	confirm(in, INTEREST_SUBSCRIBE, a);
	R.n_cmds = 0;
}

static void
a_released_address_stays_subscribed_for_the_grace_period(void **state)
{
	struct interest *in = *state;

	bring_up(in);
	subscribed(in, 1, 1, "channel:c");
	interest_del(in, W(1, 1), "channel:c", 9);
	assert_false(interest_dirty(in));
	assert_int_equal(interest_flush(in, cmd_cb, &R), 0);
	assert_int_equal(interest_lingering(in), 1);
	assert_int_equal(interest_subscribed(in), 2);
	assert_int_equal(interest_addresses(in), 1); /* only "all" wanted */
	assert_int_equal(interest_next_due(in), 4000);

	fake_now = 3999;
	assert_false(interest_dirty(in));
	assert_int_equal(interest_flush(in, cmd_cb, &R), 0);
	fake_now = 4000;
	assert_true(interest_dirty(in));
	assert_int_equal(interest_flush(in, cmd_cb, &R), 1);
	assert_int_equal(R.cmds[0].cmd, INTEREST_UNSUBSCRIBE);
	assert_string_equal(R.cmds[0].first, "channel:c");
	assert_int_equal(interest_lingering(in), 0);
	confirm(in, INTEREST_UNSUBSCRIBE, "channel:c");
	assert_int_equal(interest_subscribed(in), 1);
	assert_int_equal(interest_next_due(in), 0);
}

static void
a_resubscribe_within_the_grace_period_is_acked_at_once(void **state)
{
	struct interest *in = *state;

	bring_up(in);
	subscribed(in, 1, 1, "channel:c");
	R.n_acks = 0;
	/* A client toggling: nothing of it reaches the broker. */
	for (uint64_t i = 0; i < 10; i++) {
		interest_del(in, W(1, 1), "channel:c", 9);
		fake_now += 200;
		add(in, 2, 10 + i, "channel:c");
		assert_int_equal(R.n_acks, 2 * i + 1);
		assert_int_equal(R.acks[2 * i].req, 10 + i);
		assert_int_equal(R.acks[2 * i].status, ACK_OK);
		interest_del(in, W(2, 1), "channel:c", 9);
		add(in, 1, 100 + i, "channel:c");
		assert_int_equal(R.n_acks, 2 * i + 2);
		assert_int_equal(interest_flush(in, cmd_cb, &R), 0);
	}
	assert_int_equal(R.n_cmds, 0);
	assert_int_equal(interest_lingering(in), 0);
	fake_now += 10000;
	assert_int_equal(interest_flush(in, cmd_cb, &R), 0);
	assert_int_equal(interest_subscribed(in), 2);
}

static void
a_release_while_the_subscribe_is_in_flight_lingers_too(void **state)
{
	struct interest *in = *state;

	bring_up(in);
	add(in, 1, 1, "user:u");
	interest_flush(in, cmd_cb, &R);
	interest_del(in, W(1, 1), "user:u", 6);
	confirm(in, INTEREST_SUBSCRIBE, "user:u");
	/* Confirmed, nobody wants it: the grace period still applies. */
	R.n_cmds = 0;
	assert_int_equal(interest_flush(in, cmd_cb, &R), 0);
	assert_int_equal(interest_lingering(in), 1);
	add(in, 2, 2, "user:u");
	assert_int_equal(R.n_acks, 1); /* the first was dropped with its DEL */
	assert_int_equal(R.acks[0].req, 2);
	interest_del(in, W(2, 1), "user:u", 6);
	fake_now += 3000;
	assert_int_equal(interest_flush(in, cmd_cb, &R), 1);
	assert_int_equal(R.cmds[0].cmd, INTEREST_UNSUBSCRIBE);
}

static void
expired_addresses_are_unsubscribed_in_one_batch(void **state)
{
	struct interest *in = *state;
	char a[32];

	bring_up(in);
	for (int i = 0; i < 20; i++) {
		snprintf(a, sizeof(a), "user:%d", i);
		add(in, 1, (uint64_t)i, a);
	}
	interest_flush(in, cmd_cb, &R);
	for (int i = 0; i < 20; i++) {
		snprintf(a, sizeof(a), "user:%d", i);
		confirm(in, INTEREST_SUBSCRIBE, a);
	}
	R.n_cmds = 0;
	for (int i = 0; i < 20; i++) {
		snprintf(a, sizeof(a), "user:%d", i);
		interest_del(in, W(1, 1), a, strlen(a));
		fake_now += 10; /* released over 200 ms */
	}
	fake_now += 3000;
	assert_int_equal(interest_flush(in, cmd_cb, &R), 1);
	assert_int_equal(R.cmds[0].n, 20);
}

static void
a_lost_link_ends_the_grace_period(void **state)
{
	struct interest *in = *state;

	bring_up(in);
	subscribed(in, 1, 1, "channel:c");
	interest_del(in, W(1, 1), "channel:c", 9);
	assert_int_equal(interest_lingering(in), 1);
	interest_link_down(in);
	assert_int_equal(interest_lingering(in), 0);
	interest_link_up(in);
	fake_now += 5000;
	interest_flush(in, cmd_cb, &R);
	/* Only "all" is subscribed again; channel:c is gone. */
	assert_int_equal(R.n_cmds, 1);
	assert_int_equal(R.cmds[0].n, 1);
	assert_string_equal(R.cmds[0].first, "all");
}

static void
a_single_lost_subscription_is_requested_again(void **state)
{
	struct interest *in = *state;

	bring_up(in);
	subscribed(in, 1, 1, "channel:c");
	interest_lost(in, "channel:c", 9);
	assert_int_equal(interest_subscribed(in), 1);
	assert_int_equal(interest_flush(in, cmd_cb, &R), 1);
	assert_int_equal(R.cmds[0].cmd, INTEREST_SUBSCRIBE);
	assert_string_equal(R.cmds[0].first, "channel:c");
}

static bool
has_slot(const struct interest_slots *s, uint32_t slot)
{
	return (s->bits[(slot - 1) / 64] >> ((slot - 1) % 64)) & 1;
}

static void
route_names_the_slots_that_hold_an_address(void **state)
{
	struct interest *in = *state;
	struct interest_slots s;

	assert_int_equal(interest_add(in, W(1, 1), 1, "user:a", 6), 0);
	assert_int_equal(interest_add(in, W(3, 1), 1, "channel:c", 9), 0);
	assert_int_equal(interest_add(in, W(2, 1), 1, "channel:c", 9), 0);
	/* A second generation of slot 2 (a rolling reload). */
	assert_int_equal(interest_add(in, W(2, 2), 1, "channel:c", 9), 0);
	assert_int_equal(interest_add(in, W(200, 1), 1, "channel:c", 9), 0);

	assert_int_equal(interest_route(in, "user:a", 6, &s), 1);
	assert_true(has_slot(&s, 1));
	assert_false(has_slot(&s, 2) || has_slot(&s, 3));
	assert_int_equal(interest_route(in, "channel:c", 9, &s), 3);
	assert_true(has_slot(&s, 2) && has_slot(&s, 3) && has_slot(&s, 200));
	assert_false(has_slot(&s, 1));
	assert_int_equal(interest_route(in, "user:zz", 7, &s), 0);
	assert_false(has_slot(&s, 1));

	/* Slot 2 stays while one of its generations holds the channel. */
	interest_del(in, W(2, 1), "channel:c", 9);
	assert_int_equal(interest_route(in, "channel:c", 9, &s), 3);
	interest_del(in, W(2, 2), "channel:c", 9);
	assert_int_equal(interest_route(in, "channel:c", 9, &s), 2);
	assert_false(has_slot(&s, 2));
	interest_forget(in, W(3, 1));
	assert_int_equal(interest_route(in, "channel:c", 9, &s), 1);
	assert_true(has_slot(&s, 200));
	/* Released, still subscribed (grace or in flight): routed nowhere. */
	interest_del(in, W(1, 1), "user:a", 6);
	assert_int_equal(interest_route(in, "user:a", 6, &s), 0);
	interest_forget(in, W(200, 1));
	interest_forget(in, W(2, 2));
	interest_forget(in, W(2, 1));
	interest_forget(in, W(1, 1));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
		all_is_subscribed_once_the_link_is_up, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		an_invalid_address_is_refused_at_once, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		an_add_is_acked_after_redis_confirms, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		an_add_while_the_link_is_down_waits_for_it, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		an_add_for_a_subscribed_address_is_acked_at_once, setup,
		teardown),
	    cmocka_unit_test_setup_teardown(
		a_repeated_add_is_acked_again, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		a_re_request_replaces_the_pending_req_id, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		shared_addresses_are_subscribed_once_and_released_by_the_last,
		setup, teardown),
	    cmocka_unit_test_setup_teardown(
		an_add_and_del_in_one_iteration_send_nothing, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		a_resubscribe_waits_for_the_unsubscribe_in_flight, setup,
		teardown),
	    cmocka_unit_test_setup_teardown(
		a_del_while_pending_drops_the_wait, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		a_reconnect_resubscribes_everything_held, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		stale_confirmations_are_ignored, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		forgetting_a_worker_releases_its_addresses, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		a_sync_replaces_the_set_without_acks, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		changes_are_sent_in_chunks_of_500, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		broadcast_acks_once_the_pattern_is_confirmed, setup_broadcast,
		teardown),
	    cmocka_unit_test_setup_teardown(
		a_released_address_stays_subscribed_for_the_grace_period,
		setup_grace, teardown),
	    cmocka_unit_test_setup_teardown(
		a_resubscribe_within_the_grace_period_is_acked_at_once,
		setup_grace, teardown),
	    cmocka_unit_test_setup_teardown(
		a_release_while_the_subscribe_is_in_flight_lingers_too,
		setup_grace, teardown),
	    cmocka_unit_test_setup_teardown(
		expired_addresses_are_unsubscribed_in_one_batch, setup_grace,
		teardown),
	    cmocka_unit_test_setup_teardown(
		a_lost_link_ends_the_grace_period, setup_grace, teardown),
	    cmocka_unit_test_setup_teardown(
		a_single_lost_subscription_is_requested_again, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		route_names_the_slots_that_hold_an_address, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
