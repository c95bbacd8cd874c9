/*
 * ctl_stats.c - `wspushctl stats`: asks the stats socket (ctl_sock.h) and
 * prints the bridge's figures, the gateway master's, and one row per
 * worker; --watch repeats every second with rates.
 *
 * The worker columns name counters of proto/counters.h by enum, the list
 * the workers report from, so a column cannot drift from it. A column may
 * sum a whole family (every drop reason, every handshake refusal);
 * counters a newer worker reports and this build does not know are still
 * summed into the family whose name prefix they carry, and shown in the
 * --json output.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "counters.h"
#include "ctl_common.h"
#include "ctl_sock.h"
#include "ctl_stats.h"

const char ctl_stats_usage[] =
    "[-c FILE] stats [--json] [--watch] [--count N] [--timeout S]\n"
    "                 the node's counters from the bridge's stats socket: "
    "a table,\n"
    "                 --json the raw reply, --watch every second with "
    "rates\n"
    "                 (--count N: stop after N refreshes)\n";

/* A worker column: one counter, or the sum of its counter's family. */
struct ctl_stats_col {
	const char *head;
	int width;
	enum worker_counter wc;
	const char *skew_prefix; /* non-NULL: sum the family, and unknown
				    counters whose name starts with this */
	bool human;              /* 1.2M */
	bool total;              /* summed in the total row */
};

static const struct ctl_stats_col ctl_stats_cols[] = {
    {"CONNS", 7, WC_connections, NULL, false, true},
    {"USERS", 7, WC_users, NULL, false, true},
    {"SUBS", 6, WC_subscriptions, NULL, false, true},
    {"MSGS_IN", 9, WC_msgs_in, NULL, false, true},
    {"FRAMES_OUT", 10, WC_frames_out, NULL, false, true},
    {"BYTES_OUT", 9, WC_bytes_out, NULL, true, true},
    {"DROPS", 7, WC_drop_queue_full, "drop_", false, true},
    {"QUEUE_HWM", 9, WC_queue_hwm, NULL, true, false},
    {"HS_OK", 6, WC_hs_accepted, NULL, false, true},
    {"HS_REJ", 6, WC_hs_rejected_auth, "hs_rejected_", false, true},
};
#define CTL_STATS_NCOLS (sizeof(ctl_stats_cols) / sizeof(ctl_stats_cols[0]))

/* The rates shown with --watch, per second since the previous sample. */
static const struct ctl_stats_col ctl_stats_rates[] = {
    {"IN/s", 7, WC_msgs_in, NULL, true, false},
    {"OUT/s", 6, WC_frames_out, NULL, true, false},
    {"BYTES/s", 8, WC_bytes_out, NULL, true, false},
};
#define CTL_STATS_NRATES (sizeof(ctl_stats_rates) / sizeof(ctl_stats_rates[0]))

/* Integer at a dotted path of o ("redis.reconnects"); 0 if absent. */
static uint64_t
ctl_stats_u64(const json_t *o, const char *path)
{
	char key[64];
	const char *dot;

	while ((dot = strchr(path, '.')) != NULL) {
		snprintf(key, sizeof(key), "%.*s", (int)(dot - path), path);
		o = json_object_get(o, key);
		path = dot + 1;
	}
	o = json_object_get(o, path);
	return json_is_integer(o) && json_integer_value(o) > 0
		   ? (uint64_t)json_integer_value(o)
		   : 0;
}

static const char *
ctl_stats_str(const json_t *o, const char *key)
{
	const char *v = json_string_value(json_object_get(o, key));

	return v != NULL ? v : "?";
}

