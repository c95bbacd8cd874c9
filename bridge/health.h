/*
 * health.h - the bridge's /healthz verdict: 200 when the node can deliver
 * (both Redis links up, the subscription confirmed, every worker heard
 * from and hearing the bus), else 503 with the first reason found.
 * History requested but unavailable (an old Redis, a refused FUNCTION
 * LOAD) is said in a 200's body: live delivery goes on without it.
 */
#ifndef WSP_HEALTH_H
#define WSP_HEALTH_H

#include <stddef.h>
#include <stdint.h>

#include "stats_view.h"

/* Writes the one-line body (newline-terminated) into body and returns the
 * HTTP status, 200 or 503. */
uint16_t health_verdict(const struct stats_view *v, char *body, size_t len);

#endif
