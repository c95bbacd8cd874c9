/*
 * metrics_test.c - the bridge's Prometheus text (bridge/metrics.c) from
 * hand-made stats views: every counter of proto/counters.h is exported,
 * families are well formed, unknown counters are not lost.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "metrics.h"

#define NAMES_MAX (WC_COUNT + 4)

/* One worker reporting names[i] = values[i]. */
struct fake_worker {
	const char *names[NAMES_MAX];
	uint64_t values[NAMES_MAX];
	size_t n;
};

static void
fake_add(struct fake_worker *fw, const char *name, uint64_t v)
{
	assert_true(fw->n < NAMES_MAX);
	fw->names[fw->n] = name;
	fw->values[fw->n++] = v;
}

/* A worker that reports every counter of the list, row i as 1000 + i. */
static void
fake_every_counter(struct fake_worker *fw)
{
	memset(fw, 0, sizeof(*fw));
	for (int i = 0; i < WC_COUNT; i++)
		fake_add(fw, worker_counter_info[i].name, 1000 + (uint64_t)i);
}

static void
view_init(struct stats_view *v, struct bridge_worker_info *w,
    const struct fake_worker *fw)
{
	memset(v, 0, sizeof(*v));
	v->now_ms = 100000;
	v->node = "node-t";
	v->bc.version = "9.9";
	v->bc.sub_up = v->bc.cmd_up = true;
	memset(w, 0, sizeof(*w));
	w->slot = 3;
	w->gen = 7;
	w->pid = 4242;
	w->last_seen_ms = 99500;
	w->n_counters = fw->n;
	w->names = fw->names;
	w->values = fw->values;
	v->workers = w;
	v->n_workers = 1;
}

static char *
render(const struct stats_view *v)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	assert_non_null(f);
	metrics_render(f, v);
	assert_int_equal(fclose(f), 0);
	return text;
}

/* Whether text holds line as a whole line. */
static bool
has_line(const char *text, const char *line)
{
	size_t n = strlen(line);

	for (const char *p = text; (p = strstr(p, line)) != NULL; p++)
		if ((p == text || p[-1] == '\n') && p[n] == '\n')
			return true;
	return false;
}

static void
every_counter_of_the_list_is_in_metrics(void **state)
{
	struct fake_worker fw;
	struct bridge_worker_info w;
	struct stats_view v;
	char *text, line[512], type[256];

	fake_every_counter(&fw);
	view_init(&v, &w, &fw);
	text = render(&v);
	for (int i = 0; i < WC_COUNT; i++) {
		const struct counter_info *ci = &worker_counter_info[i];

		if (counter_is_master((enum worker_counter)i))
			/* Node-wide: no worker label. */
			snprintf(
			    line, sizeof(line), "%s %d", ci->family, 1000 + i);
		else
			snprintf(line, sizeof(line),
			    "%s{worker=\"3\",gen=\"7\"%s%s} %d", ci->family,
			    ci->label != NULL ? "," : "",
			    ci->label != NULL ? ci->label : "", 1000 + i);
		if (!has_line(text, line))
			fail_msg(
			    "%s: no line \"%s\" in:\n%s", ci->name, line, text);
		snprintf(type, sizeof(type), "# TYPE %s %s", ci->family,
		    ci->kind == COUNTER_KIND_COUNTER ? "counter" : "gauge");
		if (!has_line(text, type))
			fail_msg("%s: no \"%s\"", ci->name, type);
	}
	/* Known counters do not also appear in the generic family. */
	assert_null(strstr(text, "wspush_worker_counter{"));
	free(text);
}

/* Each family: one HELP, one TYPE, then only its own samples, all
 * together (the text format's rule; Prometheus refuses the rest). */
static void
families_are_contiguous_with_one_help_and_type(void **state)
{
	struct fake_worker fw;
	struct bridge_worker_info w;
	struct stats_view v;
	char *text, *save = NULL, *line;
	char seen[128][128], cur[128] = "";
	int n_seen = 0;

	fake_every_counter(&fw);
	fake_add(&fw, "some_future_counter", 5);
	view_init(&v, &w, &fw);
	text = render(&v);
	for (line = strtok_r(text, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save)) {
		char fam[128];

		if (strncmp(line, "# HELP ", 7) == 0) {
			sscanf(line + 7, "%127s", fam);
			for (int i = 0; i < n_seen; i++)
				if (strcmp(seen[i], fam) == 0)
					fail_msg("family %s twice", fam);
			assert_true(n_seen < 128);
			snprintf(seen[n_seen++], sizeof(seen[0]), "%s", fam);
			snprintf(cur, sizeof(cur), "%s", fam);
			continue;
		}
		if (strncmp(line, "# TYPE ", 7) == 0) {
			sscanf(line + 7, "%127s", fam);
			assert_string_equal(fam, cur);
			continue;
		}
		sscanf(line, "%127[^{ ]", fam);
		if (strcmp(fam, cur) != 0)
			fail_msg("sample \"%s\" outside its family (in %s)",
			    line, cur);
	}
	free(text);
}

