/*
 * interest.c - per-address reference counts and subscription states.
 *
 * Each wanted address has one struct iaddr keyed by its text. Its broker
 * side is `requested` (what the last command sent asked for), `inflight`
 * (that command is not confirmed yet) and `subscribed` (the broker confirmed it
 * and nothing changed since). Every change marks the address dirty;
 * interest_flush() compares want with requested and sends what differs.
 * An address nobody wants while the broker has it waits on the linger list
 * (oldest release first) until its grace period ends; only then does it
 * become dirty. An address is freed once nobody wants it and the broker no
 * longer has it.
 */
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "dlist.h"
#include "hmap.h"
#include "interest.h"

struct iwaiter {
	struct dlist_node node;
	uint32_t slot, gen;
	uint64_t req_id;
};

struct iaddr {
	char *name; /* the address text, NUL-terminated */
	size_t len;
	uint32_t refs;   /* workers holding it */
	bool perm;       /* "all" in interest routing */
	bool requested;  /* the last command sent was SUBSCRIBE */
	bool inflight;   /* that command awaits its confirmation */
	bool subscribed; /* confirmed and in effect */
	bool dirty;      /* on in->dirty */
	struct dlist_node dirty_node;
	bool lingering; /* on in->linger since released_ms */
	uint64_t released_ms;
	struct dlist_node linger_node;
	struct dlist waiters; /* struct iwaiter, oldest first */
};

struct interest {
	bool broadcast;
	bool link_up;
	/* broadcast routing: the pattern subscription */
	bool pat_requested, pat_inflight, pat_confirmed;
	interest_ack_fn *ack;
	void *ack_arg;
	struct hmap *addrs;   /* text -> struct iaddr * */
	struct dlist workers; /* struct worker_table: addr text -> iaddr */
	struct dlist dirty;   /* struct iaddr waiting for a flush */
	struct dlist linger;  /* struct iaddr in their grace period */
	size_t n_lingering;
	uint64_t grace_ms;
	interest_clock_fn *clock;
	void *clock_arg;
	size_t n_subscribed;
	size_t n_waiting;
	size_t n_wanted; /* addresses with interest_want(): kept, not counted */
};

static bool
interest_want(const struct iaddr *a)
{
	return a->refs > 0 || a->perm;
}

static void
interest_mark_dirty(struct interest *in, struct iaddr *a)
{
	if (!a->dirty) {
		a->dirty = true;
		dlist_insert_tail(&in->dirty, &a->dirty_node);
	}
}

static void
interest_linger_stop(struct interest *in, struct iaddr *a)
{
	if (a->lingering) {
		a->lingering = false;
		dlist_remove(&a->linger_node);
		in->n_lingering--;
	}
}

/* Nobody wants a any more: unsubscribe it now, or after the grace period
 * if the broker has (or is getting) it. */
static void
interest_linger_start(struct interest *in, struct iaddr *a)
{
	if (in->grace_ms == 0 || !a->requested || in->broadcast) {
		interest_mark_dirty(in, a);
		return;
	}
	a->lingering = true;
	in->n_lingering++;
	a->released_ms = in->clock(in->clock_arg);
	dlist_insert_tail(&in->linger, &a->linger_node);
}

/* Moves the addresses whose grace period ended to the dirty list. */
static void
interest_linger_expire(struct interest *in)
{
	struct dlist_node *n;
	uint64_t now;

	if (dlist_empty(&in->linger))
		return;
	now = in->clock(in->clock_arg);
	while ((n = dlist_first(&in->linger)) != NULL) {
		struct iaddr *a = DLIST_ENTRY(n, struct iaddr, linger_node);

		if (now - a->released_ms < in->grace_ms)
			break; /* the rest were released later */
		interest_linger_stop(in, a);
		interest_mark_dirty(in, a);
	}
}

static void
interest_set_subscribed(struct interest *in, struct iaddr *a, bool on)
{
	if (a->subscribed == on)
		return;
	a->subscribed = on;
	if (on)
		in->n_subscribed++;
	else
		in->n_subscribed--;
}

static void
interest_addr_free_entry(struct interest *in, struct iaddr *a)
{
	struct dlist_node *n, *tmp;

	DLIST_FOREACH_SAFE(n, tmp, &a->waiters) {
		dlist_remove(n);
		free(DLIST_ENTRY(n, struct iwaiter, node));
		in->n_waiting--;
	}
	interest_set_subscribed(in, a, false);
	dlist_remove(&a->dirty_node);
	interest_linger_stop(in, a);
	hmap_del(in->addrs, a->name, a->len);
	free(a->name);
	free(a);
}

