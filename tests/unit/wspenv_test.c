/*
 * wspenv_test.c - the Redis envelope "\xC1WSP" + msgpack map: round trips,
 * optional keys, unknown and duplicate keys, wrong types, trailing bytes
 * and truncation at every offset.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "wspenv.h"

static msgpack_zone zone;

static int
setup(void **state)
{
	return msgpack_zone_init(&zone, 1024) ? 0 : -1;
}

static int
teardown(void **state)
{
	msgpack_zone_destroy(&zone);
	return 0;
}

static void
assert_str(struct env_str got, const char *p, size_t len)
{
	if (p == NULL) {
		assert_null(got.p);
		assert_int_equal(got.len, 0);
		return;
	}
	assert_non_null(got.p);
	assert_int_equal(got.len, len);
	assert_memory_equal(got.p, p, len);
}

static void
a_full_envelope_round_trips(void **state)
{
	struct wspenv in = {{"\0{\"a\":1}\xff", 9}, {"alice", 5}, {"m-7", 3},
	    1700000000123ull, true};
	struct wspenv out;
	msgpack_sbuffer sb;

	msgpack_sbuffer_init(&sb);
	assert_int_equal(wspenv_encode(&sb, &in), 0);
	assert_true(wspenv_is(sb.data, sb.size));
	assert_memory_equal(sb.data, WSPENV_MAGIC, WSPENV_MAGIC_LEN);
	assert_int_equal(wspenv_decode(sb.data, sb.size, &zone, &out), 0);
	assert_str(out.data, in.data.p, in.data.len);
	assert_str(out.from, "alice", 5);
	assert_str(out.id, "m-7", 3);
	assert_true(out.ts == in.ts);
	assert_true(out.json);
	msgpack_sbuffer_destroy(&sb);
}

static void
a_minimal_envelope_round_trips(void **state)
{
	struct wspenv in = {{NULL, 0}, {NULL, 0}, {NULL, 0}, 0, false};
	struct wspenv out;
	msgpack_sbuffer sb;

	msgpack_sbuffer_init(&sb);
	assert_int_equal(wspenv_encode(&sb, &in), 0);
	assert_int_equal(wspenv_decode(sb.data, sb.size, &zone, &out), 0);
	assert_non_null(out.data.p); /* present, empty */
	assert_int_equal(out.data.len, 0);
	assert_str(out.from, NULL, 0);
	assert_str(out.id, NULL, 0);
	assert_true(out.ts == 0);
	assert_false(out.json);
	/* {"v": 1, "data": ""}: 2 keys only */
	assert_int_equal(sb.size, 4 + 1 + 2 + 1 + 5 + 2);
	msgpack_sbuffer_destroy(&sb);
}

static void
encoding_appends_and_failure_leaves_the_buffer_as_it_was(void **state)
{
	static char big[ENV_ID_MAX + 1];
	struct wspenv e = {{"x", 1}, {big, ENV_ID_MAX + 1}, {NULL, 0}, 0, 0};
	msgpack_sbuffer sb;

	msgpack_sbuffer_init(&sb);
	msgpack_sbuffer_write(&sb, "abc", 3);
	assert_int_equal(wspenv_encode(&sb, &e), -1);
	assert_int_equal(sb.size, 3);
	e.from.len = ENV_ID_MAX;
	assert_int_equal(wspenv_encode(&sb, &e), 0);
	assert_true(wspenv_is(sb.data + 3, sb.size - 3));
	e.from = (struct env_str){NULL, 1};
	assert_int_equal(
	    wspenv_encode(&sb, &(struct wspenv){{NULL, 2}, {0}, {0}, 0, 0}),
	    -1);
	msgpack_sbuffer_destroy(&sb);
}

static void
the_magic_is_required(void **state)
{
	struct wspenv out;

	assert_false(wspenv_is("\xC1WS", 3));
	assert_false(wspenv_is("{\"a\":1}", 7));
	assert_false(wspenv_is(NULL, 0));
	assert_true(wspenv_is("\xC1WSPxyz", 7));
	assert_int_equal(wspenv_decode("\xC1WS", 3, &zone, &out), -1);
	assert_int_equal(wspenv_decode("\xC1WSP", 4, &zone, &out), -1);
	assert_int_equal(wspenv_decode("XWSP\x80", 5, &zone, &out), -1);
}

/* Builds magic + a map from (key, value-kind) pairs. Values: 1 = uint 1,
 * 2 = uint 2, u = uint 1700000000000, i = -5, s = str, b = bin, n = nil,
 * t = true, f = float, a = array, m = map, x = int key 7 instead. */
