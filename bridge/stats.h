/*
 * stats.h - the bridge's windows on the node: the stats socket
 * (ipc://<runtime_dir>/stats.ipc, nng REP, JSON request/reply, see
 * proto/PROTOCOL.md) and, through metrics_http.h, /metrics (Prometheus
 * text format) and /healthz on [bridge] metrics_listen.
 *
 * The REP socket is watched by the bridge loop through its RECVFD and
 * answered there, from a stats view of the bridge (stats_view.h). The
 * HTTP handlers never touch the bridge: they serve a snapshot (metrics
 * text and health verdict) that the loop renders every STATS_SNAPSHOT_MS.
 * Loop thread only.
 */
#ifndef WSP_STATS_H
#define WSP_STATS_H

#include <stddef.h>
#include <stdint.h>

#include "bridge.h"
#include "conf.h"
#include "loop.h"

/* How often the HTTP snapshot is rendered. */
#define STATS_SNAPSHOT_MS 200
/* Largest stats request accepted. */
#define STATS_REQ_MAX 4096

struct stats;

/*
 * Listens on conf_stats_url(c) (mode 0660) and serves HTTP on
 * c->metrics_listen. b, c and node are borrowed for the stats' life.
 * Returns the stats, or NULL with a message in err. Free with
 * stats_close() before bridge_free().
 */
struct stats *stats_open(struct loop *loop, struct bridge *b,
    const struct conf *c, const char *node, uint64_t epoch, char *err,
    size_t errlen);

void stats_close(struct stats *s);

#endif
