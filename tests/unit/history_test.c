/*
 * history_test.c - bridge/history.c: the library text, the command
 * arguments, and the parsing of replies, both from captured RESP bytes
 * (fed through hiredis' own reader, so the redisReply trees are real) and
 * from a real redis-server this test starts on a unix socket in a private
 * directory (skipped when redis-server is not installed).
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "history.h"
#include "keys.h"

/* ---- helpers ---- */

/* A redisReply tree parsed by hiredis from raw RESP. */
static redisReply *
resp(const char *raw)
{
	redisReader *rd = redisReaderCreate();
	void *r = NULL;

	assert_non_null(rd);
	assert_int_equal(redisReaderFeed(rd, raw, strlen(raw)), REDIS_OK);
	assert_int_equal(redisReaderGetReply(rd, &r), REDIS_OK);
	assert_non_null(r);
	redisReaderFree(rd);
	return r;
}

static const struct history_conf CONF10 = {
    HISTORY_LIB_VERSION, 10, 300, 20, 86400, false};

static void
assert_estr(struct env_str s, const char *want)
{
	if (want == NULL) {
		assert_null(s.p);
		return;
	}
	assert_non_null(s.p);
	assert_int_equal(s.len, strlen(want));
	assert_memory_equal(s.p, want, s.len);
}

/* ---- library text and arguments ---- */

static void
library_text_has_our_conf(void **state)
{
	struct history_conf h = CONF10;
	size_t len;
	char *t;

	(void)state;
	t = history_library(&h, &len);
	assert_non_null(t);
	assert_int_equal(strlen(t), len);
	assert_memory_equal(t, "#!lua name=wspush\n", 18);
	assert_non_null(strstr(t,
	    "\nlocal CONF = {version = 1, size = 10, ttl_s = 300, user_size = "
	    "20, user_ttl_s = 86400, sharded = false} -- CONF\n"));
	/* Everything else is the shipped text. */
	assert_non_null(strstr(t, "redis.register_function('wspush_publish'"));
	assert_true(len > history_lua_len - 200 && len < history_lua_len + 200);
	free(t);
	h.sharded = true;
	t = history_library(&h, &len);
	assert_non_null(strstr(t, "sharded = true} -- CONF\n"));
	free(t);
}

static void
conf_from_resolves_user_size(void **state)
{
	struct conf c;
	struct history_conf h;
	char buf[128];

	(void)state;
	memset(&c, 0, sizeof(c));
	c.history_size = 50;
	c.history_ttl_s = 60;
	c.history_user_size = 0;
	c.history_user_ttl_s = 3600;
	history_conf_from(&h, &c);
	assert_int_equal(h.user_size, 50);
	assert_int_equal(h.version, HISTORY_LIB_VERSION);
	assert_false(h.sharded);
	c.history_user_size = 7;
	c.redis_cluster = true;
	history_conf_from(&h, &c);
	assert_int_equal(h.user_size, 7);
	assert_true(h.sharded);
	assert_true(history_conf_str(&h, buf, sizeof(buf)) > 0);
	assert_string_equal(
	    buf, "v=1 size=50 ttl_s=60 user_size=7 user_ttl_s=3600 sharded=1");
	assert_int_equal(history_conf_str(&h, buf, 10), -1);
}

static void
assert_args(const struct history_argv *a, int n, const char *const *want)
{
	assert_int_equal(a->argc, n);
	for (int i = 0; i < n; i++) {
		assert_int_equal(a->lens[i], strlen(want[i]));
		assert_memory_equal(a->argv[i], want[i], a->lens[i]);
	}
}

static void
argv_builders(void **state)
{
	struct history_argv a;

	(void)state;
	history_config_argv(&a);
	assert_args(&a, 3, (const char *[]){"FCALL_RO", "wspush_config", "0"});
	history_load_argv(&a, "TEXT", 4);
	assert_args(
	    &a, 4, (const char *[]){"FUNCTION", "LOAD", "REPLACE", "TEXT"});
	history_publish_argv(&a, "p:all", 5, "x", 1, NULL, 0, false);
	assert_args(&a, 5,
	    (const char *[]){"FCALL", "wspush_publish", "1", "p:all", "x"});
	history_publish_argv(&a, "p:all", 5, "x", 1, "u7", 2, false);
	assert_args(&a, 6,
	    (const char *[]){
		"FCALL", "wspush_publish", "1", "p:all", "x", "u7"});
	assert_int_equal(
	    history_range_argv(&a, "p:user:1", 8, "5-1", 3, 100), 0);
	assert_args(&a, 6,
	    (const char *[]){
		"FCALL_RO", "wspush_range", "1", "p:user:1", "5-1", "101"});
	assert_int_equal(history_range_argv(&a, "p:user:1", 8, NULL, 0, 50), 0);
	assert_args(&a, 6,
	    (const char *[]){
		"FCALL_RO", "wspush_range", "1", "p:user:1", "", "50"});
	assert_int_equal(history_range_argv(&a, "p:all", 5, "5-x", 3, 100), -1);
	assert_int_equal(history_range_argv(&a, "p:all", 5, "0", 1, 0), -1);
}

