/*
 * fanout.c - address -> memberships routing and interest refcounts (see
 * fanout.h).
 */
#include "fanout.h"

#include <stdlib.h>
#include <string.h>

#include "hmap.h"

struct fanout {
	const struct fanout_ops *ops;
	void *arg;
	struct hmap *by_addr; /* addr -> struct fan_entry */
	struct hmap *by_req;  /* req_id (8 bytes) -> pending struct fan_entry */
	struct dlist pending; /* pending entries, oldest request first */
	size_t n_pending;
	uint64_t next_req_id;
};

struct fanout *
fanout_new(const struct fanout_ops *ops, void *arg)
{
	struct fanout *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return NULL;
	f->ops = ops;
	f->arg = arg;
	f->by_addr = hmap_new();
	f->by_req = hmap_new();
	if (f->by_addr == NULL || f->by_req == NULL) {
		hmap_free(f->by_addr);
		hmap_free(f->by_req);
		free(f);
		return NULL;
	}
	dlist_init(&f->pending);
	f->next_req_id = 1;
	return f;
}

/* Frees an entry and its memberships (also hmap_free_with). */
static void
fanout_entry_free(void *v)
{
	struct fan_entry *e = v;
	struct dlist_node *n, *tmp;

	DLIST_FOREACH_SAFE(n, tmp, &e->members) {
		struct fan_member *m =
		    DLIST_ENTRY(n, struct fan_member, by_addr);

		dlist_remove(&m->by_addr);
		dlist_remove(&m->by_owner);
		free(m);
	}
	free(e);
}

void
fanout_free(struct fanout *f)
{
	if (f == NULL)
		return;
	hmap_free_with(f->by_addr, fanout_entry_free);
	hmap_free(f->by_req);
	free(f);
}

/* (Re)sends INTEREST_ADD for e with a fresh req_id. If the req map cannot
 * take the new id, the entry keeps its old one and the next tick retries. */
static void
fanout_entry_request(struct fanout *f, struct fan_entry *e, uint64_t now_ms)
{
	uint64_t id = f->next_req_id;

	if (hmap_put(f->by_req, &id, sizeof(id), e) == -1) {
		/* Keep it pending so the next tick retries the request. */
		if (!dlist_node_linked(&e->pending_node)) {
			e->req_id = 0; /* never a key of by_req */
			e->sent_at = now_ms;
			dlist_insert_tail(&f->pending, &e->pending_node);
			f->n_pending++;
		}
		return;
	}
	f->next_req_id++;
	if (dlist_node_linked(&e->pending_node)) {
		hmap_del(f->by_req, &e->req_id, sizeof(e->req_id));
		dlist_remove(&e->pending_node);
	} else {
		f->n_pending++;
	}
	e->req_id = id;
	e->sent_at = now_ms;
	dlist_insert_tail(&f->pending, &e->pending_node);
	f->ops->send_add(f->arg, id, e->addr, e->addrlen);
}

static void
fanout_entry_unpend(struct fanout *f, struct fan_entry *e)
{
	if (!dlist_node_linked(&e->pending_node))
		return;
	hmap_del(f->by_req, &e->req_id, sizeof(e->req_id));
	dlist_remove(&e->pending_node);
	f->n_pending--;
}

struct fan_member *
fanout_join(struct fanout *f, const char *addr, size_t len, void *owner,
    struct dlist *owner_list, uint64_t now_ms)
{
	struct fan_entry *e = hmap_get(f->by_addr, addr, len);
	struct fan_member *m = calloc(1, sizeof(*m));

	if (m == NULL)
		return NULL;
	if (e == NULL) {
		e = calloc(1, sizeof(*e) + len + 1);
		if (e == NULL) {
			free(m);
			return NULL;
		}
		dlist_init(&e->members);
		dlist_node_init(&e->pending_node);
		e->state = FAN_PENDING;
		e->addrlen = len;
		memcpy(e->addr, addr, len);
		if (hmap_put(f->by_addr, e->addr, len, e) == -1) {
			free(e);
			free(m);
			return NULL;
		}
		fanout_entry_request(f, e, now_ms);
	}
	m->entry = e;
	m->owner = owner;
	m->ready = e->state == FAN_ACTIVE;
	dlist_insert_tail(&e->members, &m->by_addr);
	dlist_insert_tail(owner_list, &m->by_owner);
	e->refs++;
	return m;
}

