/*
 * stats_json_test.c - the stats socket's document (bridge/stats_json.c)
 * and the /healthz verdict (bridge/health.c) from hand-made stats views.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "health.h"
#include "stats_json.h"

static const char *const names1[] = {"connections", "frames_out",
    "master_restarts", "master_reloads", "some_future_counter"};
static const uint64_t values1[] = {4, 40, 2, 1, 9};
static const char *const names2[] = {
    "connections", "master_restarts", "master_reloads", "bus_attached"};
static const uint64_t values2[] = {6, 3, 1, 1};

static void
view_init(struct stats_view *v, struct bridge_worker_info w[2])
{
	memset(v, 0, sizeof(*v));
	memset(w, 0, 2 * sizeof(*w));
	v->now_ms = 50000;
	v->node = "node-t";
	v->epoch = 0xabc;
	v->pid = 12;
	v->bc.version = "9.9";
	v->bc.sub_up = v->bc.cmd_up = true;
	v->bc.subscriptions = 1;
	v->bc.redis_messages = 5;
	v->bc.outages = 2;
	v->bc.broker = "redis";
	v->stats_requests = 8;
	w[0] =
	    (struct bridge_worker_info){1, 1, 101, 49000, 5, names1, values1};
	w[1] =
	    (struct bridge_worker_info){2, 1, 102, 49900, 4, names2, values2};
	v->workers = w;
	v->n_workers = 2;
}

static json_int_t
jint(json_t *o, const char *path)
{
	char buf[128], *save = NULL;

	snprintf(buf, sizeof(buf), "%s", path);
	for (char *k = strtok_r(buf, ".", &save); k != NULL;
	     k = strtok_r(NULL, ".", &save))
		o = json_object_get(o, k);
	assert_true(json_is_integer(o));
	return json_integer_value(o);
}

static void
the_document_keeps_its_keys(void **state)
{
	static const char *const bridge_keys[] = {"version", "node", "epoch",
	    "pid", "uptime_s", "redis", "subscriptions", "addresses",
	    "acks_waiting", "msgs_from_redis", "envelopes_published",
	    "bus_acks", "bus_heartbeats", "bus_batches", "last_seq",
	    "upstream_envelopes", "upstream_writes", "queued_writes", "workers",
	    "connections", "users", "stats_requests", "stats_listener_restarts",
	    "drops"};
	static const char *const redis_keys[] = {"state", "sub_up", "cmd_up",
	    "reconnects", "sub_reconnects", "cmd_reconnects", "sub_resets",
	    "outages", "connect_failures", "down_for_ms", "last_outage_ms",
	    "last_error"};
	struct bridge_worker_info w[2];
	struct stats_view v;
	json_t *j, *br;

	view_init(&v, w);
	j = stats_json_build(&v);
	assert_non_null(j);
	assert_int_equal(jint(j, "v"), 1);
	br = json_object_get(j, "bridge");
	for (size_t i = 0; i < sizeof(bridge_keys) / sizeof(*bridge_keys); i++)
		if (json_object_get(br, bridge_keys[i]) == NULL)
			fail_msg("bridge.%s missing", bridge_keys[i]);
	for (size_t i = 0; i < sizeof(redis_keys) / sizeof(*redis_keys); i++)
		if (json_object_get(
			json_object_get(br, "redis"), redis_keys[i]) == NULL)
			fail_msg("bridge.redis.%s missing", redis_keys[i]);
	assert_string_equal(json_string_value(json_object_get(br, "epoch")),
	    "0000000000000abc");
	assert_int_equal(jint(j, "bridge.redis.outages"), 2);
	assert_int_equal(jint(j, "bridge.msgs_from_redis"), 5);
	assert_int_equal(jint(j, "bridge.stats_requests"), 8);
	assert_string_equal(
	    json_string_value(json_object_get(br, "broker")), "redis");
	json_decref(j);
}

static void
worker_counters_pass_through_known_or_not(void **state)
{
	struct bridge_worker_info w[2];
	struct stats_view v;
	json_t *j, *w0;

	view_init(&v, w);
	j = stats_json_build(&v);
	w0 = json_array_get(json_object_get(j, "workers"), 0);
	assert_int_equal(jint(w0, "slot"), 1);
	assert_int_equal(jint(w0, "pid"), 101);
	assert_int_equal(jint(w0, "last_seen_ms"), 1000);
	assert_true(json_is_true(json_object_get(w0, "attached")));
	assert_int_equal(jint(w0, "counters.frames_out"), 40);
	/* A counter this build does not know (a newer gateway). */
	assert_int_equal(jint(w0, "counters.some_future_counter"), 9);
	assert_int_equal(json_object_size(json_object_get(w0, "counters")), 5);
	json_decref(j);
}

static void
master_figures_are_the_largest_reported(void **state)
{
	struct bridge_worker_info w[2];
	struct stats_view v;
	json_t *j;

	view_init(&v, w);
	j = stats_json_build(&v);
	assert_true(json_is_true(
	    json_object_get(json_object_get(j, "master"), "reported")));
	assert_int_equal(jint(j, "master.restarts"), 3);
	assert_int_equal(jint(j, "master.reloads"), 1);
	assert_int_equal(jint(j, "master.crash_loops"), 0);
	json_decref(j);

	v.n_workers = 0;
	j = stats_json_build(&v);
	assert_true(json_is_false(
	    json_object_get(json_object_get(j, "master"), "reported")));
	json_decref(j);
}

