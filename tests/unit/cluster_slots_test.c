/*
 * cluster_slots_test.c - key slots (values checked against Redis 7.0's
 * CLUSTER KEYSLOT), the slot map from CLUSTER SHARDS / CLUSTER SLOTS
 * replies (RESP bytes captured from a real 3-master cluster, parsed by
 * hiredis' reader as the bridge does) and MOVED / ASK parsing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cluster_slots.h"

static redisReply *
parse(const char *resp)
{
	redisReader *rd = redisReaderCreate();
	void *reply = NULL;

	assert_non_null(rd);
	assert_int_equal(redisReaderFeed(rd, resp, strlen(resp)), REDIS_OK);
	assert_int_equal(redisReaderGetReply(rd, &reply), REDIS_OK);
	assert_non_null(reply);
	redisReaderFree(rd);
	return reply;
}

static unsigned
slot_of(const char *k)
{
	return cluster_keyslot(k, strlen(k));
}

static void
crc16_matches_the_cluster_spec_check_value(void **state)
{
	assert_int_equal(cluster_crc16("123456789", 9), 0x31C3);
	assert_int_equal(cluster_crc16("", 0), 0);
}

static void
keyslots_match_redis(void **state)
{
	assert_int_equal(slot_of("foo"), 12182);
	assert_int_equal(slot_of("bar"), 5061);
	assert_int_equal(slot_of("hello"), 866);
	assert_int_equal(slot_of("123456789"), 12739);
	assert_int_equal(slot_of("wspush:user:42"), 3640);
	assert_int_equal(slot_of(""), 0);
}

static void
hash_tags_follow_the_first_brace_pair(void **state)
{
	assert_int_equal(slot_of("{user1000}.following"), 3443);
	assert_int_equal(
	    slot_of("{user1000}.following"), slot_of("{user1000}.followers"));
	/* An empty tag hashes the whole key. */
	assert_int_equal(slot_of("foo{}{bar}"), 8363);
	/* The tag ends at the first '}' after the first '{'. */
	assert_int_equal(slot_of("foo{{bar}}zap"), 4015);
	assert_int_equal(slot_of("foo{bar}{zap}"), slot_of("bar"));
	/* Unclosed or reversed braces: the whole key. */
	assert_int_equal(slot_of("{"), 4092);
	assert_int_equal(slot_of("}{"), 12793);
}

static void
keyslot_reads_only_len_bytes(void **state)
{
	/* No terminator is needed, and bytes after len do not count. */
	assert_int_equal(cluster_keyslot("foo{bar}", 3), slot_of("foo"));
	assert_int_equal(cluster_keyslot("a\0{b}", 5), slot_of("b"));
}

/* CLUSTER SHARDS of a 3-master cluster on 127.0.0.1:30001-30003. */
#define NODE(id, port, role, health)                                           \
	"*14\r\n$2\r\nid\r\n$40\r\n" id "\r\n$4\r\nport\r\n:" port             \
	"\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n$8\r\nendpoint\r\n$9\r\n127.0.0.1" \
	"\r\n$4\r\nrole\r\n" role "\r\n$18\r\nreplication-offset\r\n:0\r\n"    \
	"$6\r\nhealth\r\n" health "\r\n"
#define ID1 "227c1e79dc09246508bd25f73cb8934ca461e4db"
#define ID2 "bc658c0eed5e27d353fb423e231cf232082056bb"
#define ID3 "f3311c1ec56db312e80da6bce55e60d37948a195"
#define MASTER "$6\r\nmaster"
#define REPLICA "$7\r\nreplica"
#define ONLINE "$6\r\nonline"
#define FAIL "$4\r\nfail"

/* RESP fixtures read best one element per line. */
/* clang-format off */
static const char shards3[] =
    "*3\r\n"
    "*4\r\n$5\r\nslots\r\n*2\r\n:5461\r\n:10922\r\n$5\r\nnodes\r\n*1\r\n"
    NODE(ID2, "30002", MASTER, ONLINE)
    "*4\r\n$5\r\nslots\r\n*2\r\n:0\r\n:5460\r\n$5\r\nnodes\r\n*1\r\n"
    NODE(ID1, "30001", MASTER, ONLINE)
    "*4\r\n$5\r\nslots\r\n*2\r\n:10923\r\n:16383\r\n$5\r\nnodes\r\n*1\r\n"
    NODE(ID3, "30003", MASTER, ONLINE);
