/*
 * broker.h - the interface between the bridge core and a message broker
 * (Redis today: redis_*.c; AMQP and Redis Cluster implement it too).
 *
 * The core (bridge.c) knows addresses, workers and the bus; a broker knows
 * its connections, its names for addresses and how to write. Everything
 * crosses here, in an ops table (nng style): the core calls the ops, the
 * broker calls back through struct broker_events. Loop thread only, on
 * both sides; no op blocks.
 *
 * Contract:
 *
 * - Addresses are the wspush address texts ("user:42", "channel:news",
 *   "all"), already validated by the core; a broker maps them to its own
 *   names (Redis: "<prefix>:<address>", see proto/keys.h; AMQP: the routing
 *   key). Strings given to an op or a callback are borrowed for the call.
 *
 * - Subscriptions. subscribe() asks the broker to deliver what is
 *   published on each address; the broker acknowledges every address,
 *   once, with events.subscribed() when the subscription is ACTIVE (a
 *   message published after the acknowledgement is delivered), or with
 *   events.sub_lost() if it cannot be made. unsubscribe() likewise ends in
 *   events.unsubscribed(). The core sends at most one request per address
 *   at a time and waits for its acknowledgement before the next one, so a
 *   broker never sees subscribe and unsubscribe of one address in flight
 *   together. subscribe_all() is broadcast routing: everything published
 *   under the node's namespace is delivered; acknowledged with
 *   events.subscribed(NULL, 0). The requests may be batched (n names per
 *   call); acknowledgements come per address, in any order.
 *
 * - Readiness. Requests are accepted only while the broker said it is
 *   ready (events.sub_ready(true)); an op called while not ready returns
 *   BROKER_EAGAIN and the core keeps the change for later. A broker that
 *   loses subscriptions without being asked (a link lost, a shard failed
 *   over, a slot moved) reports them with events.sub_lost(): one address,
 *   or addr == NULL for all of them (also the broadcast subscription). The
 *   core then asks again for what it still wants, once ready. A broker
 *   with several links (one per shard) may stay ready while one link is
 *   down and keep the requests for that shard pending itself.
 *
 * - Messages in: events.message() once per delivered message, in the
 *   broker's order for one address, with the address (the broker's prefix
 *   removed) and the payload as published (it may be a \xC1WSP envelope,
 *   proto/wspenv.h; the core decodes it). Broker-internal traffic (liveness
 *   probes) is never delivered.
 *
 * - Upstream writes (publish, inbound, event, presence, node info) are
 *   fire-and-forget for the core: a broker sends them now, or queues them
 *   (bounded) while it is down, and counts what it loses in its status
 *   (drops). Return 0 when sent or queued, BROKER_ENOTSUP when this broker
 *   has no such feature (AMQP has no presence: "not available with
 *   broker = amqp"), BROKER_EFULL when dropped.
 *
 * - Presence. presence_set() hands the changes of users' connection counts
 *   on this node (0 = the user left); node_info() the node's totals, after
 *   every presence_set() batch and every few seconds (a broker may refresh
 *   expiries there). After
 *   a reconnect, when the broker's copy may be gone, it calls
 *   events.presence_lost() and the core hands out the whole table again
 *   through presence_set().
 *
 * - Link state and outages are the broker's: it records an outage where
 *   the state changes (not by sampling), counts failed connects (including
 *   authentication and permission errors: a link is up only after its
 *   handshake commands succeeded), and keeps the last error text. status()
 *   fills a snapshot; link_each() lists each link (one per shard in a
 *   cluster). events.state() is called on every change of
 *   status().up.
 *
 * - History (Redis only; NULL op elsewhere: "not available"). With
 *   [history] size > 0 the broker stores what publish() sends (Redis: FCALL
 *   wspush_publish, see history.h) and range() reads an address's stored
 *   messages for a recovery or a history read: answered exactly once
 *   through fn, with the entries (status RANGE_OK) or without them and the
 *   failure's status, possibly from inside the call; never after free().
 *   status() reports the history state ("off", "loading", "ready",
 *   "unavailable" with the reason).
 *
 * - Life: new (implementation-specific constructor, e.g. redis_broker_new)
 *   -> start() -> ... -> stop() (graceful: remove the node's presence,
 *   flush queued writes; the core polls drained() for a bounded time) ->
 *   free(). free() never calls back.
 */
#ifndef WSP_BROKER_H
#define WSP_BROKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf.h"
#include "history.h"
#include "loop.h"

/* Op results (0 = OK). */
#define BROKER_EAGAIN (-1)  /* not ready: retry when sub_ready(true) */
#define BROKER_ENOTSUP (-2) /* this broker has no such feature */
#define BROKER_EFULL (-3)   /* dropped: the write queue is full */
#define BROKER_ENOMEM (-4)