/* Frees a if nothing refers to it any more, in the broker or locally. */
static void
interest_maybe_free(struct interest *in, struct iaddr *a)
{
	if (interest_want(a) || a->requested || a->inflight || a->dirty ||
	    a->lingering)
		return;
	interest_addr_free_entry(in, a);
}

static struct iaddr *
interest_addr_get(struct interest *in, const char *s, size_t len, bool create)
{
	struct iaddr *a = hmap_get(in->addrs, s, len);

	if (a != NULL || !create)
		return a;
	a = calloc(1, sizeof(*a));
	if (a == NULL)
		return NULL;
	a->name = malloc(len + 1);
	if (a->name == NULL) {
		free(a);
		return NULL;
	}
	memcpy(a->name, s, len);
	a->name[len] = '\0';
	a->len = len;
	dlist_node_init(&a->dirty_node);
	dlist_node_init(&a->linger_node);
	dlist_init(&a->waiters);
	if (hmap_put(in->addrs, a->name, len, a) == -1) {
		free(a->name);
		free(a);
		return NULL;
	}
	return a;
}

static void
interest_ack_waiters(struct interest *in, struct iaddr *a)
{
	struct dlist_node *n;

	while ((n = dlist_first(&a->waiters)) != NULL) {
		struct iwaiter *w = DLIST_ENTRY(n, struct iwaiter, node);

		dlist_remove(n);
		in->n_waiting--;
		in->ack(in->ack_arg, w->slot, w->gen, w->req_id, ACK_OK);
		free(w);
	}
}

/* Removes the waits of one worker on a. */
static void
interest_drop_waiters(
    struct interest *in, struct iaddr *a, uint32_t slot, uint32_t gen)
{
	struct dlist_node *n, *tmp;

	DLIST_FOREACH_SAFE(n, tmp, &a->waiters) {
		struct iwaiter *w = DLIST_ENTRY(n, struct iwaiter, node);

		if (w->slot == slot && w->gen == gen) {
			dlist_remove(n);
			free(w);
			in->n_waiting--;
		}
	}
}

/* True if an ADD for a can be acknowledged right now. */
static bool
interest_in_effect(const struct interest *in, const struct iaddr *a)
{
	if (in->broadcast)
		return in->pat_confirmed;
	return a->subscribed;
}

struct interest *
interest_new(bool broadcast, interest_ack_fn *ack, void *arg)
{
	struct interest *in = calloc(1, sizeof(*in));

	if (in == NULL)
		return NULL;
	in->broadcast = broadcast;
	in->ack = ack;
	in->ack_arg = arg;
	dlist_init(&in->dirty);
	dlist_init(&in->linger);
	dlist_init(&in->workers);
	in->addrs = hmap_new();
	if (in->addrs == NULL)
		goto fail;
	if (!broadcast) {
		struct iaddr *all = interest_addr_get(in, "all", 3, true);

		if (all == NULL)
			goto fail;
		all->perm = true;
		in->n_wanted++;
		interest_mark_dirty(in, all);
	}
	return in;
fail:
	interest_free(in);
	return NULL;
}

void
interest_set_grace(struct interest *in, uint64_t grace_ms,
    interest_clock_fn *clock, void *clock_arg)
{
	in->grace_ms = clock != NULL ? grace_ms : 0;
	in->clock = clock;
	in->clock_arg = clock_arg;
}

uint64_t
interest_next_due(const struct interest *in)
{
	struct dlist_node *n = dlist_first(&in->linger);

	if (n == NULL)
		return 0;
	return DLIST_ENTRY(n, struct iaddr, linger_node)->released_ms +
	       in->grace_ms;
}

/* Frees one address and its waiters (hmap_free_with). */
static void
interest_addr_free(void *v)
{
	struct iaddr *a = v;
	struct dlist_node *n, *tmp;

	DLIST_FOREACH_SAFE(n, tmp, &a->waiters) {
		free(DLIST_ENTRY(n, struct iwaiter, node));
	}
	free(a->name);
	free(a);
}

void
interest_free(struct interest *in)
{
	if (in == NULL)
		return;
	workers_tables_free(&in->workers);
	hmap_free_with(in->addrs, interest_addr_free);
	free(in);
}

/* The addresses w holds (NULL: none yet and !create, or out of
 * memory). */
