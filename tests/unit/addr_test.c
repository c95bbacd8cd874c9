/*
 * addr_test.c - address parsing, id validity (UTF-8 edge cases, length
 * limits, whitespace and control characters) and formatting.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "addr.h"

#define S(lit) lit, sizeof(lit) - 1

/* s (of len bytes) parses as kind with the id `id` (NULL: none). */
static void
expect_addr(const char *s, size_t len, enum addr_kind kind, const char *id)
{
	struct addr a;

	assert_int_equal(addr_parse(s, len, &a), 0);
	assert_int_equal(a.kind, kind);
	if (id == NULL) {
		assert_null(a.id);
		assert_int_equal(a.idlen, 0);
		return;
	}
	assert_int_equal(a.idlen, strlen(id));
	assert_memory_equal(a.id, id, strlen(id));
}

static void
user_channel_and_all_parse(void **state)
{
	expect_addr(S("user:42"), ADDR_USER, "42");
	expect_addr(S("channel:news"), ADDR_CHANNEL, "news");
	expect_addr(S("all"), ADDR_ALL, NULL);
}

static void
the_address_splits_at_the_first_colon(void **state)
{
	expect_addr(S("channel:chat:room:7"), ADDR_CHANNEL, "chat:room:7");
	expect_addr(S("user::"), ADDR_USER, ":");
}

static void
ids_from_real_identity_providers_are_valid(void **state)
{
	assert_true(addr_id_valid(S("auth0|123")));
	assert_true(addr_id_valid(S("a+b@example.com")));
	assert_true(addr_id_valid(S("chat:room:7")));
	assert_true(addr_id_valid(S("Jos\xc3\xa9")));              /* é */
	assert_true(addr_id_valid(S("\xe6\x97\xa5\xe6\x9c\xac"))); /* 日本 */
	assert_true(addr_id_valid(S("\xf0\x9f\x98\x80")));         /* emoji */
	assert_true(addr_id_valid(S("\xf4\x8f\xbf\xbf"))); /* U+10FFFF */
	assert_true(addr_id_valid(S("\xc2\xa1")));         /* U+00A1 */
}

static void
malformed_addresses_are_rejected(void **state)
{
	static const char *const bad[] = {"", "user",
	    "user:", "channel:", "all:", "all:x", "All", "ALL", "users:1",
	    "User:1", ":1", "user 1", "broadcast:x", " all", "all ", "user:a*b",
	    "channel:*"};
	struct addr a = {ADDR_USER, "keep", 4};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (addr_parse(bad[i], strlen(bad[i]), &a) != -1)
			fail_msg("accepted \"%s\"", bad[i]);
	}
	/* Out-parameters are written only on success. */
	assert_int_equal(a.kind, ADDR_USER);
	assert_memory_equal(a.id, "keep", 4);
	/* The length bounds parsing: "all" inside a longer buffer. */
	assert_int_equal(addr_parse("allx", 3, &a), 0);
	assert_int_equal(addr_parse("user:1", 5, &a), -1);
}

static void
ids_of_256_bytes_are_valid_and_257_are_not(void **state)
{
	char id[ADDR_ID_MAX + 2], a[ADDR_MAX + 2];
	struct addr ad;

	memset(id, 'x', sizeof(id));
	assert_true(addr_id_valid(id, 1));
	assert_true(addr_id_valid(id, 256));
	assert_false(addr_id_valid(id, 257));
	assert_false(addr_id_valid(id, 0));
	assert_false(addr_id_valid(NULL, 0));
	memcpy(a, "channel:", 8);
	memset(a + 8, 'y', 257);
	assert_int_equal(addr_parse(a, 8 + 256, &ad), 0);
	assert_int_equal(addr_parse(a, 8 + 257, &ad), -1);
	/* A multi-byte character straddling the limit. */
	memset(id, 'x', 254);
	memcpy(id + 254, "\xc3\xa9", 2);
	assert_true(addr_id_valid(id, 256));
	memcpy(id + 255, "\xc3\xa9", 2);
	assert_false(addr_id_valid(id, 257));
}

static void
control_characters_whitespace_and_star_are_rejected(void **state)
{
	static const char *const bad[] = {
	    "a b", "a\tb", "a\nb", "a\rb", "\x01", "a\x1f", "a\x7f", "a*",
	    "\xc2\x80",     /* U+0080 (C1) */
	    "\xc2\x85",     /* U+0085 NEL */
	    "\xc2\x9f",     /* U+009F */
	    "a\xc2\xa0z",   /* U+00A0 NBSP */
	    "\xe1\x9a\x80", /* U+1680 */
	    "\xe2\x80\x80", /* U+2000 */
	    "\xe2\x80\x8a", /* U+200A */
	    "\xe2\x80\xa8", /* U+2028 */
	    "\xe2\x80\xa9", /* U+2029 */
	    "\xe2\x80\xaf", /* U+202F */
	    "\xe2\x81\x9f", /* U+205F */
	    "\xe3\x80\x80", /* U+3000 */
	};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (addr_id_valid(bad[i], strlen(bad[i])))
			fail_msg("accepted id %zu", i);
	}
	assert_false(addr_id_valid("a\0b", 3));
	/* Neighbours of the forbidden ranges are fine. */
	assert_true(addr_id_valid(S("\xe2\x80\x8b"))); /* U+200B */
	assert_true(addr_id_valid(S("\xc2\xa1")));
	assert_true(addr_id_valid(S("!~")));
}

