/*
 * payload_test.c - payload classification (JSON, text, binary), JSON
 * string escaping and base64, each checked against tables and against
 * jansson / a reference decoder on pseudo-random input.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "payload.h"

#define L(lit) lit, sizeof(lit) - 1

static void
payloads_are_classified(void **state)
{
	static const struct {
		const char *p;
		size_t len;
		enum payload_class strict, any;
	} cases[] = {
	    {L("{}"), PAYLOAD_JSON, PAYLOAD_JSON},
	    {L("[]"), PAYLOAD_JSON, PAYLOAD_JSON},
	    {L(" \t\r\n{\"a\":[1,2.5e3,true,null,\"x\"]} \n"), PAYLOAD_JSON,
		PAYLOAD_JSON},
	    {L("{\"order\":1001,\"status\":\"paid\"}"), PAYLOAD_JSON,
		PAYLOAD_JSON},
	    {L("[12345678901234567890123]"), PAYLOAD_JSON, PAYLOAD_JSON},
	    {L("{\"nul\":\"a\\u0000b\"}"), PAYLOAD_JSON, PAYLOAD_JSON},
	    {L("{\"k\":\"\xc3\xa9\xe2\x82\xac\"}"), PAYLOAD_JSON, PAYLOAD_JSON},
	    {L("\"a string\""), PAYLOAD_TEXT, PAYLOAD_JSON},
	    {L("42"), PAYLOAD_TEXT, PAYLOAD_JSON},
	    {L("-1.5"), PAYLOAD_TEXT, PAYLOAD_JSON},
	    {L("true"), PAYLOAD_TEXT, PAYLOAD_JSON},
	    {L("false"), PAYLOAD_TEXT, PAYLOAD_JSON},
	    {L("null"), PAYLOAD_TEXT, PAYLOAD_JSON},
	    {L(" null "), PAYLOAD_TEXT, PAYLOAD_JSON},
	    {L(""), PAYLOAD_TEXT, PAYLOAD_TEXT},
	    {L("   "), PAYLOAD_TEXT, PAYLOAD_TEXT},
	    {L("hello world"), PAYLOAD_TEXT, PAYLOAD_TEXT},
	    {L("nulls"), PAYLOAD_TEXT, PAYLOAD_TEXT},
	    {L("{"), PAYLOAD_TEXT, PAYLOAD_TEXT},
	    {L("{\"a\":1} x"), PAYLOAD_TEXT, PAYLOAD_TEXT},
	    {L("{\"a\":1}{}"), PAYLOAD_TEXT, PAYLOAD_TEXT},
	    {L("[1,]"), PAYLOAD_TEXT, PAYLOAD_TEXT},
	    {L("{'a':1}"), PAYLOAD_TEXT, PAYLOAD_TEXT},
	    {L("[\"\x01\"]"), PAYLOAD_TEXT, PAYLOAD_TEXT}, /* raw control */
	    {L("\xc3\xa9t\xc3\xa9"), PAYLOAD_TEXT, PAYLOAD_TEXT},
	    {L("a\0b"), PAYLOAD_TEXT, PAYLOAD_TEXT},
	    {L("[1]\0"), PAYLOAD_TEXT, PAYLOAD_TEXT},
	    {L("[1\0]"), PAYLOAD_TEXT, PAYLOAD_TEXT}, /* jansson takes it */
	    {L("\xff"), PAYLOAD_BINARY, PAYLOAD_BINARY},
	    {L("[\"\xff\"]"), PAYLOAD_BINARY, PAYLOAD_BINARY},
	    {L("\xc0\x80"), PAYLOAD_BINARY, PAYLOAD_BINARY},     /* overlong */
	    {L("\xed\xa0\x80"), PAYLOAD_BINARY, PAYLOAD_BINARY}, /* surrogate */
	    {L("\xc3"), PAYLOAD_BINARY, PAYLOAD_BINARY},
	    {L("\x89PNG\r\n\x1a\n"), PAYLOAD_BINARY, PAYLOAD_BINARY},
	    /* the validator's corners */
	    {L("[1e400]"), PAYLOAD_JSON, PAYLOAD_JSON},
	    {L("1e400"), PAYLOAD_TEXT, PAYLOAD_JSON},
	    {L("[1E+5,-0.0e-0,0,-1,2.50]"), PAYLOAD_JSON, PAYLOAD_JSON},
	    {L("[01]"), PAYLOAD_TEXT, PAYLOAD_TEXT},
	    {L("[-]"), PAYLOAD_TEXT, PAYLOAD_TEXT},
	    {L("[1.]"), PAYLOAD_TEXT, PAYLOAD_TEXT},
	    {L("[.5]"), PAYLOAD_TEXT, PAYLOAD_TEXT},
	    {L("[1e]"), PAYLOAD_TEXT, PAYLOAD_TEXT},
	    {L("[+1]"), PAYLOAD_TEXT, PAYLOAD_TEXT},
	    {L("[0x10]"), PAYLOAD_TEXT, PAYLOAD_TEXT},
	    {L("-"), PAYLOAD_TEXT, PAYLOAD_TEXT},
	    {L("{ \"a\" : 1 , \"b\" : [ ] , \"c\":{}}"), PAYLOAD_JSON,
		PAYLOAD_JSON},
	    {L("{\"a\"}"), PAYLOAD_TEXT, PAYLOAD_TEXT},
	    {L("{\"a\":}"), PAYLOAD_TEXT, PAYLOAD_TEXT},
	    {L("{,}"), PAYLOAD_TEXT, PAYLOAD_TEXT},
	    {L("{1:2}"), PAYLOAD_TEXT, PAYLOAD_TEXT},
	    {L("{\"a\":1,}"), PAYLOAD_TEXT, PAYLOAD_TEXT},
	    {L("[1 2]"), PAYLOAD_TEXT, PAYLOAD_TEXT},
	    {L("[1,,2]"), PAYLOAD_TEXT, PAYLOAD_TEXT},
	    {L("[}"), PAYLOAD_TEXT, PAYLOAD_TEXT},
	    {L("{]"), PAYLOAD_TEXT, PAYLOAD_TEXT},
	    {L("[[]"), PAYLOAD_TEXT, PAYLOAD_TEXT},
	    {L("[]]"), PAYLOAD_TEXT, PAYLOAD_TEXT},
	    {L("{\"\\u0000\":1}"), PAYLOAD_JSON, PAYLOAD_JSON},
	    {L("[\"\\ud83d\\ude00\"]"), PAYLOAD_JSON, PAYLOAD_JSON},
	    {L("[\"\\uD83D\\uDE00\"]"), PAYLOAD_JSON, PAYLOAD_JSON},
	    {L("[\"\\ud800\"]"), PAYLOAD_TEXT, PAYLOAD_TEXT},
	    {L("[\"\\ud800\\u0041\"]"), PAYLOAD_TEXT, PAYLOAD_TEXT},
	    {L("[\"\\udc00\"]"), PAYLOAD_TEXT, PAYLOAD_TEXT},
	    {L("[\"\\u12\"]"), PAYLOAD_TEXT, PAYLOAD_TEXT},
	    {L("[\"\\u12g4\"]"), PAYLOAD_TEXT, PAYLOAD_TEXT},
	    {L("[\"\\x\"]"), PAYLOAD_TEXT, PAYLOAD_TEXT},
	    {L("[\"\\/\\b\\f\\n\\r\\t\\\"\\\\\"]"), PAYLOAD_JSON, PAYLOAD_JSON},
	    {L("[\"a\\\"]"), PAYLOAD_TEXT, PAYLOAD_TEXT},
	    {L("[\"abc]"), PAYLOAD_TEXT, PAYLOAD_TEXT},
	    {L("[\"\t\"]"), PAYLOAD_TEXT, PAYLOAD_TEXT}, /* raw tab */
	    {L("[tru]"), PAYLOAD_TEXT, PAYLOAD_TEXT},
	    {L("[True]"), PAYLOAD_TEXT, PAYLOAD_TEXT},
	    {L("[nul"), PAYLOAD_TEXT, PAYLOAD_TEXT},
	    {L("\"abc"), PAYLOAD_TEXT, PAYLOAD_TEXT},
	    {L("\xef\xbb\xbf{}"), PAYLOAD_TEXT, PAYLOAD_TEXT}, /* BOM */
	    {L("\f{}"), PAYLOAD_TEXT, PAYLOAD_TEXT}, /* not JSON space */
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		enum payload_class s, a;

		s = payload_classify(cases[i].p, cases[i].len, false);
		a = payload_classify(cases[i].p, cases[i].len, true);
		if (s != cases[i].strict || a != cases[i].any)
			print_error("case %zu: %s %s\n", i,
			    payload_class_str(s), payload_class_str(a));
		assert_int_equal(s, cases[i].strict);
		assert_int_equal(a, cases[i].any);
	}
	assert_int_equal(payload_classify(NULL, 0, true), PAYLOAD_TEXT);
}