static struct worker_table *
interest_worker(struct interest *in, struct worker *w, bool create)
{
	return workers_table(&in->workers, w, &w->interest_state, create);
}

/* The worker starts holding a (not held before). */
static int
interest_hold(struct interest *in, struct worker_table *w, struct iaddr *a)
{
	if (hmap_put(w->map, a->name, a->len, a) == -1)
		return -1;
	a->refs++;
	if (a->refs == 1) {
		if (!a->perm)
			in->n_wanted++;
		if (a->lingering)
			interest_linger_stop(
			    in, a); /* still subscribed: nothing to send */
		else
			interest_mark_dirty(in, a);
	}
	return 0;
}

/* The worker stops holding a (already removed from w->map); a is freed
 * later, by a flush, once the broker no longer has it. */
static void
interest_release(struct interest *in, struct worker_table *w, struct iaddr *a)
{
	interest_drop_waiters(in, a, w->w->slot, w->w->gen);
	a->refs--;
	if (a->refs == 0) {
		if (!a->perm)
			in->n_wanted--;
		interest_linger_start(in, a);
	}
}

int
interest_add(struct interest *in, struct worker *wk, uint64_t req_id,
    const char *s, size_t len)
{
	uint32_t slot = wk->slot, gen = wk->gen;
	struct addr parsed;
	struct worker_table *w;
	struct iaddr *a;
	struct iwaiter *wt;
	struct dlist_node *n;
	bool created;

	if (addr_parse(s, len, &parsed) == -1) {
		in->ack(in->ack_arg, slot, gen, req_id, ACK_FAILED);
		return 0;
	}
	w = interest_worker(in, wk, true);
	if (w == NULL)
		goto fail;
	created = hmap_get(in->addrs, s, len) == NULL;
	a = interest_addr_get(in, s, len, true);
	if (a == NULL)
		goto fail;
	if (hmap_get(w->map, s, len) == NULL && interest_hold(in, w, a) == -1) {
		if (created)
			interest_maybe_free(in, a);
		goto fail;
	}
	if (interest_in_effect(in, a)) {
		in->ack(in->ack_arg, slot, gen, req_id, ACK_OK);
		return 0;
	}
	DLIST_FOREACH(n, &a->waiters) {
		wt = DLIST_ENTRY(n, struct iwaiter, node);
		if (wt->slot == slot && wt->gen == gen) {
			/* The worker re-requested: only the newest id counts.
			 */
			wt->req_id = req_id;
			return 0;
		}
	}
	wt = calloc(1, sizeof(*wt));
	if (wt == NULL)
		goto fail;
	wt->slot = slot;
	wt->gen = gen;
	wt->req_id = req_id;
	dlist_insert_tail(&a->waiters, &wt->node);
	in->n_waiting++;
	return 0;
fail:
	in->ack(in->ack_arg, slot, gen, req_id, ACK_FAILED);
	return -1;
}

void
interest_del(struct interest *in, struct worker *wk, const char *s, size_t len)
{
	struct worker_table *w = interest_worker(in, wk, false);
	struct iaddr *a;

	if (w == NULL || (a = hmap_del(w->map, s, len)) == NULL)
		return;
	interest_release(in, w, a);
}

void
interest_forget(struct interest *in, struct worker *wk)
{
	struct worker_table *w = interest_worker(in, wk, false);
	struct hmap_iter it;
	const void *k;
	size_t klen;
	void *v;

	if (w == NULL)
		return;
	hmap_iter_init(w->map, &it);
	while (hmap_iter_next(&it, &k, &klen, &v))
		interest_release(in, w, v);
	workers_table_free(w);
}

