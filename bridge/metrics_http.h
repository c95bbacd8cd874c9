/*
 * metrics_http.h - the bridge's small HTTP server on [bridge]
 * metrics_listen: GET /metrics and GET /healthz, answered from the last
 * published snapshot.
 *
 * The server is nng's own: its handlers run on nng threads and never
 * touch the bridge; they copy the snapshot, which the loop replaces with
 * metrics_http_publish() under a mutex.
 */
#ifndef WSP_METRICS_HTTP_H
#define WSP_METRICS_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "conf.h"

struct metrics_http;

/*
 * Starts serving on hp (borrowed for the call). Until the first
 * metrics_http_publish(), /metrics and /healthz answer 503 "starting".
 * Returns the server, or NULL with a message in err. Free with
 * metrics_http_close().
 */
struct metrics_http *metrics_http_open(
    const struct conf_hostport *hp, char *err, size_t errlen);

/*
 * Replaces the snapshot: metrics is malloc'ed text of len bytes, taken
 * over (NULL keeps the previous text); health_body a NUL-terminated line,
 * copied. Loop thread.
 */
void metrics_http_publish(struct metrics_http *h, char *metrics, size_t len,
    uint16_t health_status, const char *health_body);

/* Stops the server; waits for running handlers. NULL is a no-op. */
void metrics_http_close(struct metrics_http *h);

#endif