static void
utf8_accepts_well_formed_text(void **state)
{
	assert_true(utf8_valid("", 0));
	assert_true(utf8_valid(S("plain ascii\n")));
	assert_true(utf8_valid(S("\xc2\x80")));
	assert_true(utf8_valid(S("\xdf\xbf")));
	assert_true(utf8_valid(S("\xe0\xa0\x80"))); /* U+0800 */
	assert_true(utf8_valid(S("\xed\x9f\xbf"))); /* U+D7FF */
	assert_true(utf8_valid(S("\xee\x80\x80"))); /* U+E000 */
	assert_true(utf8_valid(S("\xef\xbf\xbf"))); /* U+FFFF */
	assert_true(utf8_valid(S("\xf0\x90\x80\x80")));
	assert_true(utf8_valid(S("\xf4\x8f\xbf\xbf")));
	assert_true(utf8_valid("a\0b", 3)); /* NUL is valid UTF-8 */
}

static void
utf8_rejects_overlongs_surrogates_and_out_of_range(void **state)
{
	static const char *const bad[] = {
	    "\x80", /* lone continuation */
	    "\xbf",
	    "\xc0\x80",         /* overlong NUL */
	    "\xc1\xbf",         /* overlong */
	    "\xe0\x80\x80",     /* overlong */
	    "\xe0\x9f\xbf",     /* overlong U+07FF */
	    "\xf0\x80\x80\x80", /* overlong */
	    "\xf0\x8f\xbf\xbf", /* overlong U+FFFF */
	    "\xed\xa0\x80",     /* U+D800 */
	    "\xed\xbf\xbf",     /* U+DFFF */
	    "\xf4\x90\x80\x80", /* U+110000 */
	    "\xf5\x80\x80\x80",
	    "\xf8\x88\x80\x80\x80", /* 5 bytes */
	    "\xfe",
	    "\xff",
	    "\xc2", /* truncated */
	    "\xe2\x82",
	    "\xf0\x9f\x98",
	    "\xc2\x41", /* bad continuation */
	    "\xe2\x28\xa1",
	    "a\xc3",
	};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (utf8_valid(bad[i], strlen(bad[i])))
			fail_msg("accepted sequence %zu", i);
		if (addr_id_valid(bad[i], strlen(bad[i])))
			fail_msg("accepted id %zu", i);
	}
	/* Truncation by length, not by NUL. */
	assert_false(utf8_valid("\xe6\x97\xa5", 2));
}

static void
format_writes_the_text_form(void **state)
{
	struct addr a;
	char buf[ADDR_MAX + 1];

	assert_int_equal(addr_parse(S("user:42"), &a), 0);
	assert_int_equal(addr_format(&a, buf, sizeof(buf)), 7);
	assert_string_equal(buf, "user:42");
	assert_int_equal(addr_parse(S("channel:a:b"), &a), 0);
	assert_int_equal(addr_format(&a, buf, sizeof(buf)), 11);
	assert_string_equal(buf, "channel:a:b");
	assert_int_equal(addr_parse(S("all"), &a), 0);
	assert_int_equal(addr_format(&a, buf, sizeof(buf)), 3);
	assert_string_equal(buf, "all");
	assert_string_equal(addr_kind_str(ADDR_USER), "user");
	assert_string_equal(addr_kind_str(ADDR_CHANNEL), "channel");
	assert_string_equal(addr_kind_str(ADDR_ALL), "all");
}

static void
format_fails_when_the_buffer_is_too_small(void **state)
{
	struct addr a;
	char buf[8];

	assert_int_equal(addr_parse(S("user:42"), &a), 0);
	assert_int_equal(addr_format(&a, buf, 7), -1);
	assert_string_equal(buf, "");
	assert_int_equal(addr_format(&a, buf, 8), 7);
	assert_int_equal(addr_format(&a, buf, 0), -1);
}

static void
the_longest_address_fits_addr_max(void **state)
{
	char text[ADDR_MAX], buf[ADDR_MAX + 1];
	struct addr a;

	memcpy(text, "channel:", 8);
	memset(text + 8, 'z', ADDR_ID_MAX);
	assert_int_equal(addr_parse(text, ADDR_MAX, &a), 0);
	assert_int_equal(addr_format(&a, buf, sizeof(buf)), ADDR_MAX);
	assert_memory_equal(buf, text, ADDR_MAX);
}

int
main(void)
{
	static const struct CMUnitTest tests[] = {
	    cmocka_unit_test(user_channel_and_all_parse),
	    cmocka_unit_test(the_address_splits_at_the_first_colon),
	    cmocka_unit_test(ids_from_real_identity_providers_are_valid),
	    cmocka_unit_test(malformed_addresses_are_rejected),
	    cmocka_unit_test(ids_of_256_bytes_are_valid_and_257_are_not),
	    cmocka_unit_test(
		control_characters_whitespace_and_star_are_rejected),
	    cmocka_unit_test(utf8_accepts_well_formed_text),
	    cmocka_unit_test(
		utf8_rejects_overlongs_surrogates_and_out_of_range),
	    cmocka_unit_test(format_writes_the_text_form),
	    cmocka_unit_test(format_fails_when_the_buffer_is_too_small),
	    cmocka_unit_test(the_longest_address_fits_addr_max),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
