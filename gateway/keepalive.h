/*
 * keepalive.h - WebSocket pings and idle hang-ups for every connection of
 * a worker, at O(1) per event.
 *
 * A connection is valid when established and whenever it answers a ping
 * (a PONG). ping_interval after its last valid moment it is pinged; if it
 * is still not valid idle_timeout after that moment it is hung up. Data
 * frames from the client do not count: the pings are also what keeps the
 * server-to-client direction of a proxied connection from looking idle
 * (nginx's proxy_read_timeout).
 *
 * Why not libwebsockets' retry policy, which does the same: lws 4.1.6
 * keeps every connection's validity timer in one sorted list per thread
 * and inserts with a linear walk from the earliest entry. A new validity
 * deadline is the latest one, so every establishment, ping and pong walks
 * the whole list: at 16,000 connections per worker that was 86 % of the
 * worker's CPU with idle clients, and the connection rate collapsed as
 * connections grew. Here every connection shares the same two intervals,
 * so two FIFO lists stay sorted by construction: `quiet` in the order of
 * the last valid moment, `pinged` in the order of the hang-up deadline
 * (entries move there in `quiet` order). A tick pops what is due from
 * their heads; a pong moves an entry to the tail of `quiet`.
 */
#ifndef WSP_KEEPALIVE_H
#define WSP_KEEPALIVE_H

#include <stdbool.h>
#include <stdint.h>

#include "dlist.h"

/* At most this many pings and as many hang-ups per tick, so a crowd that
 * connected at once cannot stall the loop for one long pass; the caller
 * ticks again soon when more is due (keepalive_tick()'s *more). */
#define KEEPALIVE_TICK_MAX 1024
/* The tick period while nothing more is due. */
#define KEEPALIVE_TICK_MS 250

/* Embedded in each connection; owned by the connection. */
struct keepalive_entry {
	struct dlist_node node; /* in quiet or pinged while tracked */
	uint64_t valid_ms;      /* established or last PONG */
	bool pinged;
};

struct keepalive {
	struct dlist quiet;  /* not pinged, oldest valid_ms first */
	struct dlist pinged; /* pinged, earliest deadline first */
	uint64_t ping_ms, idle_ms;
};

/* Calls for a tick: ping e's connection / hang it up (e is no longer
 * tracked when hangup is called: the caller closes the connection). */
typedef void keepalive_fn(struct keepalive_entry *e, void *arg);

/* ping_interval_s < idle_timeout_s is not required: a hang-up that is
 * due as early as the ping replaces it. */
void keepalive_init(
    struct keepalive *k, uint32_t ping_interval_s, uint32_t idle_timeout_s);

/* Starts tracking e (a connection just established, valid at now). */
void keepalive_add(
    struct keepalive *k, struct keepalive_entry *e, uint64_t now);

/* e answered a ping (or proved itself valid otherwise) at now. */
void keepalive_valid(
    struct keepalive *k, struct keepalive_entry *e, uint64_t now);

/* Stops tracking e (its connection is closing). Safe if not tracked. */
void keepalive_del(struct keepalive_entry *e);

/* Pings and hangs up what is due at now, up to KEEPALIVE_TICK_MAX of
 * each. Returns the number of connections pinged plus hung up; *more is
 * set when a cap stopped it with more due. */
uint32_t keepalive_tick(struct keepalive *k, uint64_t now, keepalive_fn *ping,
    keepalive_fn *hangup, void *arg, bool *more);

#endif