/* Longest error text kept by a broker. */
#define BROKER_ERR_MAX 160

struct broker;

/* Connections of one user on this node (0: none any more). */
struct broker_presence {
	const char *user;
	size_t len;
	uint64_t conns;
};

/* The node's totals, for its description in the broker (Redis node hash). */
struct broker_node_info {
	uint64_t connections, users, workers;
	uint64_t started_unix;
	const char *version;
	long pid;
};

/* A client's `send` for the backends (inbound stream / queue). */
struct broker_inbound {
	const char *user, *conn, *data;
	size_t user_len, conn_len, data_len;
};

/* A connect / disconnect event for the backends. */
struct broker_event {
	const char *type, *user, *conn, *reason;
	size_t type_len, user_len, conn_len, reason_len;
};

/* Why the broker lost something it was given (counted in status.drops). */
enum broker_drop {
	BROKER_DROP_DOWN,  /* write queue full while the broker was down */
	BROKER_DROP_ERROR, /* the broker answered a write with an error */
	/* A publish the broker nacked, or never confirmed before the
	 * connection went (AMQP publisher confirms). */
	BROKER_DROP_UNCONFIRMED,
	/* A mandatory publish the broker returned: no queue took it. */
	BROKER_DROP_RETURNED,
	/* A delivery larger than the broker side accepts, skipped unread. */
	BROKER_DROP_OVERSIZE,
	/* A write to an address the broker cannot name (AMQP: longer than a
	 * routing key may be). */
	BROKER_DROP_BAD_ADDRESS,
	BROKER_DROP_COUNT,
};

/* One connection of the broker (Redis: "sub", "cmd"; cluster: a shard). */
struct broker_link_info {
	const char *name;
	bool up;
	const char *state;   /* "up", "connecting", "handshake", "backoff" */
	uint64_t reconnects; /* successful connections after the first */
	uint64_t connect_failures; /* incl. auth/permission refusals */
	uint64_t outages;
	const char *last_error; /* "" if none yet */
};

struct broker_status {
	const char *kind; /* "redis", "amqp" */
	bool up;          /* every link needed to deliver and write is up */
	bool sub_up;      /* delivery side (all subscriber links) */
	bool cmd_up;      /* write side */
	uint64_t sub_reconnects, cmd_reconnects;
	uint64_t connect_failures; /* every link, since the start */
	uint64_t sub_resets;       /* subscriber links declared dead */
	/*
	 * Outages of the broker as a whole (up false -> true again), recorded
	 * at the transitions: the wait for the first connection counts only
	 * if an attempt failed meanwhile.
	 */
	uint64_t outages;
	uint64_t last_outage_ms; /* length of the last finished outage */
	uint64_t down_for_ms;    /* current outage so far, 0 while up */
	char last_error[BROKER_ERR_MAX]; /* "" if none */
	uint64_t writes;                 /* upstream commands sent */
	uint64_t queued;                 /* upstream writes waiting */
	uint64_t drops[BROKER_DROP_COUNT];
	uint64_t messages;   /* messages delivered to the core */
	const char *history; /* "off", "loading", "ready", "unavailable" */
	char history_error[HISTORY_ERR_MAX]; /* why unavailable, "" if not */
	uint64_t history_load_failures;
	uint64_t history_reads; /* range() calls answered from the broker */
};

/* The callbacks a broker calls (arg is events.arg). */
struct broker_events {
	void (*message)(void *arg, const char *addr, size_t addr_len,
	    const char *data, size_t data_len);
	/* Subscription of addr active (addr NULL: the broadcast one). */
	void (*subscribed)(void *arg, const char *addr, size_t len);
	/* Unsubscription of addr done. */
	void (*unsubscribed)(void *arg, const char *addr, size_t len);
	/* Subscription of addr gone or refused (addr NULL: all of them). */
	void (*sub_lost)(void *arg, const char *addr, size_t len);
	/* Subscription requests are (not) accepted from now on. */
	void (*sub_ready)(void *arg, bool ready);
	/* The broker's copy of presence may be gone: hand it all again. */
	void (*presence_lost)(void *arg);
	/* status().up changed. */
	void (*state)(void *arg, bool up);
	/*
	 * The broker cannot run with this configuration and no retry fixes
	 * it (AMQP: an exchange or queue exists with another type or
	 * durability at the first connection). why names the key and quotes
	 * the broker. The core stops cleanly (its caller then exits with
	 * status 1); the broker keeps answering ops until free(). May be
	 * NULL (the broker then only logs and retries).
	 */
	void (*fatal)(void *arg, const char *why);
	void *arg;
};