/* Human units: 1234567 -> "1.2M". */
static const char *
ctl_stats_human(char *buf, size_t len, double v)
{
	static const char *const units[] = {"", "k", "M", "G", "T"};
	int u = 0;

	while (v >= 1000.0 && u < 4) {
		v /= 1000.0;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%.0f", v);
	else
		snprintf(buf, len, "%.1f%s", v, units[u]);
	return buf;
}

/* Whether the worker counter `name` belongs to a family column. */
static bool
ctl_stats_in_family(const struct ctl_stats_col *col, const char *name)
{
	const struct counter_info *ci = counter_info_find(name);

	if (ci == NULL)
		return strncmp(name, col->skew_prefix,
			   strlen(col->skew_prefix)) == 0;
	return strcmp(ci->family, worker_counter_info[col->wc].family) == 0;
}

/* A column's value in a worker's counters object. */
static uint64_t
ctl_stats_col_value(const struct ctl_stats_col *col, const json_t *cs)
{
	const char *k;
	json_t *v;
	uint64_t n = 0;

	if (col->skew_prefix == NULL)
		return ctl_stats_u64(cs, worker_counter_info[col->wc].name);
	json_object_foreach((json_t *)cs, k, v)
	{
		if (json_is_integer(v) && json_integer_value(v) > 0 &&
		    ctl_stats_in_family(col, k))
			n += (uint64_t)json_integer_value(v);
	}
	return n;
}

/* Prints one cell right-aligned in its column. */
static void
ctl_stats_cell(const struct ctl_stats_col *col, double v, bool blank)
{
	char buf[32];

	if (blank)
		snprintf(buf, sizeof(buf), "%s", "");
	else if (col->human)
		ctl_stats_human(buf, sizeof(buf), v);
	else
		snprintf(buf, sizeof(buf), "%.0f", v);
	printf(" %*s", col->width, buf);
}

static double
ctl_stats_rate(
    const json_t *cur, const json_t *prev, const char *name, double dt)
{
	uint64_t a = ctl_stats_u64(cur, name), b;

	if (prev == NULL || dt <= 0)
		return -1;
	b = ctl_stats_u64(prev, name);
	return a >= b ? (double)(a - b) / dt : 0;
}

/* The previous sample's worker, by slot and gen (for rates). */
static const json_t *
ctl_stats_prev_worker(const json_t *prev, const json_t *w)
{
	size_t i;
	json_t *p;

	json_array_foreach(json_object_get(prev, "workers"), i, p)
	{
		if (ctl_stats_u64(p, "slot") == ctl_stats_u64(w, "slot") &&
		    ctl_stats_u64(p, "gen") == ctl_stats_u64(w, "gen"))
			return p;
	}
	return NULL;
}

/* "label k=v k=v" for the non-zero counters whose name starts with
 * prefix (printed without it); nothing if there are none. */
static void
ctl_stats_print_drops(
    const char *label, const json_t *drops, const char *prefix)
{
	const char *k;
	json_t *v;
	bool any = false;
	size_t pl = strlen(prefix);

	json_object_foreach((json_t *)drops, k, v)
	{
		if (strncmp(k, prefix, pl) != 0 || !json_is_integer(v) ||
		    json_integer_value(v) == 0)
			continue;
		printf("%s%s=%" JSON_INTEGER_FORMAT, any ? " " : label, k + pl,
		    json_integer_value(v));
		any = true;
	}
	if (any)
		printf("\n");
}

static void
ctl_stats_print_redis(const json_t *br)
{
	const json_t *redis = json_object_get(br, "redis");

	printf("redis    %s  reconnects %" PRIu64 "  outages %" PRIu64,
	    ctl_stats_str(redis, "state"), ctl_stats_u64(redis, "reconnects"),
	    ctl_stats_u64(redis, "outages"));
	if (ctl_stats_u64(redis, "down_for_ms") > 0)
		printf("  down for %.1fs",
		    (double)ctl_stats_u64(redis, "down_for_ms") / 1000);
	else if (ctl_stats_u64(redis, "last_outage_ms") > 0)
		printf("  last outage %.1fs",
		    (double)ctl_stats_u64(redis, "last_outage_ms") / 1000);
	/* Why it is down (an older bridge does not say). */
	if (strcmp(ctl_stats_str(redis, "state"), "up") != 0 &&
	    json_string_length(json_object_get(redis, "last_error")) > 0)
		printf("  error: %s",
		    json_string_value(json_object_get(redis, "last_error")));
	printf("\n");
}

/*
 * The broker in broker-neutral terms: kind, link state, subscriptions
 * (bindings for AMQP), outages and the broker's drops by reason. Absent
 * from an older bridge's answer: then nothing is printed.
 */
static void
ctl_stats_print_broker(const json_t *br)
{
	const json_t *bl = json_object_get(br, "broker_link");
	bool amqp;

	if (!json_is_object(bl))
		return;
	amqp = strcmp(ctl_stats_str(bl, "kind"), "amqp") == 0;
	printf("broker   %s %s  %s %" PRIu64 "  outages %" PRIu64
	       "  connect failures %" PRIu64,
	    ctl_stats_str(bl, "kind"), ctl_stats_str(bl, "state"),
	    amqp ? "bindings" : "subscriptions",
	    ctl_stats_u64(bl, "subscriptions"), ctl_stats_u64(bl, "outages"),
	    ctl_stats_u64(bl, "connect_failures"));
	if (strcmp(ctl_stats_str(bl, "state"), "up") != 0 &&
	    json_string_length(json_object_get(bl, "last_error")) > 0)
		printf("  error: %s",
		    json_string_value(json_object_get(bl, "last_error")));
	printf("\n");
	ctl_stats_print_drops(
	    "         broker drops: ", json_object_get(bl, "drops"), "");
}

/* Worker counter c summed over every worker of the reply. */
static uint64_t
ctl_stats_worker_sum(const json_t *j, enum worker_counter c)
{
	size_t i;
	json_t *w;
	uint64_t n = 0;

	json_array_foreach(json_object_get(j, "workers"), i, w)
	{
		n += ctl_stats_u64(json_object_get(w, "counters"),
		    worker_counter_info[c].name);
	}
	return n;
}

/* The history line, when [history] is on (an older bridge has no
 * "history" object: nothing is printed). */
static void
ctl_stats_print_history(const json_t *j)
{
	const json_t *h =
	    json_object_get(json_object_get(j, "bridge"), "history");
	const char *state = json_string_value(json_object_get(h, "state"));

	if (state == NULL || strcmp(state, "off") == 0)
		return;
	printf("history  %s  load failures %" PRIu64 "  recoveries %" PRIu64
	       " full %" PRIu64 " partial  replayed %" PRIu64 "  reads %" PRIu64
	       " (errors %" PRIu64 ")\n",
	    state, ctl_stats_u64(h, "load_failures"),
	    ctl_stats_worker_sum(j, WC_recoveries_full),
	    ctl_stats_worker_sum(j, WC_recoveries_partial),
	    ctl_stats_worker_sum(j, WC_replayed),
	    ctl_stats_worker_sum(j, WC_history_reads),
	    ctl_stats_worker_sum(j, WC_history_read_errors));
	printf("         ranges %" PRIu64 "  bad %" PRIu64 "  failed %" PRIu64
	       "  recovered %" PRIu64 "  entries %" PRIu64 "\n",
	    ctl_stats_u64(h, "range_requests"), ctl_stats_u64(h, "range_bad"),
	    ctl_stats_u64(h, "range_failed"),
	    ctl_stats_u64(h, "ranges_recovered"),
	    ctl_stats_u64(h, "range_entries"));
	if (json_string_length(json_object_get(h, "error")) > 0)
		printf("         history requested but unavailable: %s\n",
		    json_string_value(json_object_get(h, "error")));
}

/* The bridge's and the master's lines. */
static void
ctl_stats_print_node(const json_t *j, const json_t *prev, double dt)
{
	const json_t *br = json_object_get(j, "bridge");
	const json_t *ma = json_object_get(j, "master");
	const json_t *pbr =
	    prev != NULL ? json_object_get(prev, "bridge") : NULL;
	char b1[16], b2[16];
	double r;

	printf("bridge   node %s  version %s  pid %" PRIu64 "  uptime %" PRIu64
	       "s  epoch %s\n",
	    ctl_stats_str(br, "node"), ctl_stats_str(br, "version"),
	    ctl_stats_u64(br, "pid"), ctl_stats_u64(br, "uptime_s"),
	    ctl_stats_str(br, "epoch"));
	ctl_stats_print_redis(br);
	ctl_stats_print_broker(br);
	printf("         subscriptions %" PRIu64 "  from redis %" PRIu64
	       "  published %" PRIu64 "  upstream writes %" PRIu64
	       " (queued %" PRIu64 ")\n",
	    ctl_stats_u64(br, "subscriptions"),
	    ctl_stats_u64(br, "msgs_from_redis"),
	    ctl_stats_u64(br, "envelopes_published"),
	    ctl_stats_u64(br, "upstream_writes"),
	    ctl_stats_u64(br, "queued_writes"));
	if ((r = ctl_stats_rate(br, pbr, "msgs_from_redis", dt)) >= 0)
		printf("         rates/s: from redis %s  upstream writes %s\n",
		    ctl_stats_human(b1, sizeof(b1), r),
		    ctl_stats_human(b2, sizeof(b2),
			ctl_stats_rate(br, pbr, "upstream_writes", dt)));
	ctl_stats_print_drops(
	    "         drops: ", json_object_get(br, "drops"), "");
	ctl_stats_print_history(j);
	if (json_is_true(json_object_get(ma, "reported")))
		printf("master   worker restarts %" PRIu64 "  reloads %" PRIu64
		       "  crash loops %" PRIu64 "\n",
		    ctl_stats_u64(ma, "restarts"), ctl_stats_u64(ma, "reloads"),
		    ctl_stats_u64(ma, "crash_loops"));
	else
		printf("master   (not reported by this gateway build)\n");
}

static void
ctl_stats_print_head(bool rates)
{
	printf("\n%-4s %-5s %-8s", "SLOT", "GEN", "PID");
	for (size_t k = 0; k < CTL_STATS_NCOLS; k++)
		printf(" %*s", ctl_stats_cols[k].width, ctl_stats_cols[k].head);
	for (size_t k = 0; rates && k < CTL_STATS_NRATES; k++)
		printf(
		    " %*s", ctl_stats_rates[k].width, ctl_stats_rates[k].head);
	printf("\n");
}

/* One worker's row; adds its columns to totals. */
static void
ctl_stats_print_worker(const json_t *w, const json_t *prev, double dt,
    uint64_t totals[CTL_STATS_NCOLS])
{
	const json_t *cs = json_object_get(w, "counters");

	printf("%-4" PRIu64 " %-5" PRIu64 " %-8" PRIu64,
	    ctl_stats_u64(w, "slot"), ctl_stats_u64(w, "gen"),
	    ctl_stats_u64(w, "pid"));
	for (size_t k = 0; k < CTL_STATS_NCOLS; k++) {
		uint64_t v = ctl_stats_col_value(&ctl_stats_cols[k], cs);

		ctl_stats_cell(&ctl_stats_cols[k], (double)v, false);
		totals[k] += v;
	}
	if (prev != NULL) {
		const json_t *pw = ctl_stats_prev_worker(prev, w);
		const json_t *pcs =
		    pw != NULL ? json_object_get(pw, "counters") : NULL;

		for (size_t k = 0; k < CTL_STATS_NRATES; k++) {
			const struct ctl_stats_col *col = &ctl_stats_rates[k];
			double r = ctl_stats_rate(
			    cs, pcs, worker_counter_info[col->wc].name, dt);

			if (r < 0)
				printf(" %*s", col->width, "-");
			else
				ctl_stats_cell(col, r, false);
		}
	}
	if (!json_is_true(json_object_get(w, "attached")))
		printf("  (silent %" PRIu64 " ms)",
		    ctl_stats_u64(w, "last_seen_ms"));
	printf("\n");
}

static void
ctl_stats_print_workers(const json_t *j, const json_t *prev, double dt)
{
	const json_t *ws = json_object_get(j, "workers"), *w;
	uint64_t totals[CTL_STATS_NCOLS] = {0};
	size_t i;

	ctl_stats_print_head(prev != NULL);
	json_array_foreach(ws, i, w)
	    ctl_stats_print_worker(w, prev, dt, totals);
	printf("%-19s", "total");
	for (size_t k = 0; k < CTL_STATS_NCOLS; k++)
		ctl_stats_cell(&ctl_stats_cols[k], (double)totals[k],
		    !ctl_stats_cols[k].total);
	printf("\n");
	json_array_foreach(ws, i, w)
	{
		char label[48];

		snprintf(label, sizeof(label),
		    "worker %" PRIu64 " drops: ", ctl_stats_u64(w, "slot"));
		ctl_stats_print_drops(
		    label, json_object_get(w, "counters"), "drop_");
	}
}

static double
ctl_stats_now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct ctl_stats_args {
	bool json, watch;
	long count; /* 0: until interrupted */
	int timeout_ms;
};

/* Returns 0, or an exit status after printing why. */
static int
ctl_stats_parse(int argc, char **argv, struct ctl_stats_args *a)
{
	static const struct option opts[] = {
	    {"json", no_argument, NULL, 'j'},
	    {"watch", no_argument, NULL, 'w'},
	    {"count", required_argument, NULL, 'n'},
	    {"timeout", required_argument, NULL, 't'},
	    {NULL, 0, NULL, 0},
	};
	char *end;
	int opt;

	memset(a, 0, sizeof(*a));
	a->timeout_ms = CTL_TIMEOUT_DEFAULT_MS;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		switch (opt) {
		case 'j':
			a->json = true;
			break;
		case 'w':
			a->watch = true;
			break;
		case 'n':
			a->count = strtol(optarg, &end, 10);
			if (*end != '\0' || a->count < 1 ||
			    a->count > 1000000) {
				fprintf(stderr, "%s: stats: bad --count\n",
				    CTL_PROG);
				return CTL_EXIT_USAGE;
			}
			break;
		case 't':
			if (ctl_common_timeout(
				"stats", optarg, &a->timeout_ms) == -1)
				return CTL_EXIT_USAGE;
			break;
		default:
			return ctl_common_usage(ctl_stats_usage);
		}
	}
	if (optind != argc)
		return ctl_common_usage(ctl_stats_usage);
	if (!a->watch && a->count == 0)
		a->count = 1;
	return 0;
}