static void
deep_json_is_still_classified(void **state)
{
	enum { N = 100000 };
	char *p = malloc(2 * N);

	assert_non_null(p);
	memset(p, '[', N);
	memset(p + N, ']', N);
	/* Too deep: text, never a crash. */
	assert_int_equal(payload_classify(p, 2 * N, false), PAYLOAD_TEXT);
	/* 2048 open containers are the limit (an empty one never opens). */
	assert_int_equal(
	    payload_classify(p + N - 2049, 2 * 2049, false), PAYLOAD_JSON);
	assert_int_equal(
	    payload_classify(p + N - 2050, 2 * 2050, false), PAYLOAD_TEXT);
	free(p);
}

static size_t
escape(char *out, const char *in, size_t len)
{
	size_t n = json_escape_str(out, in, len);

	assert_true(n <= json_escaped_max(len));
	return n;
}

static void
strings_are_escaped_per_rfc8259(void **state)
{
	static const struct {
		const char *in;
		size_t inlen;
		const char *out;
	} cases[] = {
	    {L(""), "\"\""},
	    {L("abc"), "\"abc\""},
	    {L("a\"b\\c/"), "\"a\\\"b\\\\c/\""},
	    {L("\b\f\n\r\t"), "\"\\b\\f\\n\\r\\t\""},
	    {L("\x01\x1f\x7f"), "\"\\u0001\\u001f\x7f\""},
	    {L("\0"), "\"\\u0000\""},
	    {L("\xc3\xa9\xe2\x82\xac"), "\"\xc3\xa9\xe2\x82\xac\""},
	    {L("x\xe2\x80\xa8y\xe2\x80\xa9z"), "\"x\\u2028y\\u2029z\""},
	    {L("\xe2\x80\xa7"), "\"\xe2\x80\xa7\""},
	    {L("\xe2\x80"), "\"\xe2\x80\""},
	};
	char out[128];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t n = escape(out, cases[i].in, cases[i].inlen);

		assert_int_equal(n, strlen(cases[i].out));
		assert_memory_equal(out, cases[i].out, n);
	}
	assert_int_equal(json_escaped_max(0), 2);
	assert_int_equal(json_escaped_max(10), 62);
	assert_true(json_escaped_max(SIZE_MAX) == SIZE_MAX);
	/* Worst case: every byte becomes \u00XX. */
	{
		char ctl[40], big[2 + 6 * 40];

		memset(ctl, 1, sizeof(ctl));
		assert_int_equal(escape(big, ctl, sizeof(ctl)),
		    json_escaped_max(sizeof(ctl)));
	}
}

