/*
 * metrics.c - Prometheus text from a stats view (see metrics.h).
 *
 * The text format wants each family's samples together, after one HELP
 * and one TYPE line; families of proto/counters.h are therefore rendered
 * family by family, whatever the order of their rows.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <string.h>

#include "metrics.h"

enum metrics_type { METRICS_COUNTER, METRICS_GAUGE };

static void
metrics_head(FILE *f, const char *family, enum metrics_type t, const char *help)
{
	/* The sample name, _total included (text format 0.0.4, as
	 * Prometheus' own client libraries print it). */
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", family, help, family,
	    t == METRICS_COUNTER ? "counter" : "gauge");
}

/* A family with one unlabelled sample. */
static void
metrics_one(FILE *f, const char *family, enum metrics_type t, const char *help,
    uint64_t v)
{
	metrics_head(f, family, t, help);
	fprintf(f, "%s %" PRIu64 "\n", family, v);
}

/* [history]: whether the function library is usable, and what the
 * workers asked of it. */
static void
metrics_history(FILE *f, const struct bridge_counters *bc)
{
	const char *st = bc->history != NULL ? bc->history : "off";

	metrics_one(f, "wspush_history_enabled", METRICS_GAUGE,
	    "1 when [history] size > 0 (history requested).",
	    strcmp(st, "off") != 0);
	metrics_one(f, "wspush_history_up", METRICS_GAUGE,
	    "1 when the history function library is loaded and usable; 0 "
	    "when off, loading or unavailable.",
	    strcmp(st, "ready") == 0);
	metrics_one(f, "wspush_history_load_failures_total", METRICS_COUNTER,
	    "Function library loads that failed (old Redis, refused FUNCTION "
	    "LOAD).",
	    bc->history_load_failures);
	metrics_one(f, "wspush_history_range_requests_total", METRICS_COUNTER,
	    "Range requests of the workers (recoveries and history reads).",
	    bc->range_requests);
	metrics_head(f, "wspush_history_range_errors_total", METRICS_COUNTER,
	    "Range requests answered with an error, by reason (bad_request: "
	    "refused as malformed; failed: Redis error, unavailable, too "
	    "many in flight).");
	fprintf(f,
	    "wspush_history_range_errors_total{reason=\"bad_request\"} "
	    "%" PRIu64 "\n"
	    "wspush_history_range_errors_total{reason=\"failed\"} %" PRIu64
	    "\n",
	    bc->range_bad, bc->range_failed);
	metrics_one(f, "wspush_history_ranges_recovered_total", METRICS_COUNTER,
	    "Range requests answered with the promise that nothing after "
	    "since is missing.",
	    bc->ranges_recovered);
	metrics_one(f, "wspush_history_range_entries_total", METRICS_COUNTER,
	    "Stored messages the bridge sent to workers for ranges.",
	    bc->range_entries);
}