/* clang-format on */

static void
shards_reply_gives_three_masters(void **state)
{
	struct cluster_map m;
	redisReply *r = parse(shards3);
	char err[128] = "";

	cluster_map_init(&m);
	assert_int_equal(
	    cluster_map_from_shards(&m, r, "10.0.0.1", err, sizeof(err)), 0);
	assert_int_equal(m.nshards, 3);
	assert_int_equal(cluster_map_uncovered(&m), 0);
	unsigned a = cluster_map_find(&m, "127.0.0.1", 30001);
	unsigned b = cluster_map_find(&m, "127.0.0.1", 30002);
	unsigned c = cluster_map_find(&m, "127.0.0.1", 30003);
	assert_int_not_equal(a, CLUSTER_NO_SHARD);
	assert_int_equal(cluster_map_owner(&m, 0), a);
	assert_int_equal(cluster_map_owner(&m, 5460), a);
	assert_int_equal(cluster_map_owner(&m, 5461), b);
	assert_int_equal(cluster_map_owner(&m, 10922), b);
	assert_int_equal(cluster_map_owner(&m, 10923), c);
	assert_int_equal(cluster_map_owner(&m, slot_of("foo")), c);
	assert_int_equal(
	    cluster_map_owner(&m, CLUSTER_SLOTS), CLUSTER_NO_SHARD);
	assert_string_equal(m.shards[a].id, ID1);
	cluster_map_fini(&m);
	freeReplyObject(r);
}

static void
shards_reply_skips_replicas_and_failed_masters(void **state)
{
	/* Shard 1: replica listed first, then its master. Shard 2: the master
	 * failed and nothing took over yet. Shard 3: no slots at all. */
	/* clang-format off */
	static const char resp[] =
	    "*3\r\n"
	    "*4\r\n$5\r\nslots\r\n*4\r\n:0\r\n:99\r\n:200\r\n:299\r\n"
	    "$5\r\nnodes\r\n*2\r\n"
	    NODE(ID2, "30005", REPLICA, ONLINE)
	    NODE(ID1, "30001", MASTER, ONLINE)
	    "*4\r\n$5\r\nslots\r\n*2\r\n:100\r\n:199\r\n$5\r\nnodes\r\n*1\r\n"
	    NODE(ID3, "30003", MASTER, FAIL)
	    "*4\r\n$5\r\nslots\r\n*0\r\n$5\r\nnodes\r\n*1\r\n"
	    NODE(ID3, "30009", MASTER, ONLINE);
	/* clang-format on */
	struct cluster_map m;
	redisReply *r = parse(resp);
	char err[128] = "";

	cluster_map_init(&m);
	assert_int_equal(
	    cluster_map_from_shards(&m, r, NULL, err, sizeof(err)), 0);
	assert_int_equal(m.nshards, 1);
	assert_int_equal(m.shards[0].port, 30001);
	assert_int_equal(cluster_map_owner(&m, 99), 0);
	assert_int_equal(cluster_map_owner(&m, 250), 0);
	assert_int_equal(cluster_map_owner(&m, 150), CLUSTER_NO_SHARD);
	assert_int_equal(cluster_map_uncovered(&m), CLUSTER_SLOTS - 200);
	cluster_map_fini(&m);
	freeReplyObject(r);
}

static void
slots_reply_gives_the_same_map(void **state)
{
	static const char resp[] =
	    "*3\r\n*3\r\n:0\r\n:5460\r\n*4\r\n$9\r\n127.0.0.1\r\n:30001\r\n"
	    "$40\r\n" ID1 "\r\n*0\r\n"
	    "*3\r\n:5461\r\n:10922\r\n*4\r\n$9\r\n127.0.0.1\r\n:30002\r\n"
	    "$40\r\n" ID2 "\r\n*0\r\n"
	    "*4\r\n:10923\r\n:16383\r\n*4\r\n$0\r\n\r\n:30003\r\n"
	    "$40\r\n" ID3 "\r\n*0\r\n*3\r\n$9\r\n127.0.0.1\r\n:30006\r\n"
	    "$40\r\n" ID1 "\r\n";
	struct cluster_map m;
	redisReply *r = parse(resp);
	char err[128] = "";

	cluster_map_init(&m);
	assert_int_equal(
	    cluster_map_from_slots(&m, r, "10.0.0.9", err, sizeof(err)), 0);
	assert_int_equal(m.nshards, 3);
	assert_int_equal(cluster_map_uncovered(&m), 0);
	/* An empty endpoint means the node that answered. */
	unsigned c = cluster_map_find(&m, "10.0.0.9", 30003);
	assert_int_not_equal(c, CLUSTER_NO_SHARD);
	assert_int_equal(cluster_map_owner(&m, 16383), c);
	assert_string_equal(m.shards[c].id, ID3);
	/* The replica (30006) owns nothing. */
	assert_int_equal(
	    cluster_map_find(&m, "127.0.0.1", 30006), CLUSTER_NO_SHARD);
	cluster_map_fini(&m);
	freeReplyObject(r);
}

