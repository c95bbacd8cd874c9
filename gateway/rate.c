/*
 * rate.c - token bucket and abuse detection (see rate.h).
 */
#include "rate.h"

#include <string.h>

void
rate_init(struct rate *r, uint32_t per_s, uint32_t burst, uint64_t now_ms)
{
	memset(r, 0, sizeof(*r));
	r->per_s = per_s;
	r->burst = burst ? burst : 1;
	r->tokens_milli = (uint64_t)r->burst * 1000;
	r->last_ms = now_ms;
	r->window_start = now_ms;
}

enum rate_verdict
rate_take(struct rate *r, uint64_t now_ms)
{
	uint64_t cap = (uint64_t)r->burst * 1000;

	if (r->per_s == 0)
		return RATE_OK;
	if (now_ms > r->last_ms) {
		/* per_s tokens per 1000 ms = per_s milli-tokens per ms. */
		uint64_t add = (now_ms - r->last_ms) * r->per_s;

		r->tokens_milli =
		    add >= cap - r->tokens_milli ? cap : r->tokens_milli + add;
		r->last_ms = now_ms;
	}
	if (r->tokens_milli >= 1000) {
		r->tokens_milli -= 1000;
		return RATE_OK;
	}
	if (now_ms - r->window_start >= RATE_ABUSE_WINDOW_MS) {
		r->window_start = now_ms;
		r->rejected = 0;
	}
	r->rejected++;
	if ((uint64_t)r->rejected >= 3 * (uint64_t)r->burst)
		return RATE_ABUSE;
	return RATE_REJECT;
}