static void
an_unknown_counter_goes_to_the_generic_family(void **state)
{
	struct fake_worker fw = {0};
	struct bridge_worker_info w;
	struct stats_view v;
	char *text;

	fake_add(&fw, "frames_out", 12);
	fake_add(&fw, "some_future_counter", 5);
	fake_add(&fw, "bad\"name", 6); /* would break the label: skipped */
	view_init(&v, &w, &fw);
	text = render(&v);
	assert_true(
	    has_line(text, "wspush_worker_counter{worker=\"3\",gen=\"7\","
			   "name=\"some_future_counter\"} 5"));
	assert_true(has_line(
	    text, "wspush_frames_delivered_total{worker=\"3\",gen=\"7\"} 12"));
	assert_null(strstr(text, "bad\""));
	/* No master figures reported: no master families. */
	assert_null(strstr(text, "wspush_master_"));
	free(text);
}

static void
bridge_families_keep_their_names(void **state)
{
	struct fake_worker fw = {0};
	struct bridge_worker_info w;
	struct stats_view v;
	char *text;

	view_init(&v, &w, &fw);
	v.bc.sub_reconnects = 2;
	v.bc.redis_messages = 77;
	text = render(&v);
	assert_true(has_line(
	    text, "wspush_build_info{version=\"9.9\",node=\"node-t\"} 1"));
	assert_true(has_line(text, "wspush_redis_up 1"));
	assert_true(
	    has_line(text, "wspush_redis_reconnects_total{link=\"sub\"} 2"));
	assert_true(has_line(text, "wspush_messages_from_redis_total 77"));
	assert_true(has_line(text, "wspush_workers 1"));
	assert_true(has_line(text, "wspush_redis_outages_total 0"));
	assert_true(has_line(text, "wspush_redis_connect_failures_total 0"));
	assert_true(has_line(
	    text, "wspush_listener_restarts_total{listener=\"stats\"} 0"));
	assert_true(has_line(text,
	    "wspush_worker_last_seen_seconds{worker=\"3\",gen=\"7\"} 0.500"));
	assert_non_null(strstr(text, "wspush_bridge_drops_total{reason="));
	free(text);
}

static void
history_families(void **state)
{
	struct fake_worker fw = {0};
	struct bridge_worker_info w;
	struct stats_view v;
	char *text;

	view_init(&v, &w, &fw);
	text = render(&v); /* no history state: off */
	assert_true(has_line(text, "wspush_history_enabled 0"));
	assert_true(has_line(text, "wspush_history_up 0"));
	free(text);

	v.bc.history = "unavailable";
	v.bc.history_load_failures = 3;
	v.bc.range_requests = 7;
	v.bc.range_bad = 1;
	v.bc.range_failed = 2;
	v.bc.ranges_recovered = 4;
	v.bc.range_entries = 400;
	text = render(&v);
	assert_true(has_line(text, "wspush_history_enabled 1"));
	assert_true(has_line(text, "wspush_history_up 0"));
	assert_true(has_line(text, "wspush_history_load_failures_total 3"));
	assert_true(has_line(text, "wspush_history_range_requests_total 7"));
	assert_true(has_line(text,
	    "wspush_history_range_errors_total{reason=\"bad_request\"} 1"));
	assert_true(has_line(
	    text, "wspush_history_range_errors_total{reason=\"failed\"} 2"));
	assert_true(has_line(text, "wspush_history_ranges_recovered_total 4"));
	assert_true(has_line(text, "wspush_history_range_entries_total 400"));
	free(text);

	v.bc.history = "ready";
	text = render(&v);
	assert_true(has_line(text, "wspush_history_up 1"));
	free(text);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(every_counter_of_the_list_is_in_metrics),
	    cmocka_unit_test(families_are_contiguous_with_one_help_and_type),
	    cmocka_unit_test(an_unknown_counter_goes_to_the_generic_family),
	    cmocka_unit_test(bridge_families_keep_their_names),
	    cmocka_unit_test(history_families),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
