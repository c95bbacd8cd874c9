/*
 * report.c - COUNTERS generated from the counter list (see report.h).
 */
#include "report.h"

#include <string.h>

#include "busrx.h"
#include "conn.h"
#include "fanout.h"
#include "hsgate.h"
#include "mfig.h"
#include "uptx.h"
#include "worker.h"

static void
report_count_user(void *arg, struct fan_entry *e)
{
	uint64_t *n = arg;

	if (e->live > 0 && e->addrlen > 5 && memcmp(e->addr, "user:", 5) == 0)
		(*n)++;
}

void
report_collect(struct worker *w, uint64_t now_ms, uint64_t v[WC_COUNT])
{
	uint64_t users = 0, bytes = 0, frames = 0;
	struct dlist_node *dn;

	memcpy(v, w->c.v, sizeof(w->c.v));
	fanout_foreach(w->fan, report_count_user, &users);
	DLIST_FOREACH(dn, &w->conns) {
		const struct conn *c = DLIST_ENTRY(dn, struct conn, node);

		bytes += c->q.bytes;
		frames += c->q.count;
	}
	v[WC_bus_attached] = busrx_attached(w->bus, now_ms);
	v[WC_connections] = w->n_conns;
	v[WC_hs_pending] = hsgate_waiting();
	v[WC_users] = users;
	v[WC_subscriptions] = w->n_channel_subs;
	v[WC_queue_bytes] = bytes;
	v[WC_queue_frames] = frames;
	v[WC_interest_pending] = fanout_pending_count(w->fan);
	v[WC_master_restarts] = mfig_get(w->fig, MFIG_RESTARTS);
	v[WC_master_reloads] = mfig_get(w->fig, MFIG_RELOADS);
	v[WC_master_crash_loops] = mfig_get(w->fig, MFIG_CRASH_LOOPS);
}

void
report_send(struct worker *w, uint64_t now_ms)
{
	uint64_t v[WC_COUNT];
	struct up_counter items[WC_COUNT];
	struct up_counters uc;
	size_t i;

	report_collect(w, now_ms, v);
	for (i = 0; i < WC_COUNT; i++) {
		items[i].name.p = worker_counter_info[i].name;
		items[i].name.len =
		    (uint32_t)strlen(worker_counter_info[i].name);
		items[i].value = v[i];
	}
	uc.n = WC_COUNT;
	uc.items = items;
	uptx_counters(w->up, &uc);
}