static void
build(msgpack_sbuffer *sb, const char *const *keys, const char *vals)
{
	msgpack_packer pk;
	size_t n = strlen(vals);

	msgpack_sbuffer_clear(sb);
	msgpack_sbuffer_write(sb, WSPENV_MAGIC, WSPENV_MAGIC_LEN);
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, n);
	for (size_t i = 0; i < n; i++) {
		if (vals[i] == 'x')
			msgpack_pack_uint64(&pk, 7);
		else
			msgpack_pack_str_with_body(
			    &pk, keys[i], strlen(keys[i]));
		switch (vals[i]) {
		case '1':
			msgpack_pack_uint64(&pk, 1);
			break;
		case '2':
			msgpack_pack_uint64(&pk, 2);
			break;
		case 'u':
			msgpack_pack_uint64(&pk, 1700000000000ull);
			break;
		case 'i':
			msgpack_pack_int64(&pk, -5);
			break;
		case 's':
		case 'x':
			msgpack_pack_str_with_body(&pk, "hey", 3);
			break;
		case 'b':
			msgpack_pack_bin_with_body(&pk, "hey", 3);
			break;
		case 'n':
			msgpack_pack_nil(&pk);
			break;
		case 't':
			msgpack_pack_true(&pk);
			break;
		case 'f':
			msgpack_pack_double(&pk, 1.0);
			break;
		case 'a':
			msgpack_pack_array(&pk, 0);
			break;
		case 'm':
			msgpack_pack_map(&pk, 0);
			break;
		default:
			fail();
		}
	}
}

static void
maps_decode_as_the_rules_say(void **state)
{
	static const struct {
		const char *keys[8];
		const char *vals;
		int want;
	} cases[] = {
	    {{"v", "data"}, "1b", 0},
	    {{"data", "v"}, "b1", 0},
	    {{"v", "data"}, "1s", 0}, /* str data accepted */
	    {{"v"}, "1", -1},         /* no data */
	    {{"data"}, "b", -1},      /* no version */
	    {{"v", "data"}, "2b", -1},
	    {{"v", "data"}, "ub", -1},
	    {{"v", "data"}, "sb", -1},
	    {{"v", "data"}, "ib", -1},
	    {{"v", "data"}, "nb", -1},
	    {{"v", "data"}, "1n", -1},
	    {{"v", "data"}, "1u", -1},
	    {{"v", "data"}, "1a", -1},
	    {{"v", "data", "from", "id", "ts", "json"}, "1bssut", 0},
	    {{"v", "data", "from", "id", "ts", "json"}, "1bnnnn", 0},
	    {{"v", "data", "from"}, "1bb", -1},
	    {{"v", "data", "from"}, "1b1", -1},
	    {{"v", "data", "id"}, "1bt", -1},
	    {{"v", "data", "ts"}, "1bi", -1},
	    {{"v", "data", "ts"}, "1bs", -1},
	    {{"v", "data", "ts"}, "1bf", -1},
	    {{"v", "data", "json"}, "1b1", -1},
	    {{"v", "data", "json"}, "1bs", -1},
	    /* unknown keys and non-string keys are ignored */
	    {{"v", "data", "extra", "V", "more"}, "1bmai", 0},
	    {{"v", "data", "?"}, "1bx", 0},
	    /* known keys twice */
	    {{"v", "data", "v"}, "1b1", -1},
	    {{"v", "data", "data"}, "1bb", -1},
	    {{"v", "data", "from", "from"}, "1bss", -1},
	    {{"v", "data", "ts", "ts"}, "1buu", -1},
	    {{"v", "data", "json", "json"}, "1btt", -1},
	    {{"v", "data", "id", "id"}, "1bsn", -1},
	};
	msgpack_sbuffer sb;

	msgpack_sbuffer_init(&sb);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct wspenv out;
		int rc;

		build(&sb, cases[i].keys, cases[i].vals);
		rc = wspenv_decode(sb.data, sb.size, &zone, &out);
		if (rc != cases[i].want)
			print_error("case %zu (%s)\n", i, cases[i].vals);
		assert_int_equal(rc, cases[i].want);
		if (rc == 0)
			assert_int_equal(out.data.len, 3);
	}
	msgpack_sbuffer_destroy(&sb);
}

static void
non_maps_and_trailing_bytes_are_malformed(void **state)
{
	struct wspenv in = {{"x", 1}, {NULL, 0}, {NULL, 0}, 0, false};
	struct wspenv out;
	msgpack_sbuffer sb;

	assert_int_equal(wspenv_decode("\xC1WSP\x90", 5, &zone, &out), -1);
	assert_int_equal(wspenv_decode("\xC1WSP\x01", 5, &zone, &out), -1);
	assert_int_equal(wspenv_decode("\xC1WSP\xc1", 5, &zone, &out), -1);
	assert_int_equal(wspenv_decode("\xC1WSP\x80", 5, &zone, &out), -1);
	msgpack_sbuffer_init(&sb);
	assert_int_equal(wspenv_encode(&sb, &in), 0);
	msgpack_sbuffer_write(&sb, "\xc0", 1);
	assert_int_equal(wspenv_decode(sb.data, sb.size, &zone, &out), -1);
	assert_int_equal(wspenv_decode(sb.data, sb.size - 1, &zone, &out), 0);
	msgpack_sbuffer_destroy(&sb);
}

