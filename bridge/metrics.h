/*
 * metrics.h - the node's figures in the Prometheus text format (0.0.4),
 * as served on [bridge] metrics_listen /metrics.
 *
 * Bridge families, the gateway master's (when reported), and per worker
 * (labels worker, gen) one family per family of proto/counters.h; counters
 * a worker reports that this build does not know go to the generic
 * wspush_worker_counter{name=...}.
 */
#ifndef WSP_METRICS_H
#define WSP_METRICS_H

#include <stdio.h>

#include "stats_view.h"

/* Writes the whole exposition to f. */
void metrics_render(FILE *f, const struct stats_view *v);

#endif