static uint32_t rng = 2463534242u;

static uint32_t
next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 17;
	rng ^= rng << 5;
	return rng;
}

/* Random valid UTF-8 with many specials; returns its length. */
static size_t
random_utf8(char *p, size_t max)
{
	static const char *const pieces[] = {"a", "\"", "\\", "\n", "\x01",
	    "\x1f", "\0", "/", "\xc3\xa9", "\xe2\x80\xa8", "\xe2\x80\xa9",
	    "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\x7f", "\xe2\x80\x8f"};
	static const size_t lens[] = {
	    1, 1, 1, 1, 1, 1, 1, 1, 2, 3, 3, 3, 4, 1, 3};
	size_t n = 0;

	while (n + 4 < max && next_rand() % 40 != 0) {
		size_t k = next_rand() % (sizeof(lens) / sizeof(lens[0]));

		memcpy(p + n, pieces[k], lens[k]);
		n += lens[k];
	}
	return n;
}

static void
escaped_strings_parse_back_to_the_input(void **state)
{
	char in[512], out[2 + 6 * 512];

	for (int iter = 0; iter < 5000; iter++) {
		size_t len = random_utf8(in, sizeof(in));
		size_t n = escape(out, in, len);
		json_error_t err;
		json_t *j =
		    json_loadb(out, n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);

		assert_non_null(j);
		assert_true(json_is_string(j));
		assert_int_equal(json_string_length(j), len);
		assert_memory_equal(json_string_value(j), in, len);
		json_decref(j);
		/* and it is still valid UTF-8 and safe in JavaScript */
		assert_int_equal(payload_classify(out, n, true), PAYLOAD_JSON);
		assert_null(memmem(out, n, "\xe2\x80\xa8", 3));
		assert_null(memmem(out, n, "\xe2\x80\xa9", 3));
	}
}

