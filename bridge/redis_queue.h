/*
 * redis_queue.h - the command link's write queue: upstream writes
 * (publish, inbound, events) that must survive a short Redis outage.
 *
 * A write goes out at once while the link is up and nothing is queued;
 * otherwise it is kept in RESP form, in order, up to REDIS_QUEUE_MAX
 * writes or REDIS_QUEUE_BYTES, and sent by redis_queue_flush() once the
 * link is back. Beyond that it is dropped (the caller counts it). Writes
 * that only matter while the link is up (presence, probes) bypass it.
 * Loop thread only.
 */
#ifndef WSP_REDIS_QUEUE_H
#define WSP_REDIS_QUEUE_H

#include <stddef.h>
#include <stdint.h>

#include "redis_link.h"

#define REDIS_QUEUE_MAX 10000
#define REDIS_QUEUE_BYTES (64u * 1024 * 1024)

struct redis_queue;

/* Returns an empty queue in front of link (borrowed), or NULL. */
struct redis_queue *redis_queue_new(struct redis_link *link);

/* Frees what is still queued. NULL ok. */
void redis_queue_free(struct redis_queue *q);

/* Sends or queues one command (argv copied). Returns 0, or -1 if dropped. */
int redis_queue_write(
    struct redis_queue *q, int argc, const char **argv, const size_t *lens);

/* Sends what is queued, in order, while the link takes it. */
void redis_queue_flush(struct redis_queue *q);

/* Writes waiting; commands handed to the link since the start. */
size_t redis_queue_len(const struct redis_queue *q);
uint64_t redis_queue_sent(const struct redis_queue *q);

#endif