static void
publish_json_argv(void **state)
{
	struct history_argv a;

	(void)state;
	history_publish_argv(&a, "p:all", 5, "[1]", 3, NULL, 0, true);
	assert_args(&a, 7,
	    (const char *[]){
		"FCALL", "wspush_publish", "1", "p:all", "[1]", "", "json"});
}

/* ---- replies, captured ---- */

/* The reply raw (RESP) to FUNCTION LOAD: want, and why holding why_has
 * unless that is NULL. */
static void
expect_load(const char *raw, enum history_load want, const char *why_has)
{
	char why[256];
	redisReply *r = resp(raw);

	assert_int_equal(history_load_parse(r, why, sizeof(why)), want);
	if (why_has != NULL)
		assert_non_null(strstr(why, why_has));
	freeReplyObject(r);
}

/* The reply raw (RESP) to the config call, against CONF10: want. */
static void
expect_config(const char *raw, enum history_loaded want)
{
	struct history_conf got;
	redisReply *r = resp(raw);

	assert_int_equal(history_config_parse(r, &CONF10, &got), want);
	freeReplyObject(r);
}

static void
load_replies(void **state)
{
	char why[256];
	redisReply *r;

	(void)state;
	r = resp("$6\r\nwspush\r\n");
	assert_int_equal(
	    history_load_parse(r, why, sizeof(why)), HISTORY_LOAD_OK);
	assert_string_equal(why, "");
	freeReplyObject(r);
	/* What Redis 6.2 answers. */
	expect_load("-ERR unknown command 'FUNCTION', with args beginning "
		    "with: 'LOAD' 'REPLACE' \r\n",
	    HISTORY_LOAD_OLD_REDIS, "Redis 7.0 or newer");
	expect_load("-NOPERM this user has no permissions to run the "
		    "'function' command or its subcommand\r\n",
	    HISTORY_LOAD_REFUSED, "NOPERM");
	expect_load("$5\r\nother\r\n", HISTORY_LOAD_REFUSED, NULL);
	assert_int_equal(
	    history_load_parse(NULL, why, sizeof(why)), HISTORY_LOAD_LOST);
	assert_int_equal(history_load_parse(NULL, NULL, 0), HISTORY_LOAD_LOST);
}

