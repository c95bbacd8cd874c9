/*
 * connq.h - one connection's outgoing queue: a ring of frame references,
 * bounded in bytes.
 *
 * The ring is allocated on the first push and doubles as needed, so an
 * idle connection costs no queue memory. The byte bound is
 * gateway.max_queued_bytes; what to do when a frame does not fit
 * (slow_client = close | drop_oldest) is the caller's policy, helped by
 * connq_fits() and connq_drop_oldest(). Worker loop only.
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
