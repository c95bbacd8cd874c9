/*
 * recover.h - history recovery of one membership (a channel subscription
 * with `since`, or the user's own address with `since` at auth): the seam
 * between replayed and live messages.
 *
 * Once the address is active at the bridge the membership is made live and
 * a RANGE_REQ goes up; from then on its live frames are held here (not
 * queued). The RANGE chunks' entries are collected as frames. When the
 * last chunk arrives (or the request fails or times out) the reply that
 * announces the membership (`subscribed`, or `welcome`) is answered with
 * `recovered`; when that reply is queued, recover_flush() queues the
 * replayed frames, then the held live frames newer than the last replayed
 * id (and those without an id), and leaves a floor: until a live message
 * newer than the last replayed id passes, live messages at or before it
 * are dropped (replayed already; they were read on the bridge's command
 * link while they still travelled on its subscriber link). Worker loop
 * only.
 */
#ifndef WSP_RECOVER_H
#define WSP_RECOVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "dlist.h"
#include "envelope.h"
#include "frame.h"

struct worker;
struct conn;
struct fan_member;

/* A recovery without its last chunk this long is given up (recovered
 * false, what came is sent). */
#define RECOVER_TIMEOUT_MS 10000

enum recover_phase {
	RECOVER_WAITING,  /* the address is not active yet: nothing asked */
	RECOVER_READING,  /* RANGE_REQ sent; live frames held */
	RECOVER_ANSWERED, /* the answer is complete; held until flushed */
	RECOVER_FLOOR,    /* flushed; dropping late duplicates */
	RECOVER_DONE,     /* nothing more to do */
};

struct recover_held {
	struct frame *f;
	bool has_id;
	struct env_sid id;
};

struct recover {
	struct dlist_node node; /* in worker->recovering while READING */
	struct fan_member *m;
	enum recover_phase phase;
	uint64_t req_id;
	uint64_t started_ms;
	char since[ENV_SID_MAX + 1];
	uint32_t since_len;
	uint32_t next_chunk;
	int recovered;            /* -1: no history on this node, 0, 1 */
	struct recover_held *rep; /* replayed, in order */
	uint32_t n_rep, cap_rep;
	struct recover_held *live; /* live frames held, in arrival order */
	uint32_t n_live, cap_live;
	size_t held_bytes;
	bool has_last;
	struct env_sid last; /* last replayed id */
};

/* A recovery for m from since (a valid stream id or "0"). */
struct recover *recover_new(
    struct fan_member *m, const char *since, size_t since_len);
/* Frees r and its frames; frames never queued are counted as drop_closed
 * (they were targets). */
void recover_free(struct worker *w, struct recover *r);

/* m's address is active and announced-to-be: ask the bridge (READING). */
void recover_start(struct worker *w, struct recover *r, uint64_t now_ms);

/* A live frame for r's membership: true if taken (held, or dropped as a
 * duplicate), false if the caller queues it as usual. */
bool recover_live(struct worker *w, struct recover *r, struct frame *f,
    const struct env_str *id);

/* One RANGE chunk for this worker (busrx). */
void recover_range(struct worker *w, const struct bus_range *g);

/* Gives up recoveries older than RECOVER_TIMEOUT_MS. */
void recover_tick(struct worker *w, uint64_t now_ms);

/* A `history` read for c (allowed and checked): the reply waits in c's
 * reply order until the answer (or RECOVER_TIMEOUT_MS). */
void recover_history(struct worker *w, struct conn *c, const char *to,
    size_t to_len, uint32_t limit, const json_t *ref);
/* c is going: forget its history reads. */
void recover_conn_gone(struct worker *w, struct conn *c);

/* r's announcing reply was queued: queue the replayed and held frames. */
void recover_flush(struct worker *w, struct recover *r);

#endif
