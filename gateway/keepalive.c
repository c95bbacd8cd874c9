/*
 * keepalive.c - pings and idle hang-ups (see keepalive.h).
 */
#include "keepalive.h"

#include <stdbool.h>
#include <stddef.h>

void
keepalive_init(
    struct keepalive *k, uint32_t ping_interval_s, uint32_t idle_timeout_s)
{
	dlist_init(&k->quiet);
	dlist_init(&k->pinged);
	k->ping_ms = (uint64_t)ping_interval_s * 1000;
	k->idle_ms = (uint64_t)idle_timeout_s * 1000;
}

void
keepalive_add(struct keepalive *k, struct keepalive_entry *e, uint64_t now)
{
	e->valid_ms = now;
	e->pinged = false;
	dlist_insert_tail(&k->quiet, &e->node);
}

void
keepalive_valid(struct keepalive *k, struct keepalive_entry *e, uint64_t now)
{
	if (!dlist_node_linked(&e->node))
		return; /* closing */
	dlist_remove(&e->node);
	keepalive_add(k, e, now);
}

void
keepalive_del(struct keepalive_entry *e)
{
	if (dlist_node_linked(&e->node))
		dlist_remove(&e->node);
}

static struct keepalive_entry *
keepalive_head(const struct dlist *l)
{
	struct dlist_node *n = dlist_first(l);

	return n != NULL ? DLIST_ENTRY(n, struct keepalive_entry, node) : NULL;
}

/* True if e is in a list and due at now after delay_ms. */
static bool
keepalive_due(const struct keepalive_entry *e, uint64_t now, uint64_t delay_ms)
{
	return e != NULL && now - e->valid_ms >= delay_ms;
}

uint32_t
keepalive_tick(struct keepalive *k, uint64_t now, keepalive_fn *ping,
    keepalive_fn *hangup, void *arg, bool *more)
{
	struct keepalive_entry *e;
	uint32_t pings = 0, hangups = 0;

	/* Hang-ups first: a connection pinged and due for both goes. */
	while (hangups < KEEPALIVE_TICK_MAX &&
	       (e = keepalive_head(&k->pinged)) != NULL &&
	       now - e->valid_ms >= k->idle_ms) {
		dlist_remove(&e->node);
		hangups++;
		hangup(e, arg);
	}
	while (pings < KEEPALIVE_TICK_MAX &&
	       (e = keepalive_head(&k->quiet)) != NULL &&
	       now - e->valid_ms >= k->ping_ms) {
		dlist_remove(&e->node);
		if (now - e->valid_ms >= k->idle_ms) {
			/* Overdue for both (ticks fell behind): no ping. */
			hangups++;
			hangup(e, arg);
			continue;
		}
		e->pinged = true;
		/* Deadlines valid_ms + idle_ms keep quiet's order here. */
		dlist_insert_tail(&k->pinged, &e->node);
		pings++;
		ping(e, arg);
	}
	*more = keepalive_due(keepalive_head(&k->pinged), now, k->idle_ms) ||
		keepalive_due(keepalive_head(&k->quiet), now, k->ping_ms);
	return pings + hangups;
}
