/*
 * recover.c - the seam between replayed and live messages (recover.h).
 */
#include "recover.h"

#include <stdlib.h>
#include <string.h>

#include "clientmsg.h"
#include "clock.h"
#include "conn.h"
#include "fanout.h"
#include "log.h"
#include "uptx.h"
#include "worker.h"

/* One `history` read in flight. */
struct recover_hist {
	struct dlist_node node; /* in worker->history_reads */
	struct conn *c;
	struct conn_reply *r;
	uint64_t req_id;
	uint64_t started_ms;
	uint32_t next_chunk;
	json_t *messages;
	size_t to_len;
	char to[ENV_ADDR_MAX];
};

static void
recover_hist_end(struct recover_hist *h, struct frame *f)
{
	dlist_remove(&h->node);
	conn_reply_fill(h->c, h->r, f);
	json_decref(h->messages);
	free(h);
}

static void
recover_hist_fail(struct worker *w, struct recover_hist *h, const char *why)
{
	w->c.history_read_errors++;
	recover_hist_end(
	    h, cmsg_error_frame(CMSG_E_UNAVAILABLE, why, conn_reply_ref(h->r)));
}

void
recover_history(struct worker *w, struct conn *c, const char *to, size_t to_len,
    uint32_t limit, const json_t *ref)
{
	struct recover_hist *h = NULL;

	if (to_len > ENV_ADDR_MAX || (h = calloc(1, sizeof(*h))) == NULL ||
	    (h->messages = json_array()) == NULL) {
		free(h);
		w->c.history_read_errors++;
		conn_error(c, CMSG_E_INTERNAL, "out of memory", ref);
		return;
	}
	h->r = conn_reply_later(c, ref);
	if (h->r == NULL) {
		json_decref(h->messages);
		free(h);
		return;
	}
	h->c = c;
	h->req_id = ++w->next_range_req;
	h->started_ms = clock_mono_ms();
	memcpy(h->to, to, to_len);
	h->to_len = to_len;
	dlist_insert_tail(&w->history_reads, &h->node);
	uptx_range(w->up, h->req_id, to, to_len, NULL, 0, limit);
}

void
recover_conn_gone(struct worker *w, struct conn *c)
{
	struct dlist_node *n, *tmp;

	DLIST_FOREACH_SAFE(n, tmp, &w->history_reads) {
		struct recover_hist *h =
		    DLIST_ENTRY(n, struct recover_hist, node);

		if (h->c != c)
			continue;
		dlist_remove(&h->node);
		json_decref(h->messages);
		free(h); /* its reply goes with c's replies */
	}
}

/* A RANGE chunk for a `history` read, if it is one. */
static bool
recover_hist_range(struct worker *w, const struct bus_range *g)
{
	struct dlist_node *n;

	DLIST_FOREACH(n, &w->history_reads) {
		struct recover_hist *h =
		    DLIST_ENTRY(n, struct recover_hist, node);

		if (h->req_id != g->req_id)
			continue;
		if (g->status != RANGE_OK || g->chunk != h->next_chunk) {
			recover_hist_fail(w, h,
			    g->status == RANGE_UNAVAILABLE
				? "history is not available"
				: "history read failed");
			return true;
		}
		h->next_chunk++;
		for (uint32_t i = 0; i < g->n; i++) {
			json_t *e = cmsg_history_entry(&g->entries[i]);

			if (e == NULL ||
			    json_array_append_new(h->messages, e)) {
				recover_hist_fail(w, h, "out of memory");
				return true;
			}
		}
		if (g->last) {
			json_t *msgs = h->messages;

			h->messages = NULL;
			w->c.history_reads++;
			recover_hist_end(h, cmsg_history_frame(h->to, h->to_len,
						conn_reply_ref(h->r), msgs));
		}
		return true;
	}
	return false;
}

