/*
 * connq.h - one connection's outgoing queue: a ring of frame references,
 * bounded in bytes.
 *
 * The ring is allocated on the first push and doubles as needed, so an
 * idle connection costs no queue memory. The byte bound is
 * gateway.max_queued_bytes; connq_offer() applies the policy for a frame
 * that does not fit (gateway.slow_client: close the connection, or drop
 * the oldest frames) and says what was dropped, for the caller to count.
 * Pure: no lws, no counters. Worker loop only.
 */
#ifndef WSP_CONNQ_H
#define WSP_CONNQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "frame.h"

struct connq {
	struct frame **ring; /* NULL until the first push */
	uint32_t cap;        /* ring slots (a power of two) */
	uint32_t head;       /* index of the oldest frame */
	uint32_t count;      /* frames queued */
	uint64_t bytes;      /* payload bytes queued */
	uint64_t max_bytes;  /* the bound connq_fits() checks */
};

void connq_init(struct connq *q, uint64_t max_bytes);
/* Drops every queued reference and frees the ring. */
void connq_fini(struct connq *q);

/* True if a frame of len bytes can be queued without passing the bound. */
static inline bool
connq_fits(const struct connq *q, size_t len)
{
	return q->bytes + len <= q->max_bytes;
}

static inline bool
connq_empty(const struct connq *q)
{
	return q->count == 0;
}

/*
 * Queues a new reference to f (it does not check the byte bound: call
 * connq_fits() first). Returns 0, or -1 if the ring cannot grow (nothing
 * queued, no reference taken).
 */
int connq_push(struct connq *q, struct frame *f);

enum connq_verdict {
	CONNQ_QUEUED,   /* f is queued (older frames may have been dropped) */
	CONNQ_DROPPED,  /* f is not queued: larger than the bound on its own,
			   or no memory to grow the ring */
	CONNQ_OVERFLOW, /* close policy: f did not fit; the queue was cleared
			   and the caller closes the connection */
};

enum connq_verdict connq_offer_slow(struct connq *q, struct frame *f,
    bool drop_oldest, uint32_t *dropped, uint64_t *hwm);

/*
 * Offers f (borrowed; a reference is taken if it is queued) under the
 * byte bound. When it does not fit: with drop_oldest, the oldest frames
 * are dropped until it does; otherwise nothing is queued, the queue is
 * cleared and CONNQ_OVERFLOW returned. *dropped is set to the frames lost
 * by this call (dropped from the queue, plus f unless it was queued);
 * *hwm is raised to the queue's bytes if they pass it.
 */
static inline enum connq_verdict
connq_offer(struct connq *q, struct frame *f, bool drop_oldest,
    uint32_t *dropped, uint64_t *hwm)
{
	/* The common case inline: it fits and the ring has room. */
	if (connq_fits(q, f->len) && q->count < q->cap) {
		q->ring[(q->head + q->count) & (q->cap - 1)] = frame_ref(f);
		q->count++;
		q->bytes += f->len;
		if (q->bytes > *hwm)
			*hwm = q->bytes;
		*dropped = 0;
		return CONNQ_QUEUED;
	}
	return connq_offer_slow(q, f, drop_oldest, dropped, hwm);
}

/* The oldest frame (borrowed), or NULL if empty. */
struct frame *connq_peek(const struct connq *q);

/* The i-th oldest frame (borrowed); i < q->count. */
static inline struct frame *
connq_at(const struct connq *q, uint32_t i)
{
	return q->ring[(q->head + i) & (q->cap - 1)];
}

/* Removes the oldest frame and returns its reference (the caller unrefs),
 * or NULL if empty. */
struct frame *connq_pop(struct connq *q);

/* DROP: unrefs the oldest frame; returns 1 if one was dropped, 0 if empty. */
int connq_drop_oldest(struct connq *q);

/* DROP: unrefs every queued frame; returns how many were dropped. The ring
 * is kept for reuse. */
uint32_t connq_clear(struct connq *q);

#endif
