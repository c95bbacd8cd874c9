/*
 * presence.c - per-worker and per-node connection counts by user.
 *
 * Worker tables map user id -> count, the count stored directly in the
 * value pointer (always >= 1 while present, so never NULL). The node table
 * maps user id -> struct puser with the total and a dirty mark.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "dlist.h"
#include "hmap.h"
#include "presence.h"

struct puser {
	char *name;
	size_t len;
	uint64_t total;
	bool dirty;
	struct dlist_node dirty_node;
};

struct presence {
	struct hmap *users;   /* user id -> struct puser * */
	struct dlist workers; /* struct worker_table */
	struct dlist dirty;
	uint64_t conns;
	size_t online; /* users with total > 0: kept, not counted (stats ask
			* several times a second) */
};

/* More connections than any worker can hold (per user, per worker). */
#define PRESENCE_CONNS_MAX ((uint64_t)UINT32_MAX)

#define COUNT_PTR(n) ((void *)(uintptr_t)(n))
#define PTR_COUNT(p) ((uint64_t)(uintptr_t)(p))

struct presence *
presence_new(void)
{
	struct presence *p = calloc(1, sizeof(*p));

	if (p == NULL)
		return NULL;
	dlist_init(&p->dirty);
	dlist_init(&p->workers);
	p->users = hmap_new();
	if (p->users == NULL) {
		presence_free(p);
		return NULL;
	}
	return p;
}

/* Frees one user entry, already out of the map (also hmap_free_with). */
static void
presence_user_destroy(void *v)
{
	struct puser *u = v;

	free(u->name);
	free(u);
}

static void
presence_user_free(struct presence *p, struct puser *u)
{
	dlist_remove(&u->dirty_node);
	hmap_del(p->users, u->name, u->len);
	presence_user_destroy(u);
}

void
presence_free(struct presence *p)
{
	if (p == NULL)
		return;
	workers_tables_free(&p->workers);
	hmap_free_with(p->users, presence_user_destroy);
	free(p);
}

/* w's users and their connection counts (NULL: none yet and !create, or
 * out of memory). */
static struct worker_table *
presence_worker(struct presence *p, struct worker *w, bool create)
{
	return workers_table(&p->workers, w, &w->presence_state, create);
}

/* Adds delta (which never takes the total below 0) to the node total. */
static int
presence_node_add(
    struct presence *p, const char *user, size_t len, int64_t delta)
{
	struct puser *u = hmap_get(p->users, user, len);

	if (u == NULL) {
		if (delta <= 0)
			return 0;
		u = calloc(1, sizeof(*u));
		if (u == NULL)
			return -1;
		u->name = malloc(len + 1);
		if (u->name == NULL) {
			free(u);
			return -1;
		}
		memcpy(u->name, user, len);
		u->name[len] = '\0';
		u->len = len;
		dlist_node_init(&u->dirty_node);
		if (hmap_put(p->users, u->name, len, u) == -1) {
			presence_user_destroy(u);
			return -1;
		}
	}
	if (u->total == 0 && delta > 0)
		p->online++;
	u->total = (uint64_t)((int64_t)u->total + delta);
	if (u->total == 0 && delta < 0)
		p->online--;
	p->conns = (uint64_t)((int64_t)p->conns + delta);
	if (!u->dirty) {
		u->dirty = true;
		dlist_insert_tail(&p->dirty, &u->dirty_node);
	}
	return 0;
}

/* Sets the worker's count of user to n, adjusting the node total. */
static int
presence_worker_set(struct presence *p, struct worker_table *w,
    const char *user, size_t len, uint64_t n)
{
	uint64_t old = PTR_COUNT(hmap_get(w->map, user, len));

	if (n == old)
		return 0;
	if (n == 0) {
		hmap_del(w->map, user, len);
	} else if (hmap_put(w->map, user, len, COUNT_PTR(n)) == -1) {
		return -1;
	}
	if (presence_node_add(p, user, len, (int64_t)n - (int64_t)old) == -1) {
		/* Undo, so worker and node tables stay consistent. */
		if (old == 0)
			hmap_del(w->map, user, len);
		else
			(void)hmap_put(w->map, user, len, COUNT_PTR(old));
		return -1;
	}
	return 0;
}

