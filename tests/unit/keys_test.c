/*
 * keys_test.c - Redis key and channel names, and the counter list.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "counters.h"
#include "keys.h"
#include "log.h"

static void
every_name_starts_with_the_prefix(void **state)
{
	char b[KEYS_MAX];

	assert_int_equal(keys_channel(b, sizeof(b), "wspush", "user:42", 7),
	    strlen("wspush:user:42"));
	assert_string_equal(b, "wspush:user:42");
	/* The address is taken by length, not up to a NUL. */
	keys_channel(b, sizeof(b), "p", "channel:newsXXX", 12);
	assert_string_equal(b, "p:channel:news");
	keys_hb_channel(b, sizeof(b), "wspush", "node-a");
	assert_string_equal(b, "wspush:_hb:node-a");
	keys_hb_prefix(b, sizeof(b), "wspush");
	assert_string_equal(b, "wspush:_hb:");
	keys_inbound(b, sizeof(b), "wspush");
	assert_string_equal(b, "wspush:inbound");
	keys_events(b, sizeof(b), "wspush");
	assert_string_equal(b, "wspush:events");
	keys_node(b, sizeof(b), "wspush", "node-a");
	assert_string_equal(b, "wspush:node:node-a");
	keys_presence(b, sizeof(b), "wspush", "node-a");
	assert_string_equal(b, "wspush:presence:node-a");
}

static void
patterns_escape_the_glob_characters_of_the_prefix(void **state)
{
	char b[KEYS_MAX];

	assert_int_equal(keys_all_pattern(b, sizeof(b), "ws"), 4);
	assert_string_equal(b, "ws:*");
	keys_node_pattern(b, sizeof(b), "a?b[c]\\d");
	assert_string_equal(b, "a\\?b\\[c\\]\\\\d:node:*");
	keys_presence_pattern(b, sizeof(b), "x");
	assert_string_equal(b, "x:presence:*");
}

static void
names_that_do_not_fit_are_refused(void **state)
{
	char b[12];

	assert_int_equal(
	    keys_channel(b, sizeof(b), "wspush", "user:42", 7), -1);
	assert_int_equal(keys_node(b, sizeof(b), "wspush", "node-a"), -1);
	assert_int_equal(keys_inbound(b, sizeof(b), "wspush"), -1);
	assert_int_equal(keys_all_pattern(b, 4, "wspush"), -1);
	assert_int_equal(keys_all_pattern(b, 5, "ws"), 4);
}

static void
every_counter_has_a_family_and_its_family_a_help_text(void **state)
{
	for (size_t i = 0; i < WC_COUNT; i++) {
		const struct counter_info *ci = &worker_counter_info[i];
		bool helped = false;

		assert_non_null(ci->name);
		assert_non_null(ci->family);
		assert_ptr_equal(counter_info_find(ci->name), ci);
		/* The first row of each family carries the HELP text. */
		for (size_t j = 0; j <= i; j++) {
			if (strcmp(worker_counter_info[j].family, ci->family) ==
			    0) {
				helped = worker_counter_info[j].help != NULL;
				break;
			}
		}
		assert_true(helped);
	}
	assert_null(counter_info_find("no_such_counter"));
	assert_true(counter_is_master(WC_master_reloads));
	assert_false(counter_is_master(WC_msgs_in));
}

static void
the_log_limit_passes_one_line_per_interval_and_counts_the_rest(void **state)
{
	struct log_limit ll = {0};
	uint64_t held = 99;

	assert_true(log_limit_pass(&ll, 1000, 500, &held));
	assert_int_equal(held, 0);
	assert_false(log_limit_pass(&ll, 1100, 500, &held));
	assert_false(log_limit_pass(&ll, 1499, 500, &held));
	assert_true(log_limit_pass(&ll, 1500, 500, &held));
	assert_int_equal(held, 2);
	assert_true(log_limit_pass(&ll, 5000, 500, &held));
	assert_int_equal(held, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(every_name_starts_with_the_prefix),
	    cmocka_unit_test(patterns_escape_the_glob_characters_of_the_prefix),
	    cmocka_unit_test(names_that_do_not_fit_are_refused),
	    cmocka_unit_test(
		every_counter_has_a_family_and_its_family_a_help_text),
	    cmocka_unit_test(
		the_log_limit_passes_one_line_per_interval_and_counts_the_rest),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
