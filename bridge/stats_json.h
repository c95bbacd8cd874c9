/*
 * stats_json.h - the stats socket's reply to {"v":1,"cmd":"stats"}: the
 * bridge's figures, every worker's counters (as the worker named them,
 * known to this build or not) and the gateway master's figures. The
 * document is described in proto/PROTOCOL.md; keys are only ever added.
 */
#ifndef WSP_STATS_JSON_H
#define WSP_STATS_JSON_H

#include <jansson.h>

#include "stats_view.h"

/* Returns a new JSON object (the caller decrefs it), or NULL if out of
 * memory. */
json_t *stats_json_build(const struct stats_view *v);

#endif
