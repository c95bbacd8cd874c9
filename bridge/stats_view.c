/*
 * stats_view.c - the view of the node's figures that the stats socket,
 * /metrics and /healthz are rendered from (see stats_view.h).
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "stats_view.h"

struct stats_view_workers {
	size_t n, cap;
	struct bridge_worker_info *v;
	bool oom;
};

static void
stats_view_add_cb(void *arg, const struct bridge_worker_info *w)
{
	struct stats_view_workers *ws = arg;

	if (ws->n == ws->cap) {
		size_t nc = ws->cap == 0 ? 8 : ws->cap * 2;
		struct bridge_worker_info *nv =
		    realloc(ws->v, nc * sizeof(*nv));

		if (nv == NULL) {
			ws->oom = true;
			return;
		}
		ws->v = nv;
		ws->cap = nc;
	}
	ws->v[ws->n++] = *w;
}

struct stats_view_links {
	size_t n, cap;
	struct broker_link_info *v;
	bool oom;
};

static void
stats_view_link_cb(void *arg, const struct broker_link_info *li)
{
	struct stats_view_links *ls = arg;

	if (ls->n == ls->cap) {
		size_t nc = ls->cap == 0 ? 4 : ls->cap * 2;
		struct broker_link_info *nv = realloc(ls->v, nc * sizeof(*nv));

		if (nv == NULL) {
			ls->oom = true;
			return;
		}
		ls->v = nv;
		ls->cap = nc;
	}
	ls->v[ls->n++] = *li;
}

static int
stats_view_cmp(const void *a, const void *b)
{
	const struct bridge_worker_info *x = a, *y = b;

	if (x->slot != y->slot)
		return x->slot < y->slot ? -1 : 1;
	if (x->gen != y->gen)
		return x->gen < y->gen ? -1 : 1;
	return 0;
}

int
stats_view_take(
    struct stats_view *v, struct bridge *b, const char *node, uint64_t epoch)
{
	struct stats_view_workers ws = {0};
	struct stats_view_links ls = {0};

	memset(v, 0, sizeof(*v));
	v->now_ms = clock_mono_ms();
	v->node = node;
	v->epoch = epoch;
	v->pid = (uint32_t)getpid();
	bridge_counters(b, &v->bc);
	bridge_worker_each(b, stats_view_add_cb, &ws);
	if (ws.oom) {
		free(ws.v);
		return -1;
	}
	if (ws.n > 1)
		qsort(ws.v, ws.n, sizeof(*ws.v), stats_view_cmp);
	v->workers = ws.v;
	v->n_workers = ws.n;
	bridge_link_each(b, stats_view_link_cb, &ls);
	if (ls.oom) {
		free(ls.v);
		stats_view_release(v);
		return -1;
	}
	v->links = ls.v;
	v->n_links = ls.n;
	return 0;
}

void
stats_view_release(struct stats_view *v)
{
	free(v->workers);
	v->workers = NULL;
	v->n_workers = 0;
	free(v->links);
	v->links = NULL;
	v->n_links = 0;
}

bool
stats_view_counter(
    const struct bridge_worker_info *w, const char *name, uint64_t *v)
{
	for (size_t i = 0; i < w->n_counters; i++) {
		if (strcmp(w->names[i], name) == 0) {
			*v = w->values[i];
			return true;
		}
	}
	return false;
}

bool
stats_view_master(const struct stats_view *v, uint64_t out[STATS_VIEW_NMASTER])
{
	bool any = false;

	memset(out, 0, STATS_VIEW_NMASTER * sizeof(out[0]));
	for (size_t i = 0; i < v->n_workers; i++) {
		for (int k = 0; k < STATS_VIEW_NMASTER; k++) {
			const char *name =
			    worker_counter_info[WC_master_restarts + k].name;
			uint64_t x;

			if (stats_view_counter(&v->workers[i], name, &x)) {
				any = true;
				if (x > out[k])
					out[k] = x;
			}
		}
	}
	return any;
}

uint64_t
stats_view_silent_ms(
    const struct stats_view *v, const struct bridge_worker_info *w)
{
	return v->now_ms >= w->last_seen_ms ? v->now_ms - w->last_seen_ms : 0;
}
