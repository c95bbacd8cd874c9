/*
 * stats_json.c - the stats document (see stats_json.h), rendered from a
 * stats view.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "stats_json.h"

/* Clears *ok if the value could not be made or set: jansson's
 * json_object_set_new() fails on a NULL value (and frees a non-NULL one
 * it could not set), so one check at the end covers every allocation. */
static void
stats_json_set(json_t *o, const char *k, json_t *v, bool *ok)
{
	if (json_object_set_new(o, k, v) != 0)
		*ok = false;
}

static void
stats_json_int(json_t *o, const char *k, uint64_t v, bool *ok)
{
	stats_json_set(o, k, json_integer((json_int_t)v), ok);
}

/* Text from outside (a broker's error message) as a JSON string: jansson
 * refuses invalid UTF-8, so anything but printable ASCII becomes '?'. */
static json_t *
stats_json_text(const char *text)
{
	char buf[256];
	size_t i;

	for (i = 0; text != NULL && text[i] != '\0' && i < sizeof(buf) - 1; i++)
		buf[i] = text[i] >= 0x20 && text[i] < 0x7f ? text[i] : '?';
	buf[i] = '\0';
	return json_string(buf);
}

static json_t *
stats_json_redis(const struct stats_view *v, bool *ok)
{
	const struct bridge_counters *bc = &v->bc;
	json_t *o = json_object();

	if (o == NULL) {
		*ok = false;
		return NULL;
	}
	stats_json_set(o, "state",
	    json_string(bc->sub_up && bc->cmd_up ? "up" : "down"), ok);
	stats_json_set(o, "sub_up", json_boolean(bc->sub_up), ok);
	stats_json_set(o, "cmd_up", json_boolean(bc->cmd_up), ok);
	stats_json_int(
	    o, "reconnects", bc->sub_reconnects + bc->cmd_reconnects, ok);
	stats_json_int(o, "sub_reconnects", bc->sub_reconnects, ok);
	stats_json_int(o, "cmd_reconnects", bc->cmd_reconnects, ok);
	stats_json_int(o, "sub_resets", bc->sub_resets, ok);
	stats_json_int(o, "outages", bc->outages, ok);
	stats_json_int(o, "connect_failures", bc->connect_failures, ok);
	stats_json_int(o, "down_for_ms", bc->down_for_ms, ok);
	stats_json_int(o, "last_outage_ms", bc->last_outage_ms, ok);
	stats_json_set(o, "last_error", stats_json_text(bc->last_error), ok);
	return o;
}

/*
 * The broker's figures under names that fit any broker ("redis" above
 * stays for the tools that read it): kind, link state, subscriptions
 * (AMQP: bindings), outages, and what it dropped by reason.
 */
static json_t *
stats_json_broker_link(const struct stats_view *v, bool *ok)
{
	const struct bridge_counters *bc = &v->bc;
	json_t *o = json_object(), *d = json_object();

	if (o == NULL || d == NULL) {
		json_decref(o);
		json_decref(d);
		*ok = false;
		return NULL;
	}
	stats_json_set(o, "kind", stats_json_text(bc->broker), ok);
	stats_json_set(
	    o, "state", json_string(bc->broker_up ? "up" : "down"), ok);
	stats_json_set(o, "up", json_boolean(bc->broker_up), ok);
	stats_json_int(o, "subscriptions", bc->subscriptions, ok);
	stats_json_int(
	    o, "reconnects", bc->sub_reconnects + bc->cmd_reconnects, ok);
	stats_json_int(o, "outages", bc->outages, ok);
	stats_json_int(o, "connect_failures", bc->connect_failures, ok);
	stats_json_int(o, "down_for_ms", bc->down_for_ms, ok);
	stats_json_int(o, "last_outage_ms", bc->last_outage_ms, ok);
	stats_json_set(o, "last_error", stats_json_text(bc->last_error), ok);
	stats_json_int(o, "messages", bc->redis_messages, ok);
	for (int r = 0; r < BROKER_DROP_COUNT; r++)
		stats_json_int(d, broker_drop_str((enum broker_drop)r),
		    bc->broker_drops[r], ok);
	stats_json_set(o, "drops", d, ok);
	return o;
}

/* The [history] state and the range requests the workers made:
 * "state" is "off", "loading", "ready" or "unavailable" (then "error"
 * says why: an old Redis, a refused FUNCTION LOAD). */
static json_t *
stats_json_history(const struct bridge_counters *bc, bool *ok)
{
	json_t *o = json_object();

	if (o == NULL) {
		*ok = false;
		return NULL;
	}
	stats_json_set(o, "state",
	    json_string(bc->history != NULL ? bc->history : "off"), ok);
	stats_json_set(o, "error", stats_json_text(bc->history_error), ok);
	stats_json_int(o, "load_failures", bc->history_load_failures, ok);
	stats_json_int(o, "broker_reads", bc->history_reads, ok);
	stats_json_int(o, "range_requests", bc->range_requests, ok);
	stats_json_int(o, "range_bad", bc->range_bad, ok);
	stats_json_int(o, "range_failed", bc->range_failed, ok);
	stats_json_int(o, "ranges_recovered", bc->ranges_recovered, ok);
	stats_json_int(o, "range_entries", bc->range_entries, ok);
	return o;
}

static json_t *
stats_json_drops(const struct bridge_counters *bc, bool *ok)
{
	json_t *o = json_object();

	if (o == NULL) {
		*ok = false;
		return NULL;
	}
	for (int d = 0; d < BRIDGE_DROP_COUNT; d++)
		stats_json_int(
		    o, bridge_drop_str((enum bridge_drop)d), bc->drops[d], ok);
	return o;
}

