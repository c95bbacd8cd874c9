/*
 * upstream.h - what the workers send up, dispatched: interest changes to
 * interest.c, connection events to presence.c, client publishes, sends
 * and events to the broker, counters and BYE to the worker registry.
 *
 * The modules are borrowed; upstream keeps no state of its own but its
 * counters and an encoding buffer. Loop thread only.
 */
#ifndef WSP_UPSTREAM_H
#define WSP_UPSTREAM_H

#include <stdint.h>

#include "broker.h"
#include "envelope.h"
#include "interest.h"
#include "loop.h"
#include "presence.h"
#include "workers.h"

struct upstream_deps {
	struct loop *loop;
	struct workers *workers;
	struct interest *interest;
	struct presence *presence;
	struct broker *broker;
	uint64_t epoch; /* this bridge's, to log whether a SYNC matches */
};

struct upstream_stats {
	uint64_t envelopes;    /* upstream envelopes handled */
	uint64_t bad_upstream; /* undecodable, or dropped for lack of memory */
	uint64_t bad_address;  /* publish to an invalid address */
	uint64_t encode;       /* publish that could not be encoded */
};

struct upstream;

/* Returns a dispatcher over d's modules (copied), or NULL. */
struct upstream *upstream_new(const struct upstream_deps *d);
void upstream_free(struct upstream *u);

/* One envelope from the worker on pipe_id (borrowed for the call). */
void upstream_dispatch(
    struct upstream *u, uint32_t pipe_id, const struct up_env *env);

/* The bus could not decode an upstream message or envelope. */
void upstream_bad(struct upstream *u);

void upstream_stats(const struct upstream *u, struct upstream_stats *out);

#endif