int
interest_sync(struct interest *in, struct worker *wk,
    const struct env_str *addrs, size_t n, size_t *n_invalid)
{
	struct worker_table *w = interest_worker(in, wk, true);
	struct hmap *next = NULL;
	struct hmap_iter it;
	const void *k;
	size_t klen, invalid = 0;
	void *v;
	int rc = -1;

	if (w == NULL)
		goto out;
	next = hmap_new();
	if (next == NULL)
		goto out;
	for (size_t i = 0; i < n; i++) {
		struct addr parsed;

		if (addrs[i].p == NULL ||
		    addr_parse(addrs[i].p, addrs[i].len, &parsed) == -1) {
			invalid++;
			continue;
		}
		/* The value is unused; any non-NULL pointer will do. */
		if (hmap_put(next, addrs[i].p, addrs[i].len, w) == -1)
			goto out;
	}
	/* Release what the worker no longer holds... */
	hmap_iter_init(w->map, &it);
	while (hmap_iter_next(&it, &k, &klen, &v)) {
		if (hmap_get(next, k, klen) == NULL) {
			struct iaddr *a = v;

			hmap_iter_del(&it);
			interest_release(in, w, a);
		}
	}
	/* ...then take what is new. */
	hmap_iter_init(next, &it);
	while (hmap_iter_next(&it, &k, &klen, &v)) {
		struct iaddr *a;

		if (hmap_get(w->map, k, klen) != NULL)
			continue;
		a = interest_addr_get(in, k, klen, true);
		if (a == NULL)
			goto out;
		if (interest_hold(in, w, a) == -1) {
			interest_maybe_free(in, a);
			goto out;
		}
	}
	rc = 0;
out:
	hmap_free(next);
	if (n_invalid != NULL)
		*n_invalid = invalid;
	return rc;
}

void
interest_link_up(struct interest *in)
{
	struct hmap_iter it;
	const void *k;
	size_t klen;
	void *v;

	in->link_up = true;
	hmap_iter_init(in->addrs, &it);
	while (hmap_iter_next(&it, &k, &klen, &v)) {
		struct iaddr *a = v;

		if (interest_want(a))
			interest_mark_dirty(in, a);
	}
}

void
interest_link_down(struct interest *in)
{
	struct hmap_iter it;
	const void *k;
	size_t klen;
	void *v;

	in->link_up = false;
	in->pat_requested = in->pat_inflight = in->pat_confirmed = false;
	hmap_iter_init(in->addrs, &it);
	while (hmap_iter_next(&it, &k, &klen, &v)) {
		struct iaddr *a = v;

		a->requested = a->inflight = false;
		interest_set_subscribed(in, a, false);
		interest_linger_stop(in, a);
		if (!interest_want(a)) {
			/* Nobody wants it and the broker forgot it. */
			hmap_iter_del(&it);
			a->refs = 0;
			dlist_remove(&a->dirty_node);
			free(a->name);
			free(a);
		}
	}
}

bool
interest_dirty(const struct interest *in)
{
	uint64_t due;

	if (!in->link_up)
		return false;
	if (in->broadcast)
		return !in->pat_requested;
	if (!dlist_empty(&in->dirty))
		return true;
	due = interest_next_due(in);
	return due != 0 && in->clock(in->clock_arg) >= due;
}

void
interest_lost(struct interest *in, const char *s, size_t len)
{
	struct iaddr *a = hmap_get(in->addrs, s, len);

	if (a == NULL || in->broadcast)
		return;
	a->requested = a->inflight = false;
	interest_set_subscribed(in, a, false);
	interest_linger_stop(in, a);
	interest_mark_dirty(
	    in, a); /* resubscribed if still wanted, else freed */
}

struct chunk {
	const char *names[INTEREST_CHUNK];
	size_t lens[INTEREST_CHUNK];
	size_t n;
};

static size_t
interest_chunk_send(
    struct chunk *c, enum interest_cmd cmd, interest_cmd_fn *fn, void *arg)
{
	size_t n = c->n;

	c->n = 0;
	if (n == 0)
		return 0;
	(void)fn(arg, cmd, c->names, c->lens, n);
	return 1;
}

/* Broadcast routing: the one pattern; addresses only count references. */
static size_t
interest_flush_broadcast(struct interest *in, interest_cmd_fn *fn, void *arg)
{
	struct dlist_node *n, *tmp;
	size_t sent = 0;

	if (!in->pat_requested) {
		if (fn(arg, INTEREST_PSUBSCRIBE, NULL, NULL, 0) == 0) {
			in->pat_requested = true;
			in->pat_inflight = true;
		}
		sent++;
	}
	DLIST_FOREACH_SAFE(n, tmp, &in->dirty) {
		struct iaddr *a = DLIST_ENTRY(n, struct iaddr, dirty_node);

		dlist_remove(n);
		a->dirty = false;
		interest_maybe_free(in, a);
	}
	return sent;
}