static void
metrics_bridge(FILE *f, const struct stats_view *v)
{
	const struct bridge_counters *bc = &v->bc;

	metrics_head(f, "wspush_build_info", METRICS_GAUGE,
	    "Version and node of the bridge.");
	fprintf(f, "wspush_build_info{version=\"%s\",node=\"%s\"} 1\n",
	    bc->version, v->node);
	metrics_one(f, "wspush_uptime_seconds", METRICS_GAUGE,
	    "Seconds since the bridge started.", bc->uptime_s);
	metrics_one(f, "wspush_redis_up", METRICS_GAUGE,
	    "1 when both Redis links (subscriber and command) are up.",
	    bc->sub_up && bc->cmd_up);
	metrics_head(f, "wspush_redis_reconnects_total", METRICS_COUNTER,
	    "Redis reconnections, by link.");
	fprintf(f,
	    "wspush_redis_reconnects_total{link=\"sub\"} %" PRIu64 "\n"
	    "wspush_redis_reconnects_total{link=\"cmd\"} %" PRIu64 "\n",
	    bc->sub_reconnects, bc->cmd_reconnects);
	metrics_one(f, "wspush_redis_connect_failures_total", METRICS_COUNTER,
	    "Failed Redis connection attempts (authentication refusals "
	    "included).",
	    bc->connect_failures);
	metrics_one(f, "wspush_redis_outages_total", METRICS_COUNTER,
	    "Times Redis became unusable after it had been reached.",
	    bc->outages);
	metrics_one(f, "wspush_subscriptions", METRICS_GAUGE,
	    "Redis subscriptions confirmed.", bc->subscriptions);
	metrics_one(f, "wspush_messages_from_redis_total", METRICS_COUNTER,
	    "Messages received from Redis.", bc->redis_messages);
	metrics_one(f, "wspush_envelopes_published_total", METRICS_COUNTER,
	    "Message envelopes published on the node bus.", bc->bus_msgs);
	metrics_one(f, "wspush_upstream_writes_total", METRICS_COUNTER,
	    "Writes sent to Redis for the workers.", bc->upstream_writes);
	metrics_one(f, "wspush_upstream_queued", METRICS_GAUGE,
	    "Writes waiting for the Redis command link.", bc->queued_writes);
	metrics_head(f, "wspush_bridge_drops_total", METRICS_COUNTER,
	    "Messages dropped by the bridge, by reason.");
	for (int d = 0; d < BRIDGE_DROP_COUNT; d++)
		fprintf(f,
		    "wspush_bridge_drops_total{reason=\"%s\"} %" PRIu64 "\n",
		    bridge_drop_str((enum bridge_drop)d), bc->drops[d]);
	metrics_history(f, bc);
	metrics_one(f, "wspush_workers", METRICS_GAUGE,
	    "Workers known to the bridge.", v->n_workers);
	metrics_head(f, "wspush_listener_restarts_total", METRICS_COUNTER,
	    "IPC listeners recreated by their self-check, by listener.");
	fprintf(f,
	    "wspush_listener_restarts_total{listener=\"bus\"} %" PRIu64 "\n"
	    "wspush_listener_restarts_total{listener=\"stats\"} %" PRIu64 "\n",
	    bc->listener_restarts, v->stats_listener_restarts);
}

/*
 * The broker's figures in names that fit any broker (the wspush_redis_*
 * families above stay, for the dashboards built on them), labelled with
 * the broker's kind.
 */
static void
metrics_broker(FILE *f, const struct stats_view *v)
{
	const struct bridge_counters *bc = &v->bc;
	const char *k = bc->broker != NULL ? bc->broker : "";

	metrics_head(f, "wspush_broker_up", METRICS_GAUGE,
	    "1 when every broker link the node needs is up.");
	fprintf(f, "wspush_broker_up{kind=\"%s\"} %d\n", k, bc->broker_up);
	metrics_head(f, "wspush_broker_outages_total", METRICS_COUNTER,
	    "Times the broker became unusable after it had been reached.");
	fprintf(f, "wspush_broker_outages_total{kind=\"%s\"} %" PRIu64 "\n", k,
	    bc->outages);
	metrics_head(f, "wspush_broker_connect_failures_total", METRICS_COUNTER,
	    "Failed broker connection attempts.");
	fprintf(f,
	    "wspush_broker_connect_failures_total{kind=\"%s\"} %" PRIu64 "\n",
	    k, bc->connect_failures);
	metrics_head(f, "wspush_broker_subscriptions", METRICS_GAUGE,
	    "Confirmed broker subscriptions (AMQP: queue bindings).");
	fprintf(f, "wspush_broker_subscriptions{kind=\"%s\"} %" PRIu64 "\n", k,
	    bc->subscriptions);
	metrics_head(f, "wspush_broker_messages_total", METRICS_COUNTER,
	    "Messages received from the broker.");
	fprintf(f, "wspush_broker_messages_total{kind=\"%s\"} %" PRIu64 "\n", k,
	    bc->redis_messages);
	metrics_head(f, "wspush_broker_drops_total", METRICS_COUNTER,
	    "Messages the broker side lost, by reason.");
	for (int r = 0; r < BROKER_DROP_COUNT; r++)
		fprintf(f,
		    "wspush_broker_drops_total{kind=\"%s\",reason=\"%s\"} "
		    "%" PRIu64 "\n",
		    k, broker_drop_str((enum broker_drop)r),
		    bc->broker_drops[r]);
}

static enum metrics_type
metrics_type(const struct counter_info *ci)
{
	return ci->kind == COUNTER_KIND_COUNTER ? METRICS_COUNTER
						: METRICS_GAUGE;
}