static void
ctl_stats_print(const struct ctl_stats_args *a, long n, const json_t *j,
    const json_t *prev, double dt)
{
	if (a->json) {
		char *text = json_dumps(j, JSON_COMPACT);

		if (text != NULL)
			printf("%s\n", text);
		free(text);
	} else {
		if (a->watch && isatty(STDOUT_FILENO))
			printf("\033[H\033[2J");
		else if (n > 0)
			printf("\n");
		ctl_stats_print_node(j, prev, dt);
		ctl_stats_print_workers(j, prev, dt);
	}
	fflush(stdout);
}

int
ctl_stats(const struct conf *c, int argc, char **argv)
{
	struct ctl_stats_args a;
	json_t *prev = NULL;
	double prev_t = 0;
	int rc;

	if ((rc = ctl_stats_parse(argc, argv, &a)) != 0)
		return rc;
	for (long n = 0; a.count == 0 || n < a.count; n++) {
		json_t *j;
		double t;

		if (n > 0)
			usleep(1000 * 1000);
		j = ctl_sock_request(
		    c, "stats", "{\"v\":1,\"cmd\":\"stats\"}", a.timeout_ms);
		t = ctl_stats_now_s();
		if (j == NULL) {
			json_decref(prev);
			return CTL_EXIT_FAIL;
		}
		ctl_stats_print(&a, n, j, prev, t - prev_t);
		json_decref(prev);
		prev = j;
		prev_t = t;
	}
	json_decref(prev);
	return CTL_EXIT_OK;
}
