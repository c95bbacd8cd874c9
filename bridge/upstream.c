/*
 * upstream.c - one upstream envelope at a time (see upstream.h).
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "clock.h"
#include "history.h"
#include "keys.h"
#include "log.h"
#include "upstream.h"
#include "wspenv.h"

/* Reads in flight at most; more are answered RANGE_FAILED at once. */
#define UPSTREAM_RANGES_MAX 10000

/* One history read in flight: where its answer goes. */
struct upstream_range {
	struct upstream_range *next, *prev;
	struct upstream *u;
	struct bus_range head;
	char to[ENV_ADDR_MAX];
};

struct upstream {
	struct upstream_deps d;
	msgpack_sbuffer out; /* wspenv encoding scratch */
	struct upstream_stats st;
	struct upstream_range ranges; /* list head */
	size_t n_ranges;
};

struct upstream *
upstream_new(const struct upstream_deps *d)
{
	struct upstream *u = calloc(1, sizeof(*u));

	if (u == NULL)
		return NULL;
	u->d = *d;
	msgpack_sbuffer_init(&u->out);
	u->ranges.next = u->ranges.prev = &u->ranges;
	return u;
}

void
upstream_free(struct upstream *u)
{
	if (u == NULL)
		return;
	while (u->ranges.next != &u->ranges) {
		struct upstream_range *q = u->ranges.next;

		q->next->prev = q->prev;
		q->prev->next = q->next;
		free(q);
	}
	msgpack_sbuffer_destroy(&u->out);
	free(u);
}

/* A client publish: wrapped in a \xC1WSP envelope for its sender and id. */
static void
upstream_publish(struct upstream *u, const struct up_publish *p)
{
	struct addr parsed;
	struct wspenv e = {
	    .data = p->data,
	    .from = p->from,
	    .id = p->id,
	    .ts = clock_wall_ms(),
	    .json = true,
	};

	if (p->to.p == NULL || addr_parse(p->to.p, p->to.len, &parsed) == -1) {
		log_debug("upstream publish dropped reason=bad_address");
		u->st.bad_address++;
		return;
	}
	if (e.data.p == NULL)
		e.data.p = "";
	msgpack_sbuffer_clear(&u->out);
	if (wspenv_encode(&u->out, &e) == -1) {
		u->st.encode++;
		return;
	}
	(void)broker_publish(
	    u->d.broker, p->to.p, p->to.len, u->out.data, u->out.size);
}

#define UPSTREAM_STR(s) ((s).p != NULL ? (s).p : "")

static void
upstream_send(struct upstream *u, const struct up_send *s)
{
	struct broker_inbound in = {
	    .user = UPSTREAM_STR(s->user),
	    .user_len = s->user.len,
	    .conn = UPSTREAM_STR(s->conn),
	    .conn_len = s->conn.len,
	    .data = UPSTREAM_STR(s->data),
	    .data_len = s->data.len,
	};

	(void)broker_inbound(u->d.broker, &in);
}

static void
upstream_event(struct upstream *u, struct worker *w, const struct up_event *ev)
{
	struct broker_event be = {
	    .type = UPSTREAM_STR(ev->type),
	    .type_len = ev->type.len,
	    .user = UPSTREAM_STR(ev->user),
	    .user_len = ev->user.len,
	    .conn = UPSTREAM_STR(ev->conn),
	    .conn_len = ev->conn.len,
	    .reason = UPSTREAM_STR(ev->reason),
	    .reason_len = ev->reason.len,
	};
	int delta = 0;

	(void)broker_event(u->d.broker, &be);
	if (ev->type.len == 7 && memcmp(ev->type.p, "connect", 7) == 0)
		delta = 1;
	else if (ev->type.len == 10 &&
		 memcmp(ev->type.p, "disconnect", 10) == 0)
		delta = -1;
	if (delta != 0)
		(void)presence_event(
		    u->d.presence, w, ev->user.p, ev->user.len, delta);
}

static void
upstream_sync(struct upstream *u, struct worker *w, const struct up_sync *s)
{
	size_t invalid = 0;

	(void)interest_sync(u->d.interest, w, s->addrs, s->n_addrs, &invalid);
	(void)presence_sync(u->d.presence, w, s->users, s->n_users);
	log_info("worker sync slot=%" PRIu32 " gen=%" PRIu32 " addrs=%" PRIu32
		 " invalid=%zu users=%" PRIu32 " epoch_match=%d",
	    w->slot, w->gen, s->n_addrs, invalid, s->n_users,
	    s->epoch == u->d.epoch);
}