size_t
interest_flush(struct interest *in, interest_cmd_fn *fn, void *arg)
{
	/* Two chunks are 16 KiB: on the heap, not the stack. */
	struct chunk *sub = NULL, *unsub = NULL;
	struct dlist_node *n, *tmp;
	size_t sent = 0;

	if (!in->link_up)
		return 0;
	interest_linger_expire(in);
	if (in->broadcast)
		return interest_flush_broadcast(in, fn, arg);
	sub = calloc(1, sizeof(*sub));
	unsub = calloc(1, sizeof(*unsub));
	if (sub == NULL || unsub == NULL)
		goto out; /* retried at the next flush */
	DLIST_FOREACH_SAFE(n, tmp, &in->dirty) {
		struct iaddr *a = DLIST_ENTRY(n, struct iaddr, dirty_node);

		if (a->inflight)
			continue; /* re-marked when the confirmation comes */
		if (a->lingering) {
			/* Its grace period decides: interest_linger_expire().
			 */
			dlist_remove(n);
			a->dirty = false;
			continue;
		}
		dlist_remove(n);
		a->dirty = false;
		if (interest_want(a) != a->requested) {
			struct chunk *c = interest_want(a) ? sub : unsub;

			a->requested = interest_want(a);
			a->inflight = true;
			if (!a->requested)
				interest_set_subscribed(in, a, false);
			c->names[c->n] = a->name;
			c->lens[c->n] = a->len;
			if (++c->n == INTEREST_CHUNK)
				sent += interest_chunk_send(c,
				    a->requested ? INTEREST_SUBSCRIBE
						 : INTEREST_UNSUBSCRIBE,
				    fn, arg);
		} else {
			interest_maybe_free(in, a);
		}
	}
	sent += interest_chunk_send(sub, INTEREST_SUBSCRIBE, fn, arg);
	sent += interest_chunk_send(unsub, INTEREST_UNSUBSCRIBE, fn, arg);
out:
	free(sub);
	free(unsub);
	return sent;
}

void
interest_confirmed(
    struct interest *in, enum interest_cmd cmd, const char *s, size_t len)
{
	struct iaddr *a;

	if (cmd == INTEREST_PSUBSCRIBE) {
		struct hmap_iter it;
		const void *k;
		size_t klen;
		void *v;

		if (!in->broadcast || !in->pat_inflight)
			return;
		in->pat_inflight = false;
		in->pat_confirmed = true;
		hmap_iter_init(in->addrs, &it);
		while (hmap_iter_next(&it, &k, &klen, &v))
			interest_ack_waiters(in, v);
		return;
	}
	if (in->broadcast || (a = hmap_get(in->addrs, s, len)) == NULL ||
	    !a->inflight)
		return;
	if ((cmd == INTEREST_SUBSCRIBE) != a->requested)
		return; /* not the confirmation of what is in flight */
	a->inflight = false;
	if (a->requested) {
		interest_set_subscribed(in, a, true);
		interest_ack_waiters(in, a);
	}
	if (interest_want(a) != a->requested && !a->lingering)
		interest_mark_dirty(in, a); /* changed while in flight */
	else
		interest_maybe_free(in, a);
}

size_t
interest_route(const struct interest *in, const char *s, size_t len,
    struct interest_slots *out)
{
	const struct iaddr *a = hmap_get(in->addrs, s, len);
	const struct dlist_node *n;
	uint32_t found = 0;
	size_t slots = 0;

	memset(out, 0, sizeof(*out));
	if (a == NULL || a->refs == 0)
		return 0;
	/* refs counts the workers holding a: stop once all were seen. */
	DLIST_FOREACH(n, &in->workers) {
		const struct worker_table *t =
		    DLIST_ENTRY(n, struct worker_table, node);
		uint32_t slot = t->w->slot;
		uint64_t bit;

		if (hmap_get(t->map, s, len) == NULL)
			continue;
		found++;
		if (slot >= 1 && slot <= INTEREST_SLOTS_MAX) {
			bit = UINT64_C(1) << ((slot - 1) % 64);
			if (!(out->bits[(slot - 1) / 64] & bit)) {
				out->bits[(slot - 1) / 64] |= bit;
				slots++;
			}
		}
		if (found == a->refs)
			break;
	}
	return slots;
}

size_t
interest_addresses(const struct interest *in)
{
	return in->n_wanted;
}

size_t
interest_subscribed(const struct interest *in)
{
	if (in->broadcast)
		return in->pat_confirmed ? 1 : 0;
	return in->n_subscribed;
}

size_t
interest_workers(const struct interest *in)
{
	const struct dlist_node *n;
	size_t count = 0;

	DLIST_FOREACH(n, &in->workers)
		count++;
	return count;
}

size_t
interest_waiting(const struct interest *in)
{
	return in->n_waiting;
}

size_t
interest_lingering(const struct interest *in)
{
	return in->n_lingering;
}
