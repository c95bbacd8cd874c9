/*
 * bridge.h - the bridge core: the broker (broker.h; Redis today) on one
 * side, the node's workers (bus.h) on the other.
 *
 * Broker messages become MSG envelopes on the bus (one per message,
 * numbered by seq within the epoch); the workers' interest (interest.c)
 * decides what the broker subscribes and when ACKs go out; what workers
 * send up is dispatched by upstream.c; presence (presence.c) is handed to
 * the broker; the worker registry is workers.c. The core sends the bus
 * heartbeat, forgets silent workers and reports the broker's state to
 * systemd. stats.c reads it through bridge_counters(),
 * bridge_worker_each() and bridge_link_each(). Loop thread only.
 */
#ifndef WSP_BRIDGE_H
#define WSP_BRIDGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker.h"
#include "conf.h"
#include "loop.h"

/* A worker is forgotten when nothing came from it for this long. */
#define BRIDGE_WORKER_TIMEOUT_MS 5000
/*
 * The node's description is handed to the broker this often (Redis: the
 * node hash and the presence keys' TTL of REDIS_PRESENCE_TTL_S, so a dead
 * node's keys vanish within 10 s while a live one survives two lost
 * refreshes).
 */
#define BRIDGE_NODE_INFO_MS 3000
/* Graceful stop: how long to wait for pending writes to reach the broker. */
#define BRIDGE_STOP_FLUSH_MS 2000

/* Why something was dropped; every loss the bridge sees has one. */
enum bridge_drop {
	BRIDGE_DROP_BAD_ADDRESS,  /* Redis channel or publish target invalid */
	BRIDGE_DROP_BAD_ENVELOPE, /* malformed \xC1WSP payload */
	BRIDGE_DROP_REDIS_DOWN,   /* upstream write queue full */
	BRIDGE_DROP_BAD_UPSTREAM, /* undecodable upstream envelope */
	BRIDGE_DROP_REDIS_ERROR,  /* Redis answered a write with an error */
	BRIDGE_DROP_ENCODE,       /* could not encode for the bus */
	BRIDGE_DROP_BUS_SEND,     /* nng refused a bus batch */
	BRIDGE_DROP_COUNT,
};

const char *bridge_drop_str(enum bridge_drop d);

struct bridge_counters {
	const char *broker; /* "redis", ... */
	bool broker_up;     /* every broker link up */
	bool sub_up, cmd_up;
	uint64_t sub_reconnects, cmd_reconnects;
	uint64_t connect_failures; /* both links, since the start */
	uint64_t sub_resets;       /* subscriber declared dead (no heartbeat) */
	uint64_t subscriptions;    /* confirmed Redis subscriptions */
	uint64_t addresses;        /* addresses wanted by the workers */
	uint64_t acks_waiting;
	uint64_t redis_messages; /* messages from Redis (hb excluded) */
	uint64_t bus_msgs;       /* MSG envelopes published */
	uint64_t bus_acks, bus_heartbeats;
	uint64_t bus_batches; /* nng messages sent on the bus */
	uint64_t last_seq;
	uint64_t upstream_envelopes;
	uint64_t upstream_writes; /* commands sent on the command link */
	uint64_t queued_writes;   /* waiting for the command link */
	uint64_t drops[BRIDGE_DROP_COUNT];
	uint64_t workers, connections, users;
	uint64_t uptime_s;
	const char *version;
	/*
	 * Outages of the broker (both Redis links up, or not), recorded where
	 * they happen; the first connection counts only if an attempt failed.
	 */
	uint64_t outages;
	uint64_t last_outage_ms; /* length of the last finished one */
	uint64_t down_for_ms;    /* the current one so far, 0 while up */
	/* The broker's last connect or link error ("" if none), e.g.
	 * "probe: NOAUTH Authentication required." */
	char last_error[BROKER_ERR_MAX];
	uint64_t broker_drops[BROKER_DROP_COUNT]; /* the broker's, by reason */
	uint64_t lingering;         /* subscriptions kept in their grace time */
	uint64_t listener_restarts; /* bus listeners recreated (nng#1518) */
	/* [history]: the broker's state and the workers' range requests. */
	const char *history; /* "off", "loading", "ready", "unavailable" */
	char history_error[HISTORY_ERR_MAX]; /* why unavailable, "" if not */
	uint64_t history_load_failures;
	uint64_t history_reads; /* range() calls answered by the broker */
	uint64_t range_requests, range_bad, range_failed;
	uint64_t ranges_recovered, range_entries;
};

/* One worker's latest COUNTERS envelope, for the stats socket. */
struct bridge_worker_info {
	uint32_t slot, gen, pid;
	uint64_t last_seen_ms; /* monotonic */
	size_t n_counters;
	const char *const *names;
	const uint64_t *values;
};

struct bridge;

/*
 * Opens the bus and upstream listeners and starts the broker. c is
 * borrowed for the bridge's life; node is the resolved node id. Returns
 * the bridge, or NULL with a message in err. Free with bridge_free().
 */
struct bridge *bridge_new(struct loop *loop, const struct conf *c,
    const char *node, uint64_t epoch, char *err, size_t errlen);

/*
 * Begins a graceful stop: the broker deletes the node's presence and the
 * loop runs until every pending write reached it or BRIDGE_STOP_FLUSH_MS
 * passed, then loop_stop() is called.
 */
void bridge_stop(struct bridge *b);

/* True when the bridge stopped (or is stopping) because its broker cannot
 * run with this configuration: the process should exit with status 1. */
bool bridge_failed(const struct bridge *b);

void bridge_free(struct bridge *b);

/* Fills a snapshot of the counters. */
void bridge_counters(struct bridge *b, struct bridge_counters *out);

typedef void bridge_worker_fn(void *arg, const struct bridge_worker_info *w);
/* Calls fn for every known worker. */
void bridge_worker_each(struct bridge *b, bridge_worker_fn *fn, void *arg);

/* Calls fn for every link of the broker (Redis: "sub", "cmd"). */
void bridge_link_each(struct bridge *b, broker_link_fn *fn, void *arg);

#endif