/* ---- history reads: UP_RANGE_REQ in, BUS_RANGE chunks out ---- */

static int
upstream_range_chunk(void *arg, const struct bus_range *chunk)
{
	struct upstream *u = arg;

	if (bus_send_range(u->d.bus, chunk) != 0) {
		u->st.encode++;
		return -1;
	}
	return 0;
}

static void
upstream_range_answer(struct upstream *u, const struct bus_range *head,
    const struct history_range *h, enum range_status st)
{
	if (st == RANGE_BAD_REQUEST)
		u->st.range_bad++;
	else if (st != RANGE_OK)
		u->st.range_failed++;
	else {
		u->st.range_entries += h->n;
		u->st.ranges_recovered += h->recovered;
	}
	(void)history_range_emit(head, st == RANGE_OK ? h : NULL, st,
	    HISTORY_CHUNK_BYTES, upstream_range_chunk, u);
}

static void
upstream_range_done(
    void *arg, const struct history_range *h, enum range_status st)
{
	struct upstream_range *q = arg;
	struct upstream *u = q->u;

	q->next->prev = q->prev;
	q->prev->next = q->next;
	u->n_ranges--;
	upstream_range_answer(u, &q->head, h, st);
	free(q);
}

static void
upstream_range(struct upstream *u, const struct up_env *env)
{
	const struct up_range *r = &env->u.range;
	struct bus_range head = {.epoch = u->d.epoch,
	    .slot = env->w.slot,
	    .gen = env->w.gen,
	    .req_id = r->req_id,
	    .to = r->addr};
	struct upstream_range *q;
	char key[KEYS_MAX];
	uint32_t limit;
	enum range_status st;

	u->st.range_requests++;
	st = history_request(r, u->d.conf->prefix,
	    u->d.conf->history_max_recover, key, sizeof(key), &limit);
	if (st == RANGE_OK && u->n_ranges >= UPSTREAM_RANGES_MAX)
		st = RANGE_FAILED;
	if (st == RANGE_OK && (q = calloc(1, sizeof(*q))) == NULL)
		st = RANGE_FAILED;
	if (st != RANGE_OK) {
		upstream_range_answer(u, &head, NULL, st);
		return;
	}
	q->u = u;
	q->head = head;
	memcpy(q->to, r->addr.p, r->addr.len);
	q->head.to = (struct env_str){q->to, r->addr.len};
	q->next = &u->ranges;
	q->prev = u->ranges.prev;
	q->prev->next = q;
	u->ranges.prev = q;
	u->n_ranges++;
	/* May answer from inside the call (history off, unavailable). */
	(void)broker_range(u->d.broker, r->addr.p, r->addr.len, r->since.p,
	    r->since.len, limit, upstream_range_done, q);
}

void
upstream_dispatch(
    struct upstream *u, uint32_t pipe_id, const struct up_env *env)
{
	struct worker *w;

	u->st.envelopes++;
	w = workers_touch(u->d.workers, &env->w, pipe_id, loop_now(u->d.loop));
	if (w == NULL) {
		log_errx("out of memory: upstream envelope dropped");
		u->st.bad_upstream++;
		return;
	}
	if (env->kind == UP_RANGE_REQ) {
		upstream_range(u, env);
		return;
	}
	switch (env->kind) {
	case UP_INTEREST_ADD:
		(void)interest_add(u->d.interest, w, env->u.interest.req_id,
		    env->u.interest.addr.p, env->u.interest.addr.len);
		break;
	case UP_INTEREST_DEL:
		interest_del(u->d.interest, w, env->u.interest.addr.p,
		    env->u.interest.addr.len);
		break;
	case UP_INTEREST_SYNC:
		upstream_sync(u, w, &env->u.sync);
		break;
	case UP_PUBLISH:
		upstream_publish(u, &env->u.publish);
		break;
	case UP_SEND:
		upstream_send(u, &env->u.send);
		break;
	case UP_EVENT:
		upstream_event(u, w, &env->u.event);
		break;
	case UP_COUNTERS:
		workers_set_counters(w, &env->u.counters);
		break;
	case UP_BYE:
		workers_forget(u->d.workers, w, "bye");
		break;
	}
}

void
upstream_bad(struct upstream *u)
{
	u->st.bad_upstream++;
}

void
upstream_stats(const struct upstream *u, struct upstream_stats *out)
{
	*out = u->st;
}
