/*
 * amqp_confirm.h - publisher-confirm bookkeeping for one AMQP channel.
 *
 * After confirm.select the broker numbers our publishes 1, 2, 3, ... on the
 * channel and answers each with basic.ack or basic.nack; `multiple` settles
 * every tag up to and including the one given. This module tracks which
 * tags are still open in a window of AMQP_CONFIRM_WINDOW publishes (the
 * caller stops publishing while the window is full) and counts what was
 * acked, nacked, or lost with the connection. A pure module: no I/O.
 */
#ifndef WSP_AMQP_CONFIRM_H
#define WSP_AMQP_CONFIRM_H

#include <stdbool.h>
#include <stdint.h>

#define AMQP_CONFIRM_WINDOW 4096

struct amqp_confirm {
	uint64_t base; /* lowest tag that may still be open */
	uint64_t next; /* tag of the next publish */
	uint64_t acked, nacked;
	uint64_t lost;    /* open when the channel went away */
	uint64_t unknown; /* ack/nack for a tag never sent or settled */
	uint8_t done[AMQP_CONFIRM_WINDOW]; /* indexed by tag % WINDOW */
};

/* A fresh channel in confirm mode: the next publish is tag 1. Counters
 * are kept. */
void amqp_confirm_reset(struct amqp_confirm *c);

/* Clears everything, counters included. */
void amqp_confirm_init(struct amqp_confirm *c);

/* True if one more publish fits in the window. */
bool amqp_confirm_room(const struct amqp_confirm *c);

/* Records one publish; returns its tag (never 0), or 0 if the window is
 * full (then nothing was recorded). */
uint64_t amqp_confirm_sent(struct amqp_confirm *c);

/*
 * basic.ack (nack false) or basic.nack for tag, with the multiple flag.
 * Returns the number of publishes it settled; tags already settled or
 * never sent settle nothing (counted in unknown if none at all matched).
 */
uint32_t amqp_confirm_settle(
    struct amqp_confirm *c, uint64_t tag, bool multiple, bool nack);

/* Publishes not yet acked or nacked. */
uint64_t amqp_confirm_open(const struct amqp_confirm *c);

/* The channel is gone: every open publish counts as lost; the next
 * channel starts at tag 1. Returns how many were lost. */
uint64_t amqp_confirm_lose(struct amqp_confirm *c);

#endif