static void
base64_matches_rfc4648_vectors(void **state)
{
	static const char *const vec[][2] = {{"", ""}, {"f", "Zg=="},
	    {"fo", "Zm8="}, {"foo", "Zm9v"}, {"foob", "Zm9vYg=="},
	    {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"}};
	char out[64];

	for (size_t i = 0; i < sizeof(vec) / sizeof(vec[0]); i++) {
		size_t len = strlen(vec[i][0]);
		size_t n = base64_encode(out, vec[i][0], len);

		assert_int_equal(n, base64_len(len));
		assert_int_equal(n, strlen(vec[i][1]));
		assert_memory_equal(out, vec[i][1], n);
	}
	assert_int_equal(base64_encode(out, "\xff\xfe\xfd\x00", 4), 8);
	assert_memory_equal(out, "//79AA==", 8);
	assert_int_equal(base64_encode(out, NULL, 0), 0);
}

static int
b64_value(char c)
{
	const char *d = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
			"0123456789+/";
	const char *p = strchr(d, c);

	return c != '\0' && p != NULL ? (int)(p - d) : -1;
}

static void
base64_decodes_back_to_the_input(void **state)
{
	unsigned char in[300], back[300];
	char out[400];

	for (int iter = 0; iter < 3000; iter++) {
		size_t len = next_rand() % sizeof(in), n, m = 0;

		for (size_t i = 0; i < len; i++)
			in[i] = (unsigned char)next_rand();
		n = base64_encode(out, in, len);
		assert_int_equal(n, base64_len(len));
		assert_int_equal(n % 4, 0);
		for (size_t i = 0; i < n; i += 4) {
			int v[4];

			for (int k = 0; k < 4; k++) {
				v[k] = out[i + k] == '='
					   ? 0
					   : b64_value(out[i + k]);
				assert_true(v[k] >= 0);
			}
			uint32_t w = (uint32_t)v[0] << 18 |
				     (uint32_t)v[1] << 12 |
				     (uint32_t)v[2] << 6 | (uint32_t)v[3];

			back[m++] = (unsigned char)(w >> 16);
			if (out[i + 2] != '=')
				back[m++] = (unsigned char)(w >> 8);
			if (out[i + 3] != '=')
				back[m++] = (unsigned char)w;
		}
		assert_int_equal(m, len);
		assert_memory_equal(back, in, len);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(payloads_are_classified),
	    cmocka_unit_test(deep_json_is_still_classified),
	    cmocka_unit_test(strings_are_escaped_per_rfc8259),
	    cmocka_unit_test(escaped_strings_parse_back_to_the_input),
	    cmocka_unit_test(base64_matches_rfc4648_vectors),
	    cmocka_unit_test(base64_decodes_back_to_the_input),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
