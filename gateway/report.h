/*
 * report.h - the worker's COUNTERS report to its bridge, once a second.
 *
 * Every row of proto/counters.h is sent, under its wire name, from
 * w->c: the counters as they are, the gauges computed now (connections,
 * users, subscriptions, queued bytes and frames, bus_attached,
 * interest_pending) and the master's figures read from its shared page
 * (mfig.h). No counter name is written anywhere else in the gateway.
 * Worker loop only.
 */
#ifndef WSP_REPORT_H
#define WSP_REPORT_H

#include <stdint.h>

#include "counters.h"

struct worker;

/* Fills v (indexed by enum worker_counter) with w's counters as of now. */
void report_collect(struct worker *w, uint64_t now_ms, uint64_t v[WC_COUNT]);

/* Sends w's COUNTERS upstream. */
void report_send(struct worker *w, uint64_t now_ms);

#endif
