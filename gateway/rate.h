/*
 * rate.h - a per-connection token bucket for client messages, plus the
 * "persistent abuse" detector that turns repeated rejections into a 1008
 * close. Pure arithmetic on caller-supplied millisecond clocks.
 */
#ifndef WSP_RATE_H
#define WSP_RATE_H

#include <stdbool.h>
#include <stdint.h>

/* Rejections within this window count towards abuse. */
#define RATE_ABUSE_WINDOW_MS 10000

struct rate {
	uint32_t per_s;        /* refill rate, tokens per second */
	uint32_t burst;        /* bucket size */
	uint64_t tokens_milli; /* tokens * 1000 */
	uint64_t last_ms;      /* last refill */
	uint64_t window_start; /* start of the current abuse window */
	uint32_t rejected;     /* rejections in the current window */
};

/* Starts with a full bucket. per_s = 0 disables limiting. */
void rate_init(struct rate *r, uint32_t per_s, uint32_t burst, uint64_t now_ms);

enum rate_verdict {
	RATE_OK,     /* take the message */
	RATE_REJECT, /* reply rate_limited */
	RATE_ABUSE,  /* 3 x burst rejected within the window: close 1008 */
};

/* Takes one token for a message arriving at now_ms. */
enum rate_verdict rate_take(struct rate *r, uint64_t now_ms);

#endif