int
presence_event(struct presence *p, struct worker *wk, const char *user,
    size_t len, int delta)
{
	struct worker_table *w;
	uint64_t old;

	if (user == NULL || !addr_id_valid(user, len))
		return 0;
	w = presence_worker(p, wk, delta > 0);
	if (w == NULL)
		return delta > 0 ? -1 : 0;
	old = PTR_COUNT(hmap_get(w->map, user, len));
	if (delta < 0 && old == 0)
		return 0;
	return presence_worker_set(
	    p, w, user, len, delta > 0 ? old + 1 : old - 1);
}

int
presence_sync(struct presence *p, struct worker *wk,
    const struct up_counter *users, size_t n)
{
	struct worker_table *w = presence_worker(p, wk, true);
	struct hmap *listed;
	struct hmap_iter it;
	const void *k;
	size_t klen;
	void *v;
	int rc = 0;

	if (w == NULL || (listed = hmap_new()) == NULL)
		return -1;
	for (size_t i = 0; i < n; i++) {
		const struct env_str *u = &users[i].name;

		if (u->p == NULL || users[i].value == 0 ||
		    !addr_id_valid(u->p, u->len))
			continue;
		if (hmap_put(listed, u->p, u->len, COUNT_PTR(1)) == -1)
			rc = -1;
	}
	/* Zero the users the new table does not mention... */
	hmap_iter_init(w->map, &it);
	while (hmap_iter_next(&it, &k, &klen, &v)) {
		if (hmap_get(listed, k, klen) == NULL) {
			(void)presence_node_add(
			    p, k, klen, -(int64_t)PTR_COUNT(v));
			hmap_iter_del(&it);
		}
	}
	hmap_free(listed);
	/* ...and set the others. */
	for (size_t i = 0; i < n; i++) {
		const struct env_str *u = &users[i].name;

		if (u->p == NULL || users[i].value == 0 ||
		    !addr_id_valid(u->p, u->len))
			continue;
		/* Clamped: a bogus count must not overflow the totals. */
		if (presence_worker_set(p, w, u->p, u->len,
			users[i].value > PRESENCE_CONNS_MAX
			    ? PRESENCE_CONNS_MAX
			    : users[i].value) == -1)
			rc = -1;
	}
	return rc;
}

void
presence_forget(struct presence *p, struct worker *wk)
{
	struct worker_table *w = presence_worker(p, wk, false);
	struct hmap_iter it;
	const void *k;
	size_t klen;
	void *v;

	if (w == NULL)
		return;
	hmap_iter_init(w->map, &it);
	while (hmap_iter_next(&it, &k, &klen, &v))
		(void)presence_node_add(p, k, klen, -(int64_t)PTR_COUNT(v));
	workers_table_free(w);
}

void
presence_flush(
    struct presence *p, presence_emit_fn *fn, presence_done_fn *done, void *arg)
{
	struct dlist gone; /* users at 0: freed once fn saw them all */
	struct dlist_node *n;

	dlist_init(&gone);
	while ((n = dlist_first(&p->dirty)) != NULL) {
		struct puser *u = DLIST_ENTRY(n, struct puser, dirty_node);

		dlist_remove(n);
		u->dirty = false;
		fn(arg, u->name, u->len, u->total);
		if (u->total == 0)
			dlist_insert_tail(&gone, n);
	}
	if (done != NULL)
		done(arg);
	while ((n = dlist_first(&gone)) != NULL)
		presence_user_free(p, DLIST_ENTRY(n, struct puser, dirty_node));
}

void
presence_each(struct presence *p, presence_emit_fn *fn, void *arg)
{
	struct hmap_iter it;
	const void *k;
	size_t klen;
	void *v;

	hmap_iter_init(p->users, &it);
	while (hmap_iter_next(&it, &k, &klen, &v)) {
		struct puser *u = v;

		dlist_remove(&u->dirty_node);
		u->dirty = false;
		if (u->total == 0) {
			hmap_iter_del(&it);
			presence_user_destroy(u);
			continue;
		}
		fn(arg, u->name, u->len, u->total);
	}
}

uint64_t
presence_connections(const struct presence *p)
{
	return p->conns;
}

size_t
presence_users(const struct presence *p)
{
	return p->online;
}