static void
health_names_the_first_problem(void **state)
{
	struct bridge_worker_info w[2];
	struct stats_view v;
	char body[256];
	static const uint64_t deaf[] = {6, 3, 1, 0};

	view_init(&v, w);
	assert_int_equal(health_verdict(&v, body, sizeof(body)), 200);
	assert_string_equal(body, "ok: redis subscribed, 2 workers attached\n");

	w[1].values = deaf; /* bus_attached 0 */
	assert_int_equal(health_verdict(&v, body, sizeof(body)), 503);
	assert_string_equal(body, "1 of 2 workers do not receive the bus\n");

	w[0].last_seen_ms = 40000; /* silent for 10 s */
	assert_int_equal(health_verdict(&v, body, sizeof(body)), 503);
	assert_string_equal(
	    body, "1 of 2 workers not heard from within 3000 ms\n");

	v.bc.cmd_up = false;
	assert_int_equal(health_verdict(&v, body, sizeof(body)), 503);
	assert_string_equal(body, "redis command link down\n");
	v.bc.subscriptions = 0;
	assert_int_equal(health_verdict(&v, body, sizeof(body)), 503);
	assert_string_equal(body, "redis subscription not confirmed\n");
	v.bc.sub_up = false;
	assert_int_equal(health_verdict(&v, body, sizeof(body)), 503);
	assert_string_equal(body, "redis subscriber link down\n");
	/* The broker's last error says why. */
	snprintf(v.bc.last_error, sizeof(v.bc.last_error), "AUTH: WRONGPASS");
	assert_int_equal(health_verdict(&v, body, sizeof(body)), 503);
	assert_string_equal(
	    body, "redis subscriber link down: AUTH: WRONGPASS\n");
}

static void
a_broker_error_that_is_not_utf8_still_makes_a_document(void **state)
{
	struct bridge_worker_info w[2];
	struct stats_view v;
	json_t *j, *redis;

	view_init(&v, w);
	snprintf(v.bc.last_error, sizeof(v.bc.last_error), "ERR \xff\xfe x\n");
	j = stats_json_build(&v);
	assert_non_null(j);
	redis = json_object_get(json_object_get(j, "bridge"), "redis");
	assert_string_equal(
	    json_string_value(json_object_get(redis, "last_error")),
	    "ERR ?? x?");
	json_decref(j);
}

static void
history_state_in_the_document_and_in_health(void **state)
{
	struct bridge_worker_info w[2];
	struct stats_view v;
	char body[256];
	json_t *j, *h;

	view_init(&v, w);
	/* A broker that says nothing of history: off. */
	j = stats_json_build(&v);
	h = json_object_get(json_object_get(j, "bridge"), "history");
	assert_string_equal(
	    json_string_value(json_object_get(h, "state")), "off");
	json_decref(j);

	v.bc.history = "unavailable";
	snprintf(v.bc.history_error, sizeof(v.bc.history_error),
	    "Redis 7.0 or newer is needed");
	v.bc.history_load_failures = 2;
	v.bc.range_requests = 5;
	v.bc.range_failed = 5;
	j = stats_json_build(&v);
	h = json_object_get(json_object_get(j, "bridge"), "history");
	assert_string_equal(
	    json_string_value(json_object_get(h, "state")), "unavailable");
	assert_string_equal(json_string_value(json_object_get(h, "error")),
	    "Redis 7.0 or newer is needed");
	assert_int_equal(jint(j, "bridge.history.load_failures"), 2);
	assert_int_equal(jint(j, "bridge.history.range_requests"), 5);
	assert_int_equal(jint(j, "bridge.history.range_failed"), 5);
	json_decref(j);

	/* Delivery works: 200, the body says what is missing. */
	assert_int_equal(health_verdict(&v, body, sizeof(body)), 200);
	assert_string_equal(body,
	    "ok: redis subscribed, 2 workers attached; history requested "
	    "but unavailable: Redis 7.0 or newer is needed\n");
	/* A delivery problem comes first. */
	v.bc.cmd_up = false;
	assert_int_equal(health_verdict(&v, body, sizeof(body)), 503);
	assert_string_equal(body, "redis command link down\n");
	v.bc.cmd_up = true;
	v.bc.history = "ready";
	v.bc.history_error[0] = '\0';
	assert_int_equal(health_verdict(&v, body, sizeof(body)), 200);
	assert_string_equal(body, "ok: redis subscribed, 2 workers attached\n");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(the_document_keeps_its_keys),
	    cmocka_unit_test(worker_counters_pass_through_known_or_not),
	    cmocka_unit_test(master_figures_are_the_largest_reported),
	    cmocka_unit_test(health_names_the_first_problem),
	    cmocka_unit_test(history_state_in_the_document_and_in_health),
	    cmocka_unit_test(
		a_broker_error_that_is_not_utf8_still_makes_a_document),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
