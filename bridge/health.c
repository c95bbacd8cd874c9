/*
 * health.c - the /healthz verdict from a stats view (see health.h).
 */
#include <stdio.h>
#include <string.h>

#include "health.h"

uint16_t
health_verdict(const struct stats_view *v, char *body, size_t len)
{
	const struct bridge_counters *bc = &v->bc;
	size_t stale = 0, deaf = 0;
	const char *kind = bc->broker != NULL ? bc->broker : "redis";

	for (size_t i = 0; i < v->n_workers; i++) {
		uint64_t hears = 1;

		if (stats_view_silent_ms(v, &v->workers[i]) >
		    STATS_VIEW_ATTACHED_MS)
			stale++;
		/* The worker reaches us upstream but misses our heartbeats
		 * on the bus (its own view of the bus). */
		else if (stats_view_counter(&v->workers[i],
			     worker_counter_info[WC_bus_attached].name,
			     &hears) &&
			 hears == 0)
			deaf++;
	}
	/* Named after the broker ("redis ...", "amqp ..."): the texts a
	 * Redis node gave before the broker seam stay as they were. */
	if (!bc->sub_up)
		snprintf(body, len, "%s subscriber link down%s%s\n", kind,
		    bc->last_error[0] != '\0' ? ": " : "", bc->last_error);
	else if (bc->subscriptions == 0)
		snprintf(body, len, "%s subscription not confirmed\n", kind);
	else if (!bc->cmd_up)
		snprintf(body, len, "%s command link down%s%s\n", kind,
		    bc->last_error[0] != '\0' ? ": " : "", bc->last_error);
	else if (stale > 0)
		snprintf(body, len,
		    "%zu of %zu workers not heard from within %d ms\n", stale,
		    v->n_workers, STATS_VIEW_ATTACHED_MS);
	else if (deaf > 0)
		snprintf(body, len,
		    "%zu of %zu workers do not receive the bus\n", deaf,
		    v->n_workers);
	else if (bc->history != NULL &&
		 strcmp(bc->history, "unavailable") == 0) {
		/* Still 200: live delivery works, and every node sharing
		 * the Redis fails the same way, so a 503 would take the
		 * whole fleet out of the balancer for a loss of recovery
		 * only. The body (and wspush_history_up) says it. */
		snprintf(body, len,
		    "ok: %s subscribed, %zu workers attached; history "
		    "requested but unavailable%s%s\n",
		    kind, v->n_workers,
		    bc->history_error[0] != '\0' ? ": " : "",
		    bc->history_error);
		return 200;
	} else {
		snprintf(body, len, "ok: %s subscribed, %zu workers attached\n",
		    kind, v->n_workers);
		return 200;
	}
	return 503;
}
