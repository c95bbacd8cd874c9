/*
 * busrx.h - the worker's end of the node bus: what the bridge sends down
 * (proto/PROTOCOL.md, "Bus").
 *
 * Message path: Redis -> bridge -> bus -> busrx -> deliver -> conn -> send.
 * A SUB socket dialed to the slot's stream; a dup() of its RECVFD sits in the
 * lws loop, and each wakeup handles up to BUSRX_BATCH envelopes: MSGs go to
 * deliver.c, ACKs to the routing state (fanout.h), HEARTBEATs keep the
 * attach state. Every envelope's (epoch, seq) is checked by a busrx_seq:
 * a gap is counted as drop_bus_gap, a new epoch is a restarted bridge and
 * makes the worker re-announce its interest (uptx_sync()). Once a second
 * busrx_tick() runs the bus watchdog (redial a silent bus) and says in the
 * log, periodically, why a bus that never answered cannot be reached.
 * Nothing here frames or writes to clients. Worker loop only.
 *
 * The bridge routes: each worker slot has a bus stream of its own
 * (bus<slot>.ipc), carrying only the messages some worker of that slot
 * holds a target for, `all`, and that slot's ACKs and heartbeats, with its
 * own sequence numbers. Both generations of a slot during a rolling reload
 * read the same stream.
 */
#ifndef WSP_BUSRX_H
#define WSP_BUSRX_H

#include <stdbool.h>
#include <stdint.h>

#include "envelope.h"

/* Envelopes handled per wakeup (deliver.c queues; send.c writes after). */
#define BUSRX_BATCH 256

struct worker;
struct busrx;

/*
 * The sequence check of one bus stream. Each stream (one bridge process
 * life, its epoch) numbers its MSGs 1, 2, 3 ...; heartbeats carry the
 * last number sent. Zero-initialised is ready to use.
 */
struct busrx_seq {
	uint64_t epoch;    /* 0: none seen yet */
	uint64_t last_seq; /* valid when known */
	bool known;        /* a baseline was seen in this epoch */
};

/* An envelope of epoch arrived: returns true if that is a new bridge (then
 * the next sequence number is a baseline, nothing is counted lost). */
bool busrx_seq_epoch(struct busrx_seq *s, uint64_t epoch);

/*
 * A sequence number arrived: a MSG's own (is_msg) or a heartbeat's last
 * sent. Returns how many MSGs were lost before it (0 for the first one of
 * an epoch, for a repeat and for one older than the last seen, which are
 * ignored).
 */
uint64_t busrx_seq_next(struct busrx_seq *s, uint64_t seq, bool is_msg);

/* Opens the SUB socket and dials it (non-blocking: the bridge may be
 * down). Returns a new busrx, or NULL with the reason logged. */
struct busrx *busrx_new(struct worker *w);

/* Adopts the SUB's RECVFD (a dup) into the worker's lws loop. 0 or -1. */
int busrx_adopt(struct busrx *b);

/* Closes the socket and frees b. After lws_context_destroy. NULL is ok. */
void busrx_free(struct busrx *b);

/* The bus fd is readable: handle one batch. */
void busrx_readable(struct busrx *b);

/* Once a second: the bus watchdog and the unreachable-bus log. */
void busrx_tick(struct busrx *b, uint64_t now_ms);

/* A heartbeat arrived within 3 x heartbeat_ms. NULL: false. */
bool busrx_attached(const struct busrx *b, uint64_t now_ms);

/* The last heartbeat said Redis is up. */
bool busrx_redis_up(const struct busrx *b);

/* The bridge's epoch (0 before the first envelope). */
uint64_t busrx_epoch(const struct busrx *b);

#endif