static void
truncation_at_every_offset_is_malformed(void **state)
{
	struct wspenv in = {
	    {"payload", 7}, {"alice", 5}, {"m-7", 3}, 1700000000123ull, true};
	msgpack_sbuffer sb;

	msgpack_sbuffer_init(&sb);
	assert_int_equal(wspenv_encode(&sb, &in), 0);
	for (size_t cut = 0; cut < sb.size; cut++) {
		struct wspenv out;
		char *copy = malloc(cut ? cut : 1);

		assert_non_null(copy);
		memcpy(copy, sb.data, cut);
		assert_int_equal(wspenv_decode(copy, cut, &zone, &out), -1);
		free(copy);
	}
	msgpack_sbuffer_destroy(&sb);
}

/* Decodes magic + {v: 1, data: bin "", key: str val}; returns the result. */
static int
decode_with_str(
    msgpack_sbuffer *sb, const char *key, const char *val, size_t len)
{
	msgpack_packer pk;
	struct wspenv out;

	msgpack_sbuffer_clear(sb);
	msgpack_sbuffer_write(sb, WSPENV_MAGIC, WSPENV_MAGIC_LEN);
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 3);
	msgpack_pack_str_with_body(&pk, "v", 1);
	msgpack_pack_uint64(&pk, 1);
	msgpack_pack_str_with_body(&pk, "data", 4);
	msgpack_pack_bin_with_body(&pk, "", 0);
	msgpack_pack_str_with_body(&pk, key, strlen(key));
	msgpack_pack_str_with_body(&pk, val, len);
	return wspenv_decode(sb->data, sb->size, &zone, &out);
}

static void
from_and_id_must_be_utf8(void **state)
{
	struct wspenv e = {{"x", 1}, {"\xff", 1}, {NULL, 0}, 0, false};
	struct wspenv out;
	msgpack_sbuffer sb;

	msgpack_sbuffer_init(&sb);
	assert_int_equal(wspenv_encode(&sb, &e), -1);
	e.from = (struct env_str){NULL, 0};
	e.id = (struct env_str){"\xc3\xa9", 2};
	assert_int_equal(wspenv_encode(&sb, &e), 0);
	assert_int_equal(wspenv_decode(sb.data, sb.size, &zone, &out), 0);
	assert_int_equal(out.id.len, 2);
	for (int id = 0; id < 2; id++) {
		assert_int_equal(
		    decode_with_str(&sb, id ? "id" : "from", "a\xc3", 2), -1);
	}
	msgpack_sbuffer_destroy(&sb);
}

static void
oversize_strings_are_malformed(void **state)
{
	static char big[ENV_ID_MAX + 1];
	msgpack_sbuffer sb;

	memset(big, 'a', sizeof(big));
	msgpack_sbuffer_init(&sb);
	for (int id = 0; id < 2; id++) {
		assert_int_equal(
		    decode_with_str(&sb, id ? "id" : "from", big, sizeof(big)),
		    -1);
	}
	msgpack_sbuffer_destroy(&sb);
}

/* An envelope exactly as the Redis function library publishes it
 * (captured from redis-server 7.0: FCALL wspush_publish 1
 * wspush:channel:cap '{"n":1}' u7 json): data is bin, ts a uint 64. */
static const char lua_envelope[] =
    "\xc1\x57\x53\x50\x86\xa1\x76\x01\xa4\x64\x61\x74"
    "\x61\xc4\x07\x7b\x22\x6e\x22\x3a\x31\x7d\xa2\x69"
    "\x64\xaf\x31\x37\x39\x36\x32\x39\x32\x33\x39\x34"
    "\x37\x30\x32\x2d\x30\xa2\x74\x73\xcf\x00\x00\x01"
    "\xa2\x3b\x5e\xbe\xce\xa4\x66\x72\x6f\x6d\xa2\x75"
    "\x37\xa4\x6a\x73\x6f\x6e\xc3";

static void
the_function_librarys_envelope_decodes(void **state)
{
	struct wspenv out;
	msgpack_sbuffer sb;

	(void)state;
	assert_int_equal(
	    wspenv_decode(lua_envelope, sizeof(lua_envelope) - 1, &zone, &out),
	    0);
	assert_str(out.data, "{\"n\":1}", 7);
	assert_str(out.from, "u7", 2);
	assert_str(out.id, "1796292394702-0", 15);
	assert_true(out.ts == 1796292394702ull);
	assert_true(out.json);
	/* And our encoder writes the same fields the same way, in another
	 * key order: same length. */
	msgpack_sbuffer_init(&sb);
	assert_int_equal(wspenv_encode(&sb, &out), 0);
	assert_int_equal(sb.size, sizeof(lua_envelope) - 1);
	msgpack_sbuffer_destroy(&sb);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(a_full_envelope_round_trips),
	    cmocka_unit_test(the_function_librarys_envelope_decodes),
	    cmocka_unit_test(a_minimal_envelope_round_trips),
	    cmocka_unit_test(
		encoding_appends_and_failure_leaves_the_buffer_as_it_was),
	    cmocka_unit_test(the_magic_is_required),
	    cmocka_unit_test(maps_decode_as_the_rules_say),
	    cmocka_unit_test(non_maps_and_trailing_bytes_are_malformed),
	    cmocka_unit_test(truncation_at_every_offset_is_malformed),
	    cmocka_unit_test(from_and_id_must_be_utf8),
	    cmocka_unit_test(oversize_strings_are_malformed),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