struct recover *
recover_new(struct fan_member *m, const char *since, size_t since_len)
{
	struct recover *r;

	if (since_len > ENV_SID_MAX || (r = calloc(1, sizeof(*r))) == NULL)
		return NULL;
	r->m = m;
	r->phase = RECOVER_WAITING;
	memcpy(r->since, since, since_len);
	r->since_len = (uint32_t)since_len;
	r->recovered = -1;
	dlist_node_init(&r->node);
	return r;
}

static void
recover_drop_held(
    struct worker *w, struct recover_held *h, uint32_t n, bool targets)
{
	for (uint32_t i = 0; i < n; i++) {
		frame_unref(h[i].f);
		/* DROP: a live frame held for a connection that went */
		if (targets)
			w->c.drop_closed++;
	}
}

void
recover_free(struct worker *w, struct recover *r)
{
	if (r == NULL)
		return;
	dlist_remove(&r->node);
	/* Replayed frames are targets only once queued; live ones were
	 * counted when they arrived. */
	recover_drop_held(w, r->rep, r->n_rep, false);
	recover_drop_held(w, r->live, r->n_live, true);
	free(r->rep);
	free(r->live);
	free(r);
}

void
recover_start(struct worker *w, struct recover *r, uint64_t now_ms)
{
	struct fan_entry *e = r->m->entry;

	if (r->phase != RECOVER_WAITING || e == NULL)
		return;
	r->phase = RECOVER_READING;
	r->started_ms = now_ms;
	r->req_id = ++w->next_range_req;
	dlist_insert_tail(&w->recovering, &r->node);
	uptx_range(w->up, r->req_id, e->addr, e->addrlen, r->since,
	    r->since_len, w->conf->history_max_recover);
	/* From now on its live messages come here (held). */
	fanout_set_live(r->m);
}

static int
recover_push(struct recover_held **a, uint32_t *n, uint32_t *cap,
    struct frame *f, bool has_id, const struct env_sid *id)
{
	if (*n == *cap) {
		uint32_t nc = *cap ? *cap * 2 : 16;
		struct recover_held *na = realloc(*a, nc * sizeof(**a));

		if (na == NULL)
			return -1;
		*a = na;
		*cap = nc;
	}
	(*a)[*n].f = f;
	(*a)[*n].has_id = has_id;
	if (has_id)
		(*a)[*n].id = *id;
	(*n)++;
	return 0;
}

/* The answer is complete (or given up): announce it. */
static void
recover_answer(struct worker *w, struct recover *r, int recovered)
{
	if (r->phase != RECOVER_READING)
		return;
	dlist_remove(&r->node);
	r->phase = RECOVER_ANSWERED;
	r->recovered = recovered;
	if (recovered == 1)
		w->c.recoveries_full++;
	else
		w->c.recoveries_partial++;
	conn_recovered(r->m, recovered);
}

bool
recover_live(struct worker *w, struct recover *r, struct frame *f,
    const struct env_str *id)
{
	struct env_sid sid;
	bool has_id = id->p != NULL && env_sid_parse(id->p, id->len, &sid) == 0;

	switch (r->phase) {
	case RECOVER_WAITING:
	case RECOVER_DONE:
		return false;
	case RECOVER_READING:
	case RECOVER_ANSWERED:
		if (r->held_bytes + f->len > w->conf->max_queued_bytes ||
		    recover_push(&r->live, &r->n_live, &r->cap_live,
			frame_ref(f), has_id, &sid) != 0) {
			frame_unref(f);
			/* DROP: more held than a queue may hold: the
			 * client is cut as a slow one. */
			w->c.drop_slow_closed++;
			conn_close(r->m->owner, 1013, "slow_client");
			return true;
		}
		r->held_bytes += f->len;
		return true;
	case RECOVER_FLOOR:
		if (!has_id)
			return false;
		if (r->has_last && env_sid_cmp(&sid, &r->last) <= 0) {
			/* Replayed already: not a target after all. */
			w->c.bus_targets--;
			return true;
		}
		r->phase = RECOVER_DONE; /* newer: the floor is passed */
		return false;
	}
	return false;
}