static json_t *
stats_json_bridge(const struct stats_view *v, bool *ok)
{
	const struct bridge_counters *bc = &v->bc;
	json_t *o = json_object();
	char epoch[24];

	if (o == NULL) {
		*ok = false;
		return NULL;
	}
	snprintf(epoch, sizeof(epoch), "%016" PRIx64, v->epoch);
	stats_json_set(o, "version", json_string(bc->version), ok);
	stats_json_set(o, "broker", stats_json_text(bc->broker), ok);
	stats_json_set(o, "node", json_string(v->node), ok);
	stats_json_set(o, "epoch", json_string(epoch), ok);
	stats_json_int(o, "pid", v->pid, ok);
	stats_json_int(o, "uptime_s", bc->uptime_s, ok);
	stats_json_set(o, "redis", stats_json_redis(v, ok), ok);
	stats_json_int(o, "subscriptions", bc->subscriptions, ok);
	stats_json_int(o, "addresses", bc->addresses, ok);
	stats_json_int(o, "acks_waiting", bc->acks_waiting, ok);
	stats_json_int(o, "lingering", bc->lingering, ok);
	stats_json_int(o, "msgs_from_redis", bc->redis_messages, ok);
	stats_json_int(o, "envelopes_published", bc->bus_msgs, ok);
	stats_json_int(o, "bus_acks", bc->bus_acks, ok);
	stats_json_int(o, "bus_heartbeats", bc->bus_heartbeats, ok);
	stats_json_int(o, "bus_batches", bc->bus_batches, ok);
	stats_json_int(o, "last_seq", bc->last_seq, ok);
	stats_json_int(o, "upstream_envelopes", bc->upstream_envelopes, ok);
	stats_json_int(o, "upstream_writes", bc->upstream_writes, ok);
	stats_json_int(o, "queued_writes", bc->queued_writes, ok);
	stats_json_int(o, "workers", bc->workers, ok);
	stats_json_int(o, "connections", bc->connections, ok);
	stats_json_int(o, "users", bc->users, ok);
	stats_json_int(o, "stats_requests", v->stats_requests, ok);
	stats_json_int(
	    o, "stats_listener_restarts", v->stats_listener_restarts, ok);
	stats_json_int(o, "bus_listener_restarts", bc->listener_restarts, ok);
	stats_json_set(o, "drops", stats_json_drops(bc, ok), ok);
	/* After "drops": readers that look a drop name up anywhere in the
	 * document meet the bridge's own counts first. */
	stats_json_set(o, "broker_link", stats_json_broker_link(v, ok), ok);
	stats_json_set(o, "history", stats_json_history(bc, ok), ok);
	return o;
}

/* One worker. Its counters go out under the names it sent, whether this
 * build knows them or not (a newer gateway during a rolling upgrade). */
static json_t *
stats_json_worker(
    const struct stats_view *v, const struct bridge_worker_info *w, bool *ok)
{
	json_t *o = json_object(), *cs = json_object();
	uint64_t silent = stats_view_silent_ms(v, w);

	if (o == NULL || cs == NULL) {
		json_decref(o);
		json_decref(cs);
		*ok = false;
		return NULL;
	}
	for (size_t k = 0; k < w->n_counters; k++)
		stats_json_int(cs, w->names[k], w->values[k], ok);
	stats_json_int(o, "slot", w->slot, ok);
	stats_json_int(o, "gen", w->gen, ok);
	stats_json_int(o, "pid", w->pid, ok);
	stats_json_int(o, "last_seen_ms", silent, ok);
	stats_json_set(
	    o, "attached", json_boolean(silent <= STATS_VIEW_ATTACHED_MS), ok);
	stats_json_set(o, "counters", cs, ok);
	return o;
}

/* {"reported": bool, "restarts": n, ...}: each master counter of
 * counters.h under its name without "master_". */
static json_t *
stats_json_master(const struct stats_view *v, bool *ok)
{
	json_t *o = json_object();
	uint64_t m[STATS_VIEW_NMASTER];
	static const char prefix[] = "master_";

	if (o == NULL) {
		*ok = false;
		return NULL;
	}
	stats_json_set(
	    o, "reported", json_boolean(stats_view_master(v, m)), ok);
	for (int k = 0; k < STATS_VIEW_NMASTER; k++) {
		const char *name =
		    worker_counter_info[WC_master_restarts + k].name;

		if (strncmp(name, prefix, sizeof(prefix) - 1) == 0)
			name += sizeof(prefix) - 1;
		stats_json_int(o, name, m[k], ok);
	}
	return o;
}

json_t *
stats_json_build(const struct stats_view *v)
{
	json_t *root = json_object(), *workers = json_array();
	bool ok = root != NULL && workers != NULL;

	if (!ok) {
		json_decref(root);
		json_decref(workers);
		return NULL;
	}
	for (size_t i = 0; i < v->n_workers; i++)
		if (json_array_append_new(workers,
			stats_json_worker(v, &v->workers[i], &ok)) != 0)
			ok = false;
	stats_json_int(root, "v", 1, &ok);
	stats_json_set(root, "bridge", stats_json_bridge(v, &ok), &ok);
	stats_json_set(root, "workers", workers, &ok);
	stats_json_set(root, "master", stats_json_master(v, &ok), &ok);
	if (!ok) {
		json_decref(root);
		return NULL;
	}
	return root;
}