typedef void broker_link_fn(void *arg, const struct broker_link_info *li);

/* The answer to one range(): h (borrowed for the call) when st is
 * RANGE_OK, else NULL. */
typedef void broker_range_fn(
    void *arg, const struct history_range *h, enum range_status st);

struct broker_ops {
	const char *kind;
	/* Starts connecting (and reconnecting after every loss). */
	int (*start)(struct broker *b);
	/* Graceful stop: no more subscriptions, presence removed, queued
	 * writes flushed; poll drained(). */
	void (*stop)(struct broker *b);
	bool (*drained)(struct broker *b);
	/* Frees everything; never calls back. NULL-safe via broker_free(). */
	void (*free)(struct broker *b);

	int (*subscribe)(struct broker *b, const char *const *addrs,
	    const size_t *lens, size_t n);
	int (*unsubscribe)(struct broker *b, const char *const *addrs,
	    const size_t *lens, size_t n);
	int (*subscribe_all)(struct broker *b);

	/* data is the payload as it must reach the subscribers (the core
	 * wraps client publishes in a \xC1WSP envelope). */
	int (*publish)(struct broker *b, const char *addr, size_t addr_len,
	    const char *data, size_t data_len);
	int (*inbound)(struct broker *b, const struct broker_inbound *in);
	int (*event)(struct broker *b, const struct broker_event *ev);
	int (*presence_set)(
	    struct broker *b, const struct broker_presence *p, size_t n);
	int (*node_info)(struct broker *b, const struct broker_node_info *ni);

	void (*status)(struct broker *b, struct broker_status *st);
	void (*link_each)(struct broker *b, broker_link_fn *fn, void *arg);

	/* The stored messages of addr after since (NULL: the newest limit);
	 * since and limit already checked (history_request()). */
	int (*range)(struct broker *b, const char *addr, size_t addr_len,
	    const char *since, size_t since_len, uint32_t limit,
	    broker_range_fn *fn, void *arg);
};

/* Every broker object starts with this (implementations embed it first). */
struct broker {
	const struct broker_ops *ops;
};

/* What a broker needs to know about its node (borrowed for its life). */
struct broker_env {
	struct loop *loop;
	const struct conf *conf;
	const char *node; /* the resolved node id */
};

/*
 * Creates the broker the config asks for (today: Redis). Returns it idle
 * (call broker_start()), or NULL with a message in err. ev is copied.
 */
struct broker *broker_new(const struct broker_env *env,
    const struct broker_events *ev, char *err, size_t errlen);

/* Thin wrappers over the ops, so callers read as plain calls. */
int broker_start(struct broker *b);
void broker_stop(struct broker *b);
bool broker_drained(struct broker *b);
void broker_free(struct broker *b); /* NULL ok */
int broker_subscribe(
    struct broker *b, const char *const *addrs, const size_t *lens, size_t n);
int broker_unsubscribe(
    struct broker *b, const char *const *addrs, const size_t *lens, size_t n);
int broker_subscribe_all(struct broker *b);
int broker_publish(struct broker *b, const char *addr, size_t addr_len,
    const char *data, size_t data_len);
int broker_inbound(struct broker *b, const struct broker_inbound *in);
int broker_event(struct broker *b, const struct broker_event *ev);
int broker_presence_set(
    struct broker *b, const struct broker_presence *p, size_t n);
int broker_node_info(struct broker *b, const struct broker_node_info *ni);
void broker_status(struct broker *b, struct broker_status *st);
void broker_link_each(struct broker *b, broker_link_fn *fn, void *arg);
/* Answers RANGE_UNAVAILABLE at once for a broker without history. */
int broker_range(struct broker *b, const char *addr, size_t addr_len,
    const char *since, size_t since_len, uint32_t limit, broker_range_fn *fn,
    void *arg);

const char *broker_drop_str(enum broker_drop d);

/*
 * Outage bookkeeping shared by the brokers: call broker_outage_note() at
 * every change of a link's (or the broker's) up state, with whether a
 * connect attempt failed since the start; it counts an outage when a down
 * period ends, the wait for the first connection only if an attempt
 * failed meanwhile. Zero-initialised is "never up yet, not down".
 */
struct broker_outage {
	uint64_t down_since_ms; /* monotonic; 0 while up or never down */
	bool was_up;
	uint64_t outages;
	uint64_t last_outage_ms;
};

void broker_outage_note(
    struct broker_outage *o, bool up, bool failed_before, uint64_t now_ms);
/* The current outage's length so far, 0 while up. */
uint64_t broker_outage_down_for(const struct broker_outage *o, uint64_t now_ms);

#endif