/* A frame for one stored entry, as a MSG would have made it. */
static struct frame *
recover_entry_frame(struct worker *w, const struct bus_range *g,
    const struct bus_range_entry *x)
{
	struct bus_msg m = {.to = g->to,
	    .cls = x->cls,
	    .data = x->data,
	    .from = x->from,
	    .id = x->id,
	    .ts = x->ts};

	return frame_build_msg(&m, w->conf->delivery == CONF_DELIVERY_RAW);
}

void
recover_range(struct worker *w, const struct bus_range *g)
{
	struct dlist_node *n;
	struct recover *r = NULL;

	if (g->slot != w->slot || g->gen != w->gen)
		return;
	DLIST_FOREACH(n, &w->recovering) {
		struct recover *x = DLIST_ENTRY(n, struct recover, node);

		if (x->req_id == g->req_id) {
			r = x;
			break;
		}
	}
	if (r == NULL) {
		(void)recover_hist_range(w, g);
		return; /* or answered by a timeout, or its connection went */
	}
	if (g->chunk != r->next_chunk || g->status != RANGE_OK) {
		/* A lost chunk (the bus dropped it) or no history there:
		 * what came is sent, the promise cannot be made. */
		recover_answer(w, r, 0);
		return;
	}
	r->next_chunk++;
	for (uint32_t i = 0; i < g->n; i++) {
		const struct bus_range_entry *x = &g->entries[i];
		struct env_sid sid;
		struct frame *f;

		if (x->data.len > w->conf->max_message_bytes ||
		    env_sid_parse(x->id.p, x->id.len, &sid) != 0)
			continue;
		f = recover_entry_frame(w, g, x);
		if (f == NULL || recover_push(&r->rep, &r->n_rep, &r->cap_rep,
				     f, true, &sid) != 0) {
			frame_unref(f);
			log_warnx("recovery of %.*s: out of memory",
			    (int)g->to.len, g->to.p);
			recover_answer(w, r, 0);
			return;
		}
		r->has_last = true;
		r->last = sid;
	}
	if (g->last)
		recover_answer(w, r, g->recovered ? 1 : 0);
}

void
recover_tick(struct worker *w, uint64_t now_ms)
{
	struct dlist_node *n, *tmp;

	DLIST_FOREACH_SAFE(n, tmp, &w->history_reads) {
		struct recover_hist *h =
		    DLIST_ENTRY(n, struct recover_hist, node);

		if (now_ms - h->started_ms >= RECOVER_TIMEOUT_MS)
			recover_hist_fail(w, h, "no answer from the bridge");
	}

	DLIST_FOREACH_SAFE(n, tmp, &w->recovering) {
		struct recover *r = DLIST_ENTRY(n, struct recover, node);

		if (now_ms - r->started_ms >= RECOVER_TIMEOUT_MS) {
			log_info("recovery req_id=%llu: no answer in time",
			    (unsigned long long)r->req_id);
			recover_answer(w, r, 0);
		}
	}
}

void
recover_flush(struct worker *w, struct recover *r)
{
	struct conn *c = r->m->owner;

	if (r->phase != RECOVER_ANSWERED)
		return;
	/* Replayed messages are targets like any MSG. */
	for (uint32_t i = 0; i < r->n_rep; i++) {
		w->c.bus_targets++;
		w->c.replayed++;
		conn_deliver(c, r->rep[i].f);
		frame_unref(r->rep[i].f);
	}
	r->n_rep = 0;
	for (uint32_t i = 0; i < r->n_live; i++) {
		struct recover_held *h = &r->live[i];

		if (h->has_id && r->has_last &&
		    env_sid_cmp(&h->id, &r->last) <= 0)
			w->c.bus_targets--; /* replayed already */
		else
			conn_deliver(c, h->f);
		frame_unref(h->f);
	}
	r->n_live = 0;
	r->held_bytes = 0;
	free(r->rep);
	free(r->live);
	r->rep = r->live = NULL;
	r->cap_rep = r->cap_live = 0;
	r->phase = r->has_last ? RECOVER_FLOOR : RECOVER_DONE;
}