/* The master's figures: node-wide, one sample each, no worker label. */
static void
metrics_master(FILE *f, const struct stats_view *v)
{
	uint64_t m[STATS_VIEW_NMASTER];

	if (!stats_view_master(v, m))
		return;
	for (int k = 0; k < STATS_VIEW_NMASTER; k++) {
		const struct counter_info *ci =
		    &worker_counter_info[WC_master_restarts + k];

		metrics_one(f, ci->family, metrics_type(ci), ci->help, m[k]);
	}
}

/* Names from workers go into a label value: [A-Za-z0-9_] only. */
static bool
metrics_name_ok(const char *name)
{
	if (*name == '\0')
		return false;
	for (const char *p = name; *p != '\0'; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			(*p >= '0' && *p <= '9') || *p == '_'))
			return false;
	return true;
}

static void
metrics_last_seen(FILE *f, const struct stats_view *v)
{
	metrics_head(f, "wspush_worker_last_seen_seconds", METRICS_GAUGE,
	    "Seconds since the worker's last report.");
	for (size_t i = 0; i < v->n_workers; i++)
		fprintf(f,
		    "wspush_worker_last_seen_seconds{worker=\"%" PRIu32
		    "\",gen=\"%" PRIu32 "\"} %.3f\n",
		    v->workers[i].slot, v->workers[i].gen,
		    (double)stats_view_silent_ms(v, &v->workers[i]) / 1000.0);
}

/* Counters this build does not know (a newer worker): one generic
 * family, so nothing a worker reports is invisible. */
static void
metrics_unknown(FILE *f, const struct stats_view *v)
{
	metrics_head(f, "wspush_worker_counter", METRICS_GAUGE,
	    "Other worker counters, by name (see wspushctl stats).");
	for (size_t i = 0; i < v->n_workers; i++) {
		const struct bridge_worker_info *w = &v->workers[i];

		for (size_t c = 0; c < w->n_counters; c++) {
			if (counter_info_find(w->names[c]) != NULL ||
			    !metrics_name_ok(w->names[c]))
				continue;
			fprintf(f,
			    "wspush_worker_counter{worker=\"%" PRIu32
			    "\",gen=\"%" PRIu32 "\",name=\"%s\"} %" PRIu64 "\n",
			    w->slot, w->gen, w->names[c], w->values[c]);
		}
	}
}

/* Whether row k is the first of its family in counters.h. */
static bool
metrics_family_first(int k)
{
	for (int j = 0; j < k; j++)
		if (strcmp(worker_counter_info[j].family,
			worker_counter_info[k].family) == 0)
			return false;
	return true;
}

/* The HELP of row k's family: the first row of the family that has one. */
static const char *
metrics_family_help(int k)
{
	for (int j = k; j < WC_COUNT; j++)
		if (strcmp(worker_counter_info[j].family,
			worker_counter_info[k].family) == 0 &&
		    worker_counter_info[j].help != NULL)
			return worker_counter_info[j].help;
	return "";
}

/* The samples of row j for every worker that reported it. */
static void
metrics_row(FILE *f, const struct stats_view *v, int j)
{
	const struct counter_info *ci = &worker_counter_info[j];

	for (size_t i = 0; i < v->n_workers; i++) {
		uint64_t x;

		if (!stats_view_counter(&v->workers[i], ci->name, &x))
			continue;
		fprintf(f,
		    "%s{worker=\"%" PRIu32 "\",gen=\"%" PRIu32
		    "\"%s%s} %" PRIu64 "\n",
		    ci->family, v->workers[i].slot, v->workers[i].gen,
		    ci->label != NULL ? "," : "",
		    ci->label != NULL ? ci->label : "", x);
	}
}

/* Every family of counters.h (the master's apart), each in one block. */
static void
metrics_workers(FILE *f, const struct stats_view *v)
{
	for (int k = 0; k < WC_COUNT; k++) {
		const struct counter_info *ci = &worker_counter_info[k];

		if (counter_is_master((enum worker_counter)k) ||
		    !metrics_family_first(k))
			continue;
		metrics_head(
		    f, ci->family, metrics_type(ci), metrics_family_help(k));
		for (int j = k; j < WC_COUNT; j++)
			if (strcmp(worker_counter_info[j].family, ci->family) ==
			    0)
				metrics_row(f, v, j);
	}
}

void
metrics_render(FILE *f, const struct stats_view *v)
{
	metrics_bridge(f, v);
	metrics_broker(f, v);
	metrics_master(f, v);
	metrics_last_seen(f, v);
	metrics_unknown(f, v);
	metrics_workers(f, v);
}
