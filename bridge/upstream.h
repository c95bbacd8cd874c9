/*
 * upstream.h - what the workers send up, dispatched: interest changes to
 * interest.c, connection events to presence.c, client publishes, sends
 * and events to the broker, counters and BYE to the worker registry.
 *
 * The modules are borrowed; upstream keeps no state of its own but its
 * counters, an encoding buffer and the history reads in flight (their
 * answers go back on the bus as BUS_RANGE chunks). Loop thread only;
 * upstream_free() after the broker's free (no answer comes later).
 */
#ifndef WSP_UPSTREAM_H
#define WSP_UPSTREAM_H

#include <stdint.h>

#include "broker.h"
#include "bus.h"
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
	uint64_t epoch;  /* this bridge's, to log whether a SYNC matches */
	struct bus *bus; /* history answers (BUS_RANGE) */
	const struct conf *conf; /* [history] max_recover, redis.prefix */
};

struct upstream_stats {
	uint64_t envelopes;    /* upstream envelopes handled */
	uint64_t bad_upstream; /* undecodable, or dropped for lack of memory */
	uint64_t bad_address;  /* publish to an invalid address */
	uint64_t encode;       /* publish that could not be encoded */
	uint64_t range_requests;   /* history reads asked by workers */
	uint64_t range_bad;        /* answered RANGE_BAD_REQUEST */
	uint64_t range_failed;     /* answered RANGE_FAILED / UNAVAILABLE */
	uint64_t ranges_recovered; /* answered with recovered true */
	uint64_t range_entries;    /* stored messages sent to workers */
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
