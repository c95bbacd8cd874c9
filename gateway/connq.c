/*
 * connq.c - per-connection ring of frame references (see connq.h).
 */
#include "connq.h"

#include <stdlib.h>
#include <string.h>

#define CONNQ_MIN_CAP 8
/* An emptied ring larger than this is freed (idle connections stay small). */
#define CONNQ_KEEP_CAP 64

void
connq_init(struct connq *q, uint64_t max_bytes)
{
	memset(q, 0, sizeof(*q));
	q->max_bytes = max_bytes;
}

void
connq_fini(struct connq *q)
{
	connq_clear(q);
	free(q->ring);
	q->ring = NULL;
	q->cap = 0;
}

static int
connq_grow(struct connq *q)
{
	uint32_t ncap = q->cap ? q->cap * 2 : CONNQ_MIN_CAP;
	struct frame **nr;
	uint32_t i;

	if (ncap < q->cap)
		return -1;
	nr = malloc(sizeof(*nr) * ncap);
	if (nr == NULL)
		return -1;
	/* Unwrap the ring so the oldest frame lands at index 0. */
	for (i = 0; i < q->count; i++)
		nr[i] = q->ring[(q->head + i) & (q->cap - 1)];
	free(q->ring);
	q->ring = nr;
	q->cap = ncap;
	q->head = 0;
	return 0;
}

int
connq_push(struct connq *q, struct frame *f)
{
	if (q->count == q->cap && connq_grow(q) == -1)
		return -1;
	q->ring[(q->head + q->count) & (q->cap - 1)] = frame_ref(f);
	q->count++;
	q->bytes += f->len;
	return 0;
}

struct frame *
connq_peek(const struct connq *q)
{
	return q->count ? q->ring[q->head] : NULL;
}

struct frame *
connq_pop(struct connq *q)
{
	struct frame *f;

	if (q->count == 0)
		return NULL;
	f = q->ring[q->head];
	q->ring[q->head] = NULL;
	q->head = (q->head + 1) & (q->cap - 1);
	q->count--;
	q->bytes -= f->len;
	if (q->count == 0 && q->cap > CONNQ_KEEP_CAP) {
		/* A burst is over: give the big ring back. */
		free(q->ring);
		q->ring = NULL;
		q->cap = 0;
		q->head = 0;
	}
	return f;
}

int
connq_drop_oldest(struct connq *q)
{
	struct frame *f = connq_pop(q);

	if (f == NULL)
		return 0;
	frame_unref(f);
	return 1;
}

enum connq_verdict
connq_offer_slow(struct connq *q, struct frame *f, bool drop_oldest,
    uint32_t *dropped, uint64_t *hwm)
{
	uint32_t n = 0;

	if (!connq_fits(q, f->len)) {
		if (!drop_oldest) {
			/* DROP: the queue and f; the caller closes. */
			*dropped = connq_clear(q) + 1;
			return CONNQ_OVERFLOW;
		}
		/* DROP: the oldest frames until f fits. */
		while (!connq_fits(q, f->len) && connq_drop_oldest(q))
			n++;
		if (!connq_fits(q, f->len)) {
			*dropped = n + 1; /* DROP: f, larger than the bound */
			return CONNQ_DROPPED;
		}
	}
	if (connq_push(q, f) == -1) {
		*dropped = n + 1; /* DROP: f, no memory */
		return CONNQ_DROPPED;
	}
	if (q->bytes > *hwm)
		*hwm = q->bytes;
	*dropped = n;
	return CONNQ_QUEUED;
}

uint32_t
connq_clear(struct connq *q)
{
	uint32_t n = 0;

	while (connq_drop_oldest(q))
		n++;
	q->head = 0;
	return n;
}
