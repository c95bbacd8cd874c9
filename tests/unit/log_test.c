/*
 * log_test.c - log level names, line format on stderr, errno preservation.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "log.h"

/*
 * Runs fn with stderr redirected to a temporary file and returns what was
 * written (static buffer).
 */
static const char *
capture(void (*fn)(void))
{
	static char out[4096];
	FILE *tmp = tmpfile();
	int saved, fd;
	ssize_t n;

	assert_non_null(tmp);
	fd = fileno(tmp);
	saved = dup(STDERR_FILENO);
	assert_true(saved != -1);
	assert_true(dup2(fd, STDERR_FILENO) != -1);
	fn();
	assert_true(dup2(saved, STDERR_FILENO) != -1);
	close(saved);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	n = read(fd, out, sizeof(out) - 1);
	assert_true(n >= 0);
	out[n] = '\0';
	fclose(tmp);
	return out;
}

static void
level_names_parse_to_syslog_levels(void **state)
{
	assert_int_equal(log_level_parse("error"), LOG_ERR);
	assert_int_equal(log_level_parse("warn"), LOG_WARNING);
	assert_int_equal(log_level_parse("notice"), LOG_NOTICE);
	assert_int_equal(log_level_parse("info"), LOG_INFO);
	assert_int_equal(log_level_parse("debug"), LOG_DEBUG);
	assert_int_equal(log_level_parse("DEBUG"), LOG_DEBUG);
}

static void
unknown_level_names_are_rejected(void **state)
{
	assert_int_equal(log_level_parse("warning"), -1);
	assert_int_equal(log_level_parse(""), -1);
	assert_int_equal(log_level_parse("info "), -1);
	assert_int_equal(log_level_parse(NULL), -1);
}

static void
level_strings_round_trip_through_parse(void **state)
{
	int l;

	for (l = LOG_ERR; l <= LOG_DEBUG; l++)
		assert_int_equal(log_level_parse(log_level_str(l)), l);
	assert_string_equal(log_level_str(LOG_CRIT), "crit");
	assert_string_equal(log_level_str(99), "unknown");
}

static void
emit_plain(void)
{
	log_init("wspush-test[w3]", LOG_INFO);
	log_info("started workers=%d", 4);
	log_debug("hidden at info");
}

static void
a_line_is_tag_level_and_message(void **state)
{
	assert_string_equal(
	    capture(emit_plain), "wspush-test[w3]: info: started workers=4\n");
}

static void
emit_errno(void)
{
	log_init("t", LOG_DEBUG);
	errno = ENOENT;
	log_warn("open path=%s", "/x");
	/* The macro must not clobber errno for the caller. */
	assert_int_equal(errno, ENOENT);
	errno = EACCES;
	log_warnx("plain");
	assert_int_equal(errno, EACCES);
	log_debug("d");
	assert_int_equal(errno, EACCES);
}

static void
errno_is_appended_and_preserved(void **state)
{
	char want[256];

	snprintf(want, sizeof(want),
	    "t: warn: open path=/x: %s\nt: warn: plain\nt: debug: d\n",
	    strerror(ENOENT));
	assert_string_equal(capture(emit_errno), want);
}

static void
emit_newline(void)
{
	log_init("t", LOG_INFO);
	log_errx("a\nb\tc");
}

static void
control_characters_cannot_split_a_line(void **state)
{
	assert_string_equal(capture(emit_newline), "t: error: a b c\n");
}

static void
emit_long(void)
{
	static char big[5000];

	memset(big, 'x', sizeof(big) - 1);
	log_init("t", LOG_INFO);
	log_errx("%s", big);
	log_errx("after");
}

static void
long_messages_are_truncated_to_one_line(void **state)
{
	const char *out = capture(emit_long);
	const char *nl = strchr(out, '\n');

	assert_non_null(nl);
	assert_true(nl - out < 2048);
	assert_memory_equal(nl - 3, "...", 3);
	assert_string_equal(nl + 1, "t: error: after\n");
}

static void
emit_filtered(void)
{
	log_init("t", LOG_WARNING);
	log_info("no");
	log_notice("no");
	log_warnx("yes");
	log_set_level(LOG_DEBUG + 5); /* clamped to debug */
	log_debug("yes");
	log_set_tag(NULL);
	log_errx("default tag");
}

static void
lines_below_the_level_are_not_written(void **state)
{
	assert_string_equal(capture(emit_filtered),
	    "t: warn: yes\nt: debug: yes\nwspush: error: default tag\n");
	assert_int_equal(log_level_cur, LOG_DEBUG);
}

int
main(void)
{
	static const struct CMUnitTest tests[] = {
	    cmocka_unit_test(level_names_parse_to_syslog_levels),
	    cmocka_unit_test(unknown_level_names_are_rejected),
	    cmocka_unit_test(level_strings_round_trip_through_parse),
	    cmocka_unit_test(a_line_is_tag_level_and_message),
	    cmocka_unit_test(errno_is_appended_and_preserved),
	    cmocka_unit_test(control_characters_cannot_split_a_line),
	    cmocka_unit_test(long_messages_are_truncated_to_one_line),
	    cmocka_unit_test(lines_below_the_level_are_not_written),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
