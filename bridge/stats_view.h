/*
 * stats_view.h - one consistent look at the node's figures, taken on the
 * bridge loop, from which the stats JSON (stats_json.h), the Prometheus
 * text (metrics.h) and the /healthz verdict (health.h) are all rendered.
 *
 * Those renderers read only a view, never the bridge, so they can be
 * tested with views built by hand.
 */
#ifndef WSP_STATS_VIEW_H
#define WSP_STATS_VIEW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bridge.h"
#include "counters.h"

/* A worker counts as attached if heard from within this long. */
#define STATS_VIEW_ATTACHED_MS 3000

/* The master's figures, in counters.h order (WC_master_restarts...). */
#define STATS_VIEW_NMASTER (WC_master_crash_loops - WC_master_restarts + 1)

struct stats_view {
	uint64_t now_ms; /* monotonic, when the view was taken */
	const char *node;
	uint64_t epoch;
	uint32_t pid;
	struct bridge_counters bc; /* outages included */
	uint64_t stats_requests, stats_listener_restarts;
	/* Sorted by (slot, gen); names and values borrowed from the bridge
	 * until it runs again. */
	size_t n_workers;
	struct bridge_worker_info *workers;
	/* The broker's links in its own order (Redis: "sub", "cmd"; Redis
	 * Cluster: one per master); strings borrowed like the workers'. */
	size_t n_links;
	struct broker_link_info *links;
};

/*
 * Takes the view of b now. Returns 0, or -1 if out of memory (nothing to
 * release then). Release with stats_view_release() before the bridge runs
 * again.
 */
int stats_view_take(
    struct stats_view *v, struct bridge *b, const char *node, uint64_t epoch);

void stats_view_release(struct stats_view *v);

/* A worker's counter by wire name; false if it did not report it. */
bool stats_view_counter(
    const struct bridge_worker_info *w, const char *name, uint64_t *v);

/*
 * The master's figures: every worker reports the same node-wide values,
 * and the largest seen is the freshest. Returns false (out zeroed) if no
 * worker reported them (a gateway build from before they existed).
 */
bool stats_view_master(
    const struct stats_view *v, uint64_t out[STATS_VIEW_NMASTER]);

/* Milliseconds since worker w was last heard from. */
uint64_t stats_view_silent_ms(
    const struct stats_view *v, const struct bridge_worker_info *w);

#endif