static void
bad_replies_are_refused_and_leave_an_empty_map(void **state)
{
	static const char *const bad_shards[] = {
	    "+OK\r\n",
	    "-ERR unknown subcommand 'SHARDS'\r\n",
	    "*1\r\n*2\r\n$5\r\nslots\r\n*2\r\n:0\r\n:1\r\n",
	    "*1\r\n*4\r\n$5\r\nslots\r\n*2\r\n:0\r\n:16384\r\n$5\r\nnodes\r\n"
	    "*1\r\n" NODE(ID1, "30001", MASTER, ONLINE),
	    "*1\r\n*4\r\n$5\r\nslots\r\n*2\r\n:9\r\n:3\r\n$5\r\nnodes\r\n"
	    "*1\r\n" NODE(ID1, "30001", MASTER, ONLINE),
	    "*1\r\n*4\r\n$5\r\nslots\r\n*2\r\n:0\r\n:1\r\n$5\r\nnodes\r\n"
	    "*1\r\n" NODE(ID1, "0", MASTER, ONLINE),
	    "*1\r\n*4\r\n$5\r\nslots\r\n*1\r\n:0\r\n$5\r\nnodes\r\n"
	    "*1\r\n" NODE(ID1, "30001", MASTER, ONLINE),
	};
	static const char *const bad_slots[] = {
	    "*1\r\n:3\r\n",
	    "*1\r\n*2\r\n:0\r\n:1\r\n",
	    "*1\r\n*3\r\n:0\r\n:1\r\n*1\r\n$1\r\nx\r\n",
	    "*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$1\r\nx\r\n:70000\r\n",
	    "*1\r\n*3\r\n$1\r\n0\r\n:1\r\n*2\r\n$1\r\nx\r\n:7000\r\n",
	};
	struct cluster_map m;
	char err[128];

	cluster_map_init(&m);
	for (size_t i = 0; i < sizeof(bad_shards) / sizeof(*bad_shards); i++) {
		redisReply *r = parse(bad_shards[i]);

		err[0] = '\0';
		assert_int_equal(
		    cluster_map_from_shards(&m, r, NULL, err, sizeof(err)), -1);
		assert_true(err[0] != '\0');
		assert_int_equal(m.nshards, 0);
		assert_int_equal(cluster_map_uncovered(&m), CLUSTER_SLOTS);
		freeReplyObject(r);
	}
	for (size_t i = 0; i < sizeof(bad_slots) / sizeof(*bad_slots); i++) {
		redisReply *r = parse(bad_slots[i]);

		err[0] = '\0';
		assert_int_equal(
		    cluster_map_from_slots(&m, r, NULL, err, sizeof(err)), -1);
		assert_true(err[0] != '\0');
		assert_int_equal(m.nshards, 0);
		freeReplyObject(r);
	}
	assert_int_equal(cluster_map_from_slots(&m, NULL, NULL, NULL, 0), -1);
	cluster_map_fini(&m);
}