static void
config_replies(void **state)
{
	struct history_conf got;
	redisReply *r;

	(void)state;
	r = resp("*6\r\n:1\r\n:10\r\n:300\r\n:20\r\n:86400\r\n:0\r\n");
	assert_int_equal(
	    history_config_parse(r, &CONF10, &got), HISTORY_LOADED_SAME);
	freeReplyObject(r);
	r = resp("*7\r\n:1\r\n:11\r\n:300\r\n:20\r\n:86400\r\n:0\r\n:9\r\n");
	assert_int_equal(
	    history_config_parse(r, &CONF10, &got), HISTORY_LOADED_OTHER);
	assert_int_equal(got.size, 11);
	freeReplyObject(r);
	expect_config("*6\r\n:2\r\n:10\r\n:300\r\n:20\r\n:86400\r\n:0\r\n",
	    HISTORY_LOADED_OTHER);
	expect_config("-ERR Function not found\r\n", HISTORY_LOADED_NONE);
	expect_config("-ERR unknown command 'FCALL_RO', with args beginning "
		      "with: \r\n",
	    HISTORY_LOADED_NONE);
	static const char *bad[] = {"-NOPERM no\r\n",
	    "*5\r\n:1\r\n:10\r\n:300\r\n:20\r\n:86400\r\n",
	    "*6\r\n:1\r\n:10\r\n:300\r\n:20\r\n:86400\r\n:2\r\n",
	    "*6\r\n:1\r\n:-1\r\n:300\r\n:20\r\n:86400\r\n:0\r\n",
	    "*6\r\n:1\r\n$2\r\n10\r\n:300\r\n:20\r\n:86400\r\n:0\r\n",
	    "$2\r\nok\r\n"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		expect_config(bad[i], HISTORY_LOADED_ERROR);
	assert_int_equal(
	    history_config_parse(NULL, &CONF10, &got), HISTORY_LOADED_ERROR);
}

static void
publish_id_replies(void **state)
{
	redisReply *r;

	(void)state;
	r = resp("$15\r\n1733212345678-0\r\n");
	assert_estr(history_publish_id(r), "1733212345678-0");
	freeReplyObject(r);
	r = resp("-ERR wspush_publish: not a wspush address key: x\r\n");
	assert_null(history_publish_id(r).p);
	freeReplyObject(r);
	r = resp("$3\r\nabc\r\n");
	assert_null(history_publish_id(r).p);
	freeReplyObject(r);
	assert_null(history_publish_id(NULL).p);
}

/* The wspush_range shape: exists, first id, length, entries added, and
 * the entries [id, [field, value, ...]]. */
#define E(id, fields) "*2\r\n$" id "\r\n" fields
#define F2(k, v) "*2\r\n" k v
#define F4(k, v, k2, v2) "*4\r\n" k v k2 v2
#define S3(a) "$3\r\n" a "\r\n"
#define S4(a) "$4\r\n" a "\r\n"

static void
range_captured(void **state)
{
	struct history_range h;
	char why[128];
	redisReply *r;

	(void)state;
	/* since 5-1, limit 2: entries 6-0 and 7-0, first entry 5-0. */
	r = resp("*5\r\n:1\r\n$3\r\n5-0\r\n:3\r\n:3\r\n*2\r\n" E("3\r\n6-0",
	    F4(S4("data"), S3("abc"), S4("from"), "$2\r\nu7\r\n")) E("3\r\n7-0",
	    F4(S4("data"), "$3\r\n[1]\r\n", S4("json"), "$1\r\n1\r\n")));
	assert_int_equal(
	    history_range_parse(r, "5-1", 3, 2, &h, why, sizeof(why)),
	    HISTORY_RANGE_OK);
	assert_true(h.exists && h.recovered && !h.more);
	assert_int_equal(h.n, 2);
	assert_estr(h.first_id, "5-0");
	assert_estr(h.entries[0].id, "6-0");
	assert_estr(h.entries[0].data, "abc");
	assert_estr(h.entries[0].from, "u7");
	assert_false(h.entries[0].json);
	assert_estr(h.entries[1].data, "[1]");
	assert_null(h.entries[1].from.p);
	assert_true(h.entries[1].json);
	history_range_free(&h);
	/* The same facts after 4-9: its successor may be gone. */
	assert_int_equal(
	    history_range_parse(r, "4-9", 3, 2, &h, why, sizeof(why)),
	    HISTORY_RANGE_OK);
	assert_false(h.recovered);
	history_range_free(&h);
	/* limit 1: the second entry only says that more follow. */
	assert_int_equal(
	    history_range_parse(r, "5-1", 3, 1, &h, why, sizeof(why)),
	    HISTORY_RANGE_OK);
	assert_true(h.more && !h.recovered);
	assert_int_equal(h.n, 1);
	history_range_free(&h);
	/* "0": length 3 == added 3, and everything fit. */
	assert_int_equal(
	    history_range_parse(r, "0", 1, 5, &h, why, sizeof(why)),
	    HISTORY_RANGE_OK);
	assert_true(h.recovered);
	history_range_free(&h);
	/* The history op (since NULL, limit 2) of a 3-entry stream: not all. */
	assert_int_equal(
	    history_range_parse(r, NULL, 0, 2, &h, why, sizeof(why)),
	    HISTORY_RANGE_OK);
	assert_false(h.recovered);
	assert_int_equal(h.n, 2);
	history_range_free(&h);
	freeReplyObject(r);

	/* Trimmed ("0": added 300 > length 110), or no stream at all. */
	r = resp("*5\r\n:1\r\n$5\r\n190-0\r\n:110\r\n:300\r\n*0\r\n");
	assert_int_equal(
	    history_range_parse(r, "0", 1, 5, &h, why, sizeof(why)),
	    HISTORY_RANGE_OK);
	assert_false(h.recovered);
	assert_int_equal(h.n, 0);
	assert_null(h.entries);
	freeReplyObject(r);
	r = resp("*5\r\n:0\r\n$0\r\n\r\n:0\r\n:0\r\n*0\r\n");
	assert_int_equal(
	    history_range_parse(r, "7-0", 3, 5, &h, why, sizeof(why)),
	    HISTORY_RANGE_OK);
	assert_false(h.exists || h.recovered);
	assert_null(h.first_id.p);
	freeReplyObject(r);

	/* An entry without data (someone XADDed by hand) is left out and
	 * makes the promise impossible. */
	r = resp("*5\r\n:1\r\n$3\r\n1-0\r\n:2\r\n:2\r\n*2\r\n" E("3\r\n2-0",
	    F2(S3("foo"), S3("bar"))) E("3\r\n3-0", F2(S4("data"), S3("abc"))));
	assert_int_equal(
	    history_range_parse(r, "1-0", 3, 5, &h, why, sizeof(why)),
	    HISTORY_RANGE_OK);
	assert_int_equal(h.n, 1);
	assert_int_equal(h.skipped, 1);
	assert_false(h.recovered);
	assert_estr(h.entries[0].id, "3-0");
	history_range_free(&h);
	freeReplyObject(r);
}

static void
range_errors(void **state)
{
	struct history_range h;
	char why[128];
	redisReply *r;

	(void)state;
	r = resp("-ERR Function not found\r\n");
	assert_int_equal(
	    history_range_parse(r, "0", 1, 5, &h, why, sizeof(why)),
	    HISTORY_RANGE_ERROR);
	assert_string_equal(why, "ERR Function not found");
	freeReplyObject(r);
	assert_int_equal(
	    history_range_parse(NULL, "0", 1, 5, &h, why, sizeof(why)),
	    HISTORY_RANGE_LOST);
	static const char *bad[] = {
	    "$2\r\nok\r\n",
	    "*4\r\n:1\r\n$0\r\n\r\n:0\r\n:0\r\n",
	    "*5\r\n:2\r\n$0\r\n\r\n:0\r\n:0\r\n*0\r\n",
	    "*5\r\n:1\r\n$1\r\nx\r\n:0\r\n:0\r\n*0\r\n",
	    "*5\r\n:1\r\n$0\r\n\r\n:-1\r\n:0\r\n*0\r\n",
	    "*5\r\n:1\r\n$0\r\n\r\n:0\r\n:0\r\n:0\r\n",
	    /* more entries than limit + 1 */
	    "*5\r\n:1\r\n$0\r\n\r\n:0\r\n:0\r\n*3\r\n" E(
		"3\r\n1-0", F2(S4("data"), S3("abc")))
		E("3\r\n2-0", F2(S4("data"), S3("abc")))
		    E("3\r\n3-0", F2(S4("data"), S3("abc"))),
	    /* an entry that is not [id, fields] */
	    "*5\r\n:1\r\n$0\r\n\r\n:0\r\n:0\r\n*1\r\n*1\r\n$3\r\n1-0\r\n",
	    "*5\r\n:1\r\n$0\r\n\r\n:0\r\n:0\r\n*1\r\n" E(
		"1\r\nx", F2(S4("data"), S3("abc"))),
	    "*5\r\n:1\r\n$0\r\n\r\n:0\r\n:0\r\n*1\r\n*2\r\n$3\r\n1-0\r\n*1\r\n"
	    "$4\r\ndata\r\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		r = resp(bad[i]);
		assert_int_equal(
		    history_range_parse(r, "0", 1, 1, &h, why, sizeof(why)),
		    HISTORY_RANGE_MALFORMED);
		assert_null(h.entries);
		freeReplyObject(r);
	}
	/* A since that is no stream id is the caller's bug: refused. */
	r = resp("*5\r\n:0\r\n$0\r\n\r\n:0\r\n:0\r\n*0\r\n");
	assert_int_equal(
	    history_range_parse(r, "x", 1, 1, &h, why, sizeof(why)),
	    HISTORY_RANGE_MALFORMED);
	freeReplyObject(r);
}

/* ---- UP_RANGE_REQ in, BUS_RANGE out ---- */

static void
requests_are_checked_and_capped(void **state)
{
	struct up_range q = {1, {"channel:news", 12}, {"5-1", 3}, 5000};
	char key[KEYS_MAX];
	uint32_t limit = 0;

	(void)state;
	assert_int_equal(
	    history_request(&q, "wspush", 1000, key, sizeof(key), &limit),
	    RANGE_OK);
	assert_string_equal(key, "wspush:channel:news");
	assert_int_equal(limit, 1000);
	q.limit = 7;
	q.since = (struct env_str){NULL, 0};
	assert_int_equal(
	    history_request(&q, "wspush", 1000, key, sizeof(key), &limit),
	    RANGE_OK);
	assert_int_equal(limit, 7);
	q.since = (struct env_str){"0", 1};
	assert_int_equal(
	    history_request(&q, "wspush", 1000, key, sizeof(key), &limit),
	    RANGE_OK);
	static const struct env_str bad_since[] = {
	    {"x", 1}, {"1-", 2}, {"", 0}, {"99999999999999999999999", 23}};
	for (size_t i = 0; i < 4; i++) {
		q.since = bad_since[i];
		assert_int_equal(history_request(&q, "wspush", 1000, key,
				     sizeof(key), &limit),
		    RANGE_BAD_REQUEST);
	}
	q.since = (struct env_str){NULL, 0};
	static const struct env_str bad_addr[] = {{"channel:", 8},
	    {"inbound", 7}, {"user:a b", 8}, {"channel:a*", 10}, {NULL, 0}};
	for (size_t i = 0; i < 5; i++) {
		q.addr = bad_addr[i];
		assert_int_equal(history_request(&q, "wspush", 1000, key,
				     sizeof(key), &limit),
		    RANGE_BAD_REQUEST);
	}
	q.addr = (struct env_str){"all", 3};
	q.limit = 0;
	assert_int_equal(
	    history_request(&q, "wspush", 1000, key, sizeof(key), &limit),
	    RANGE_BAD_REQUEST);
	q.limit = 1;
	assert_int_equal(history_request(&q, "wspush", 1000, key, 5, &limit),
	    RANGE_BAD_REQUEST);
}

/* Collects emitted chunks into one buffer, like a bus would carry them. */
struct sink {
	msgpack_sbuffer sb;
	int chunks;
	int fail_at; /* emit returns 7 at this chunk (0: never) */
};

static int
sink_emit(void *arg, const struct bus_range *chunk)
{
	struct sink *k = arg;

	k->chunks++;
	if (k->fail_at != 0 && k->chunks == k->fail_at)
		return 7;
	assert_int_equal(bus_encode_range(&k->sb, chunk), 0);
	return 0;
}

static const struct bus_range HEAD = {
    .epoch = 9, .slot = 2, .gen = 5, .req_id = 77, .to = {"channel:news", 12}};

static void
ranges_become_ordered_bounded_chunks(void **state)
{
	struct history_range h;
	struct sink k = {.chunks = 0, .fail_at = 0};
	struct env_reader r;
	struct bus_env e;
	char why[64];
	redisReply *rep;
	int n = 0, chunk = 0;

	(void)state;
	rep = resp("*5\r\n:1\r\n$3\r\n5-0\r\n:3\r\n:3\r\n*3\r\n" E("3\r\n6-0",
	    F4(S4("data"), S3("abc"), S4("from"), "$2\r\nu7\r\n")) E("3\r\n7-0",
	    F4(S4("data"), "$1\r\n5\r\n", S4("json"), "$1\r\n1\r\n"))
		E("3\r\n8-1", F2(S4("data"), "$2\r\n\xff\xfe\r\n")));
	assert_int_equal(
	    history_range_parse(rep, "5-0", 3, 10, &h, why, sizeof(why)),
	    HISTORY_RANGE_OK);
	assert_true(h.recovered);
	msgpack_sbuffer_init(&k.sb);
	/* A bound that fits one entry per chunk. */
	assert_int_equal(
	    history_range_emit(&HEAD, &h, RANGE_OK, 100, sink_emit, &k), 0);
	assert_int_equal(k.chunks, 3);
	env_reader_init(&r, k.sb.data, k.sb.size);
	while (bus_reader_next(&r, &e) == ENV_OK) {
		struct bus_range *g = &e.u.range;

		assert_int_equal(e.kind, BUS_RANGE);
		assert_true(g->epoch == 9 && g->slot == 2 && g->gen == 5 &&
			    g->req_id == 77);
		assert_int_equal(g->status, RANGE_OK);
		assert_true(g->recovered);
		assert_int_equal(g->chunk, chunk);
		assert_int_equal(g->last, chunk == 2);
		assert_int_equal(g->n, 1);
		switch (n) {
		case 0:
			assert_estr(g->entries[0].id, "6-0");
			assert_int_equal(g->entries[0].cls, PAYLOAD_TEXT);
			assert_estr(g->entries[0].from, "u7");
			assert_true(g->entries[0].ts == 6);
			break;
		case 1:
			/* a client message: any JSON is JSON */
			assert_int_equal(g->entries[0].cls, PAYLOAD_JSON);
			assert_null(g->entries[0].from.p);
			break;
		case 2:
			assert_int_equal(g->entries[0].cls, PAYLOAD_BINARY);
			assert_true(g->entries[0].ts == 8);
			break;
		}
		n++;
		chunk++;
	}
	env_reader_fini(&r);
	assert_int_equal(n, 3);
	/* A generous bound: one chunk. */
	k.sb.size = 0;
	k.chunks = 0;
	assert_int_equal(history_range_emit(&HEAD, &h, RANGE_OK,
			     HISTORY_CHUNK_BYTES, sink_emit, &k),
	    0);
	assert_int_equal(k.chunks, 1);
	/* emit's failure stops the answer and is returned. */
	k.sb.size = 0;
	k.chunks = 0;
	k.fail_at = 2;
	assert_int_equal(
	    history_range_emit(&HEAD, &h, RANGE_OK, 100, sink_emit, &k), 7);
	assert_int_equal(k.chunks, 2);
	history_range_free(&h);
	freeReplyObject(rep);
	msgpack_sbuffer_destroy(&k.sb);
}

static void
answers_without_entries_are_one_last_chunk(void **state)
{
	struct sink k = {.chunks = 0, .fail_at = 0};
	struct env_reader r;
	struct bus_env e;

	(void)state;
	msgpack_sbuffer_init(&k.sb);
	assert_int_equal(history_range_emit(&HEAD, NULL, RANGE_UNAVAILABLE,
			     HISTORY_CHUNK_BYTES, sink_emit, &k),
	    0);
	assert_int_equal(k.chunks, 1);
	env_reader_init(&r, k.sb.data, k.sb.size);
	assert_int_equal(bus_reader_next(&r, &e), ENV_OK);
	assert_int_equal(e.u.range.status, RANGE_UNAVAILABLE);
	assert_true(e.u.range.last && !e.u.range.recovered);
	assert_int_equal(e.u.range.chunk, 0);
	assert_int_equal(e.u.range.n, 0);
	assert_int_equal(bus_reader_next(&r, &e), ENV_END);
	env_reader_fini(&r);
	msgpack_sbuffer_destroy(&k.sb);
}

static void
an_entry_the_bus_cannot_carry_is_left_out(void **state)
{
	struct history_entry ents[2] = {
	    {{"1-0", 3}, {NULL, ENV_DATA_MAX + 1}, {NULL, 0}, false},
	    {{"2-0", 3}, {"ok", 2}, {NULL, 0}, false}};
	struct history_range h = {
	    .exists = true, .recovered = true, .n = 2, .entries = ents};
	struct sink k = {.chunks = 0, .fail_at = 0};
	struct env_reader r;
	struct bus_env e;
	char *big = malloc(ENV_DATA_MAX + 1);

	(void)state;
	assert_non_null(big);
	memset(big, 'a', ENV_DATA_MAX + 1);
	ents[0].data.p = big;
	msgpack_sbuffer_init(&k.sb);
	assert_int_equal(history_range_emit(&HEAD, &h, RANGE_OK,
			     HISTORY_CHUNK_BYTES, sink_emit, &k),
	    0);
	env_reader_init(&r, k.sb.data, k.sb.size);
	assert_int_equal(bus_reader_next(&r, &e), ENV_OK);
	assert_int_equal(e.u.range.n, 1);
	assert_estr(e.u.range.entries[0].id, "2-0");
	assert_false(e.u.range.recovered);
	env_reader_fini(&r);
	msgpack_sbuffer_destroy(&k.sb);
	free(big);
}

/* ---- the loading state ---- */

static void
loading_states_and_log_lines(void **state)
{
	struct conf c;
	struct history h;
	struct history_argv check, load;
	char line[512];
	redisReply *r;

	(void)state;
	memset(&c, 0, sizeof(c));
	assert_int_equal(history_init(&h, &c), 0);
	assert_int_equal(h.state, HISTORY_OFF);
	assert_null(h.text);
	assert_int_equal(history_range_status(&h), RANGE_UNAVAILABLE);
	check.argc = load.argc = -1;
	history_connected(&h, &check, &load);
	assert_int_equal(check.argc, -1); /* nothing to send */
	history_fini(&h);

	c.history_size = 10;
	c.history_ttl_s = 300;
	c.history_user_ttl_s = 86400;
	assert_int_equal(history_init(&h, &c), 0);
	assert_int_equal(h.state, HISTORY_LOADING);
	assert_int_equal(history_range_status(&h), RANGE_FAILED);
	history_connected(&h, &check, &load);
	assert_args(
	    &check, 3, (const char *[]){"FCALL_RO", "wspush_config", "0"});
	assert_int_equal(load.argc, 4);
	assert_int_equal(load.lens[3], h.text_len);

	/* Another node's values are logged; ours or none are not. */
	r = resp("*6\r\n:1\r\n:99\r\n:300\r\n:99\r\n:86400\r\n:0\r\n");
	assert_non_null(history_on_config(&h, r, line, sizeof(line)));
	assert_non_null(strstr(line, "size=99"));
	assert_non_null(strstr(line, "size=10"));
	assert_true(h.other_config);
	freeReplyObject(r);
	r = resp("-ERR Function not found\r\n");
	assert_null(history_on_config(&h, r, line, sizeof(line)));
	assert_false(h.other_config);
	freeReplyObject(r);

	r = resp("$6\r\nwspush\r\n");
	assert_non_null(history_on_load(&h, r, line, sizeof(line)));
	assert_non_null(strstr(line, "loaded"));
	assert_int_equal(h.state, HISTORY_READY);
	assert_int_equal(history_range_status(&h), RANGE_OK);
	assert_int_equal(h.loads, 1);
	freeReplyObject(r);

	history_lost(&h);
	assert_int_equal(h.state, HISTORY_LOADING);
	history_connected(&h, &check, &load);
	r = resp("-ERR unknown command 'FUNCTION', with args beginning "
		 "with: 'LOAD' \r\n");
	assert_non_null(history_on_load(&h, r, line, sizeof(line)));
	assert_non_null(strstr(line, "unavailable"));
	assert_non_null(strstr(line, "Redis 7.0"));
	assert_int_equal(h.state, HISTORY_UNAVAILABLE);
	assert_non_null(strstr(h.err, "Redis 7.0"));
	assert_int_equal(h.load_failures, 1);
	assert_int_equal(history_range_status(&h), RANGE_UNAVAILABLE);
	assert_string_equal(history_state_str(h.state), "unavailable");
	freeReplyObject(r);

	/* A link lost before the answer: loading again, not a failure. */
	history_connected(&h, &check, &load);
	assert_null(history_on_load(&h, NULL, line, sizeof(line)));
	assert_int_equal(h.state, HISTORY_LOADING);
	assert_int_equal(h.load_failures, 1);
	history_fini(&h);
}

/* ---- against a real redis-server ---- */

struct live {
	pid_t pid;
	char dir[64], sock[96];
	redisContext *c;
};

static struct live L;

static int
live_setup(void **state)
{
	struct timespec ts = {0, 20 * 1000 * 1000};

	(void)state;
	memset(&L, 0, sizeof(L));
	snprintf(L.dir, sizeof(L.dir), "/tmp/wsp-history-test-XXXXXX");
	if (mkdtemp(L.dir) == NULL)
		return -1;
	snprintf(L.sock, sizeof(L.sock), "%s/redis.sock", L.dir);
	L.pid = fork();
	if (L.pid < 0)
		return -1;
	if (L.pid == 0) {
		/* Quiet (the test's output is cmocka's), and gone with the
		 * test even if a sanitizer aborts it before the teardown. */
		if (freopen("/dev/null", "w", stdout) == NULL ||
		    freopen("/dev/null", "w", stderr) == NULL ||
		    prctl(PR_SET_PDEATHSIG, SIGTERM) != 0)
			_exit(127);
		execlp("redis-server", "redis-server", "--port", "0",
		    "--unixsocket", L.sock, "--save", "", "--appendonly", "no",
		    "--dir", L.dir, (char *)NULL);
		_exit(127);
	}
	/* Bounded: 10 s for redis-server to listen. */
	for (int i = 0; i < 500; i++) {
		int st;

		if (waitpid(L.pid, &st, WNOHANG) == L.pid) {
			L.pid = 0; /* not installed, or it failed: skip */
			return 0;
		}
		L.c = redisConnectUnix(L.sock);
		if (L.c != NULL && L.c->err == 0)
			return 0;
		if (L.c != NULL)
			redisFree(L.c);
		L.c = NULL;
		nanosleep(&ts, NULL);
	}
	return 0;
}

static int
live_teardown(void **state)
{
	(void)state;
	if (L.c != NULL)
		redisFree(L.c);
	if (L.pid > 0) {
		kill(L.pid, SIGTERM);
		waitpid(L.pid, NULL, 0);
	}
	unlink(L.sock);
	rmdir(L.dir);
	return 0;
}

static redisReply *
cmd(struct history_argv *a)
{
	redisReply *r = redisCommandArgv(L.c, a->argc, a->argv, a->lens);

	assert_non_null(r);
	return r;
}

static redisReply *
cmdf(const char *fmt, ...)
{
	va_list ap;
	redisReply *r;

	va_start(ap, fmt);
	r = redisvCommand(L.c, fmt, ap);
	va_end(ap);
	assert_non_null(r);
	return r;
}

static void
need_redis(void)
{
	if (L.c == NULL)
		skip();
}

static void
load(const struct history_conf *h)
{
	struct history_argv a;
	char why[256];
	size_t len;
	char *text = history_library(h, &len);
	redisReply *r;

	assert_non_null(text);
	history_load_argv(&a, text, len);
	r = cmd(&a);
	assert_int_equal(
	    history_load_parse(r, why, sizeof(why)), HISTORY_LOAD_OK);
	freeReplyObject(r);
	free(text);
}

/* Publishes through the function; the id into id (NUL-terminated). */
static void
publish(const char *key, const char *payload, char *id, size_t idlen)
{
	struct history_argv a;
	redisReply *r;
	struct env_str s;

	history_publish_argv(
	    &a, key, strlen(key), payload, strlen(payload), NULL, 0, false);
	r = cmd(&a);
	s = history_publish_id(r);
	assert_non_null(s.p);
	assert_true(s.len < idlen);
	memcpy(id, s.p, s.len);
	id[s.len] = '\0';
	freeReplyObject(r);
}

static redisReply *
range(
    const char *key, const char *since, uint32_t limit, struct history_range *h)
{
	struct history_argv a;
	char why[256];
	redisReply *r;

	assert_int_equal(history_range_argv(&a, key, strlen(key), since,
			     since ? strlen(since) : 0, limit),
	    0);
	r = cmd(&a);
	assert_int_equal(
	    history_range_parse(r, since, since ? strlen(since) : 0, limit, h,
		why, sizeof(why)),
	    HISTORY_RANGE_OK);
	return r;
}

static void
live_load_and_config(void **state)
{
	struct history_argv a;
	struct history_conf got, other = CONF10;
	char why[256];
	redisReply *r;

	(void)state;
	need_redis();
	r = cmdf("FUNCTION FLUSH");
	freeReplyObject(r);
	history_config_argv(&a);
	r = cmd(&a);
	assert_int_equal(
	    history_config_parse(r, &CONF10, &got), HISTORY_LOADED_NONE);
	freeReplyObject(r);
	load(&CONF10);
	r = cmd(&a);
	assert_int_equal(
	    history_config_parse(r, &CONF10, &got), HISTORY_LOADED_SAME);
	freeReplyObject(r);
	other.ttl_s = 301;
	r = cmd(&a);
	assert_int_equal(
	    history_config_parse(r, &other, &got), HISTORY_LOADED_OTHER);
	assert_int_equal(got.ttl_s, 300);
	freeReplyObject(r);
	/* The state machine's own commands, against the server. */
	{
		struct conf c;
		struct history hs;
		struct history_argv check, ld;
		char line[512];

		memset(&c, 0, sizeof(c));
		c.history_size = 10;
		c.history_ttl_s = 300;
		c.history_user_size = 20;
		c.history_user_ttl_s = 86400;
		assert_int_equal(history_init(&hs, &c), 0);
		history_connected(&hs, &check, &ld);
		r = cmd(&check);
		assert_null(history_on_config(&hs, r, line, sizeof(line)));
		freeReplyObject(r);
		r = cmd(&ld);
		assert_non_null(history_on_load(&hs, r, line, sizeof(line)));
		assert_int_equal(hs.state, HISTORY_READY);
		freeReplyObject(r);
		history_fini(&hs);
	}
	/* A library Redis refuses (here: not Lua) is reported. */
	history_load_argv(&a, "#!lua name=wspush\nthis is not lua", 33);
	r = cmd(&a);
	assert_int_equal(
	    history_load_parse(r, why, sizeof(why)), HISTORY_LOAD_REFUSED);
	assert_non_null(strstr(why, "refused"));
	freeReplyObject(r);
}

static void
live_recovery_facts(void **state)
{
	const char *key = "wspush:channel:hist";
	char ids[5][48];
	struct history_range h;
	redisReply *r;

	(void)state;
	need_redis();
	freeReplyObject(cmdf("DEL %s", key));
	load(&CONF10);
	/* No stream: never recovered. */
	r = range(key, "0", 10, &h);
	assert_false(h.exists || h.recovered);
	freeReplyObject(r);
	for (int i = 0; i < 5; i++) {
		char p[16];

		snprintf(p, sizeof(p), "m%d", i);
		publish(key, p, ids[i], sizeof(ids[i]));
	}
	/* After ids[1]: ids[2..4], recovered. */
	r = range(key, ids[1], 10, &h);
	assert_true(h.exists && h.recovered && !h.more);
	assert_int_equal(h.n, 3);
	assert_estr(h.entries[0].id, ids[2]);
	assert_estr(h.entries[2].data, "m4");
	history_range_free(&h);
	freeReplyObject(r);
	/* limit 2 of 3: the oldest two, and not recovered. */
	r = range(key, ids[1], 2, &h);
	assert_true(h.more && !h.recovered);
	assert_int_equal(h.n, 2);
	assert_estr(h.entries[1].id, ids[3]);
	history_range_free(&h);
	freeReplyObject(r);
	/* Exactly limit: recovered. */
	r = range(key, ids[1], 3, &h);
	assert_true(!h.more && h.recovered);
	history_range_free(&h);
	freeReplyObject(r);
	/* "0": the whole never-trimmed stream. */
	r = range(key, "0", 5, &h);
	assert_true(h.recovered);
	assert_int_equal(h.n, 5);
	history_range_free(&h);
	freeReplyObject(r);
	/* The newest 2 (the history op). */
	r = range(key, NULL, 2, &h);
	assert_int_equal(h.n, 2);
	assert_estr(h.entries[0].id, ids[3]);
	assert_estr(h.entries[1].id, ids[4]);
	history_range_free(&h);
	freeReplyObject(r);
	/* Since the newest: nothing to send, and nothing missing. */
	r = range(key, ids[4], 10, &h);
	assert_true(h.recovered);
	assert_int_equal(h.n, 0);
	freeReplyObject(r);
	/* The stream deleted and re-created: its first id is after since.
	 * (Within the same millisecond the new stream's ids could sort
	 * before since; expiry cannot do that, it follows ttl_s of silence:
	 * wait for Redis' clock to move on.) */
	freeReplyObject(cmdf("DEL %s", key));
	for (int i = 0;; i++) {
		struct env_sid last, now;

		assert_true(i < 1000);
		r = cmdf("TIME");
		assert_int_equal(r->type, REDIS_REPLY_ARRAY);
		now.ms = strtoull(r->element[0]->str, NULL, 10) * 1000 +
			 strtoull(r->element[1]->str, NULL, 10) / 1000;
		now.seq = 0;
		freeReplyObject(r);
		assert_int_equal(
		    env_sid_parse(ids[4], strlen(ids[4]), &last), 0);
		if (now.ms > last.ms)
			break;
	}
	publish(key, "new", ids[0], sizeof(ids[0]));
	r = range(key, ids[4], 10, &h);
	assert_true(h.exists && !h.recovered);
	assert_int_equal(h.n, 1);
	history_range_free(&h);
	freeReplyObject(r);
}

static void
live_trimming(void **state)
{
	const char *key = "wspush:channel:trim";
	static char ids[300][48];
	struct history_range h;
	redisReply *r;
	long long len;
	int kept;

	(void)state;
	need_redis();
	freeReplyObject(cmdf("DEL %s", key));
	load(&CONF10);
	for (int i = 0; i < 300; i++)
		publish(key, "x", ids[i], sizeof(ids[i]));
	r = cmdf("XLEN %s", key);
	len = r->integer;
	freeReplyObject(r);
	assert_true(len >= 10 && len < 300);
	kept = 300 - (int)len; /* index of the first kept entry */
	/* since trimmed away: not recovered, and exactly what is kept. */
	r = range(key, ids[0], 1000, &h);
	assert_false(h.recovered);
	assert_int_equal(h.n, len);
	assert_estr(h.entries[0].id, ids[kept]);
	assert_estr(h.entries[h.n - 1].id, ids[299]);
	history_range_free(&h);
	freeReplyObject(r);
	/* since the last trimmed one: its successor is kept, but the
	 * promise is about since itself, which is gone. */
	r = range(key, ids[kept - 1], 1000, &h);
	assert_false(h.recovered);
	history_range_free(&h);
	freeReplyObject(r);
	/* since the first kept one: recovered. */
	r = range(key, ids[kept], 1000, &h);
	assert_true(h.recovered);
	assert_int_equal(h.n, len - 1);
	history_range_free(&h);
	freeReplyObject(r);
	/* "0" on a trimmed stream: not recovered. */
	r = range(key, "0", 1000, &h);
	assert_false(h.recovered);
	assert_int_equal(h.n, len);
	history_range_free(&h);
	freeReplyObject(r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(library_text_has_our_conf),
	    cmocka_unit_test(conf_from_resolves_user_size),
	    cmocka_unit_test(argv_builders),
	    cmocka_unit_test(publish_json_argv),
	    cmocka_unit_test(load_replies),
	    cmocka_unit_test(config_replies),
	    cmocka_unit_test(publish_id_replies),
	    cmocka_unit_test(range_captured),
	    cmocka_unit_test(range_errors),
	    cmocka_unit_test(requests_are_checked_and_capped),
	    cmocka_unit_test(ranges_become_ordered_bounded_chunks),
	    cmocka_unit_test(answers_without_entries_are_one_last_chunk),
	    cmocka_unit_test(an_entry_the_bus_cannot_carry_is_left_out),
	    cmocka_unit_test(loading_states_and_log_lines),
	    cmocka_unit_test(live_load_and_config),
	    cmocka_unit_test(live_recovery_facts),
	    cmocka_unit_test(live_trimming),
	};

	return cmocka_run_group_tests(tests, live_setup, live_teardown);
}
