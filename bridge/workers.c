/*
 * workers.c - the worker registry: a map (slot, gen) -> struct worker and
 * a second one pipe id -> worker for pipe removals.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "hmap.h"
#include "log.h"
#include "workers.h"

struct workers_key {
	uint32_t slot, gen;
};

struct workers {
	struct hmap *by_id;   /* struct workers_key -> struct worker * */
	struct hmap *by_pipe; /* uint32_t pipe id -> struct worker * */
	workers_forget_fn *forget;
	void *arg;
};

struct workers *
workers_new(workers_forget_fn *forget, void *arg)
{
	struct workers *ws = calloc(1, sizeof(*ws));

	if (ws == NULL)
		return NULL;
	ws->forget = forget;
	ws->arg = arg;
	ws->by_id = hmap_new();
	ws->by_pipe = hmap_new();
	if (ws->by_id == NULL || ws->by_pipe == NULL) {
		workers_free(ws);
		return NULL;
	}
	return ws;
}

static void
workers_counters_clear(struct worker *w)
{
	for (size_t i = 0; i < w->n_counters; i++)
		free(w->names[i]);
	free(w->names);
	free(w->values);
	w->names = NULL;
	w->values = NULL;
	w->n_counters = 0;
}

/* Frees one worker record (hmap_free_with). */
static void
workers_record_free(void *v)
{
	workers_counters_clear(v);
	free(v);
}

void
workers_free(struct workers *ws)
{
	if (ws == NULL)
		return;
	hmap_free_with(ws->by_id, workers_record_free);
	hmap_free(ws->by_pipe);
	free(ws);
}

static void
workers_unpipe(struct workers *ws, struct worker *w)
{
	if (hmap_get(ws->by_pipe, &w->pipe_id, sizeof(w->pipe_id)) == w)
		hmap_del(ws->by_pipe, &w->pipe_id, sizeof(w->pipe_id));
}

struct worker *
workers_touch(struct workers *ws, const struct up_worker *uw, uint32_t pipe_id,
    uint64_t now_ms)
{
	struct workers_key key = {uw->slot, uw->gen};
	struct worker *w = hmap_get(ws->by_id, &key, sizeof(key));

	if (w == NULL) {
		w = calloc(1, sizeof(*w));
		if (w == NULL)
			return NULL;
		w->slot = uw->slot;
		w->gen = uw->gen;
		w->pipe_id = pipe_id;
		if (hmap_put(ws->by_id, &key, sizeof(key), w) == -1) {
			free(w);
			return NULL;
		}
		log_info("worker attached slot=%" PRIu32 " gen=%" PRIu32
			 " pid=%" PRIu32 " pipe=%" PRIu32,
		    uw->slot, uw->gen, uw->pid, pipe_id);
	}
	w->pid = uw->pid;
	w->last_seen_ms = now_ms;
	if (w->pipe_id != pipe_id) {
		workers_unpipe(ws, w);
		w->pipe_id = pipe_id;
	}
	(void)hmap_put(ws->by_pipe, &w->pipe_id, sizeof(w->pipe_id), w);
	return w;
}

struct worker *
workers_by_pipe(struct workers *ws, uint32_t pipe_id)
{
	struct worker *w = hmap_get(ws->by_pipe, &pipe_id, sizeof(pipe_id));

	return w != NULL && w->pipe_id == pipe_id ? w : NULL;
}

void
workers_forget(struct workers *ws, struct worker *w, const char *why)
{
	struct workers_key key = {w->slot, w->gen};

	log_notice("worker forgotten slot=%" PRIu32 " gen=%" PRIu32
		   " pid=%" PRIu32 " reason=%s",
	    w->slot, w->gen, w->pid, why);
	ws->forget(ws->arg, w, why);
	workers_unpipe(ws, w);
	hmap_del(ws->by_id, &key, sizeof(key));
	workers_counters_clear(w);
	free(w);
}

void
workers_expire(struct workers *ws, uint64_t now_ms, uint64_t timeout_ms)
{
	struct hmap_iter it;
	const void *k;
	size_t klen;
	void *v;

	/* The scan restarts after each removal: the map cannot change under
	 * an iteration, and there are few workers. */
	for (bool again = true; again;) {
		again = false;
		hmap_iter_init(ws->by_id, &it);
		while (hmap_iter_next(&it, &k, &klen, &v)) {
			struct worker *w = v;

			if (now_ms - w->last_seen_ms > timeout_ms) {
				workers_forget(ws, w, "timeout");
				again = true;
				break;
			}
		}
	}
}

void
workers_set_counters(struct worker *w, const struct up_counters *c)
{
	char **names;
	uint64_t *values;
	size_t n = 0;

	workers_counters_clear(w);
	if (c->n == 0)
		return;
	names = calloc(c->n, sizeof(*names));
	values = calloc(c->n, sizeof(*values));
	if (names == NULL || values == NULL) {
		free(names);
		free(values);
		return;
	}
	for (uint32_t i = 0; i < c->n; i++) {
		const struct env_str *s = &c->items[i].name;

		if (s->p == NULL)
			continue;
		names[n] = strndup(s->p, s->len);
		if (names[n] == NULL)
			break;
		values[n] = c->items[i].value;
		n++;
	}
	w->names = names;
	w->values = values;
	w->n_counters = n;
}

size_t
workers_count(const struct workers *ws)
{
	return hmap_count(ws->by_id);
}

void
workers_each(struct workers *ws, workers_each_fn *fn, void *arg)
{
	struct hmap_iter it;
	const void *k;
	size_t klen;
	void *v;

	hmap_iter_init(ws->by_id, &it);
	while (hmap_iter_next(&it, &k, &klen, &v))
		fn(arg, v);
}

struct worker_table *
workers_table(struct dlist *list, struct worker *w, void **slot, bool create)
{
	struct worker_table *t = *slot;

	if (t != NULL || !create)
		return t;
	if ((t = calloc(1, sizeof(*t))) == NULL)
		return NULL;
	t->w = w;
	t->slot = slot;
	if ((t->map = hmap_new()) == NULL) {
		free(t);
		return NULL;
	}
	dlist_insert_tail(list, &t->node);
	*slot = t;
	return t;
}

void
workers_table_free(struct worker_table *t)
{
	dlist_remove(&t->node);
	*t->slot = NULL;
	hmap_free(t->map);
	free(t);
}

void
workers_tables_free(struct dlist *list)
{
	struct dlist_node *n;

	while ((n = dlist_first(list)) != NULL)
		workers_table_free(DLIST_ENTRY(n, struct worker_table, node));
}