static void
moved_and_ask_are_parsed(void **state)
{
	struct cluster_redirect r;
	const char *s;

	s = "MOVED 12182 127.0.0.1:30003";
	assert_int_equal(
	    cluster_redirect_parse(s, strlen(s), &r), CLUSTER_REDIRECT_MOVED);
	assert_int_equal(r.slot, 12182);
	assert_string_equal(r.host, "127.0.0.1");
	assert_int_equal(r.port, 30003);

	s = "ASK 0 redis-2.example:6379";
	assert_int_equal(
	    cluster_redirect_parse(s, strlen(s), &r), CLUSTER_REDIRECT_ASK);
	assert_int_equal(r.slot, 0);
	assert_string_equal(r.host, "redis-2.example");
	assert_int_equal(r.port, 6379);

	/* IPv6 as Redis prints it (no brackets), and with brackets. */
	s = "MOVED 16383 ::1:7002";
	assert_int_equal(
	    cluster_redirect_parse(s, strlen(s), &r), CLUSTER_REDIRECT_MOVED);
	assert_string_equal(r.host, "::1");
	assert_int_equal(r.port, 7002);
	s = "ASK 5 [fe80::1]:7003";
	assert_int_equal(
	    cluster_redirect_parse(s, strlen(s), &r), CLUSTER_REDIRECT_ASK);
	assert_string_equal(r.host, "fe80::1");
	assert_int_equal(r.port, 7003);

	/* An unknown endpoint: the node that answered. */
	s = "MOVED 7 :6380";
	assert_int_equal(
	    cluster_redirect_parse(s, strlen(s), &r), CLUSTER_REDIRECT_MOVED);
	assert_string_equal(r.host, "");
	assert_int_equal(r.port, 6380);

	/* Only len bytes count. */
	s = "MOVED 1 h:12345678";
	assert_int_equal(
	    cluster_redirect_parse(s, 14, &r), CLUSTER_REDIRECT_MOVED);
	assert_int_equal(r.port, 1234);
}

static void
other_errors_are_not_redirections(void **state)
{
	static const char *const bad[] = {
	    "ERR unknown command",
	    "CROSSSLOT Keys in request don't hash to the same slot",
	    "MOVED",
	    "MOVED 1",
	    "MOVED 16384 h:1",
	    "MOVED -1 h:1",
	    "MOVED x h:1",
	    "MOVED 1 h",
	    "MOVED 1 h:",
	    "MOVED 1 h:0",
	    "MOVED 1 h:65536",
	    "MOVED 1 h:12x",
	    "MOVED 1 [::1:5",
	    "MOVED 1 a b:5",
	    "MOVED  1 h:5",
	    "ASKING",
	    "TRYAGAIN Multiple keys request during rehashing of slot",
	};
	struct cluster_redirect r;

	memset(&r, 0x5a, sizeof(r));
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
		assert_int_equal(
		    cluster_redirect_parse(bad[i], strlen(bad[i]), &r),
		    CLUSTER_REDIRECT_NONE);
	/* out untouched */
	assert_int_equal(r.port, 0x5a5a);
}

static void
a_moved_slot_changes_owner_and_may_add_a_shard(void **state)
{
	struct cluster_map m;
	redisReply *r = parse(shards3);

	cluster_map_init(&m);
	assert_int_equal(cluster_map_from_shards(&m, r, NULL, NULL, 0), 0);
	unsigned b = cluster_map_find(&m, "127.0.0.1", 30002);
	unsigned foo = slot_of("foo");

	assert_int_equal(cluster_map_move(&m, foo, "127.0.0.1", 30002), b);
	assert_int_equal(cluster_map_owner(&m, foo), b);
	assert_int_equal(cluster_map_owner(&m, foo + 1),
	    cluster_map_find(&m, "127.0.0.1", 30003));
	unsigned d = cluster_map_move(&m, 5, "127.0.0.1", 30004);
	assert_int_equal(d, 3);
	assert_int_equal(m.nshards, 4);
	assert_int_equal(cluster_map_owner(&m, 5), 3);
	assert_int_equal(
	    cluster_map_move(&m, CLUSTER_SLOTS, "h", 1), CLUSTER_NO_SHARD);
	cluster_map_fini(&m);
	freeReplyObject(r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(crc16_matches_the_cluster_spec_check_value),
	    cmocka_unit_test(keyslots_match_redis),
	    cmocka_unit_test(hash_tags_follow_the_first_brace_pair),
	    cmocka_unit_test(keyslot_reads_only_len_bytes),
	    cmocka_unit_test(shards_reply_gives_three_masters),
	    cmocka_unit_test(shards_reply_skips_replicas_and_failed_masters),
	    cmocka_unit_test(slots_reply_gives_the_same_map),
	    cmocka_unit_test(bad_replies_are_refused_and_leave_an_empty_map),
	    cmocka_unit_test(moved_and_ask_are_parsed),
	    cmocka_unit_test(other_errors_are_not_redirections),
	    cmocka_unit_test(a_moved_slot_changes_owner_and_may_add_a_shard),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