void
fanout_leave(struct fanout *f, struct fan_member *m)
{
	struct fan_entry *e;

	if (m == NULL)
		return;
	dlist_remove(&m->by_owner);
	e = m->entry;
	if (e != NULL) {
		dlist_remove(&m->by_addr);
		if (m->live)
			e->live--;
		if (--e->refs == 0) {
			f->ops->send_del(f->arg, e->addr, e->addrlen);
			fanout_entry_unpend(f, e);
			hmap_del(f->by_addr, e->addr, e->addrlen);
			free(e);
		}
	}
	free(m);
}

void
fanout_set_live(struct fan_member *m)
{
	if (m->live || !m->ready || m->entry == NULL)
		return;
	m->live = true;
	m->entry->live++;
}

struct fan_entry *
fanout_find(const struct fanout *f, const char *addr, size_t len)
{
	struct fan_entry *e = hmap_get(f->by_addr, addr, len);

	return e != NULL && e->state == FAN_ACTIVE ? e : NULL;
}

uint32_t
fanout_deliver(struct fanout *f, struct fan_entry *e, void *msg)
{
	struct dlist_node *n;
	uint32_t k = 0;

	DLIST_FOREACH(n, &e->members) {
		struct fan_member *m =
		    DLIST_ENTRY(n, struct fan_member, by_addr);

		if (m->live) {
			f->ops->deliver(f->arg, m, msg);
			k++;
		}
	}
	return k;
}

int
fanout_ack(struct fanout *f, uint64_t req_id, bool failed)
{
	struct fan_entry *e = hmap_get(f->by_req, &req_id, sizeof(req_id));
	struct dlist_node *n, *tmp;

	if (e == NULL || e->state != FAN_PENDING)
		return -1;
	fanout_entry_unpend(f, e);
	if (!failed) {
		e->state = FAN_ACTIVE;
		DLIST_FOREACH_SAFE(n, tmp, &e->members) {
			struct fan_member *m =
			    DLIST_ENTRY(n, struct fan_member, by_addr);

			m->ready = true;
			f->ops->ready(f->arg, m);
		}
		return 0;
	}
	/* The bridge holds nothing for a refused address: no DEL. */
	hmap_del(f->by_addr, e->addr, e->addrlen);
	DLIST_FOREACH_SAFE(n, tmp, &e->members) {
		struct fan_member *m =
		    DLIST_ENTRY(n, struct fan_member, by_addr);

		dlist_remove(&m->by_addr);
		m->entry = NULL;
		m->live = false;
		f->ops->failed(f->arg, m);
	}
	free(e);
	return 0;
}

uint32_t
fanout_tick(struct fanout *f, uint64_t now_ms)
{
	struct dlist_node *n;
	uint32_t k = 0;
	size_t i, todo = f->n_pending;

	/* Each re-request moves the entry to the tail: visit at most the
	 * entries that were pending on entry. */
	for (i = 0; i < todo && (n = dlist_first(&f->pending)) != NULL; i++) {
		struct fan_entry *e =
		    DLIST_ENTRY(n, struct fan_entry, pending_node);

		if (e->sent_at + FANOUT_ACK_TIMEOUT_MS > now_ms)
			break;
		fanout_entry_request(f, e, now_ms);
		k++;
	}
	return k;
}

uint32_t
fanout_resend_pending(struct fanout *f, uint64_t now_ms)
{
	struct dlist_node *n;
	uint32_t k = 0;
	size_t i, todo = f->n_pending;

	for (i = 0; i < todo && (n = dlist_first(&f->pending)) != NULL; i++) {
		fanout_entry_request(
		    f, DLIST_ENTRY(n, struct fan_entry, pending_node), now_ms);
		k++;
	}
	return k;
}

void
fanout_foreach(
    struct fanout *f, void (*fn)(void *arg, struct fan_entry *e), void *arg)
{
	struct hmap_iter it;
	const void *k;
	size_t klen;
	void *v;

	hmap_iter_init(f->by_addr, &it);
	while (hmap_iter_next(&it, &k, &klen, &v))
		fn(arg, v);
}

size_t
fanout_count(const struct fanout *f)
{
	return hmap_count(f->by_addr);
}

size_t
fanout_pending_count(const struct fanout *f)
{
	return f->n_pending;
}
