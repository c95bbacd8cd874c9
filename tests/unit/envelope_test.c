/*
 * envelope_test.c - the bus and upstream envelopes: round trips of every
 * kind, batches, truncation at every offset, random input, wrong types in
 * every field, version and kind skipping, trailing fields and limits.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "envelope.h"

#define S(lit)                         \
	(struct env_str)               \
	{                              \
		(lit), sizeof(lit) - 1 \
	}
#define NONE             \
	(struct env_str) \
	{                \
		NULL, 0  \
	}

static void
assert_str(struct env_str got, struct env_str want)
{
	if (want.p == NULL) {
		assert_null(got.p);
		assert_int_equal(got.len, 0);
		return;
	}
	assert_non_null(got.p);
	assert_int_equal(got.len, want.len);
	assert_memory_equal(got.p, want.p, want.len);
}

static const struct up_worker W = {3, 17, 4242};

static void
assert_worker(const struct up_worker *w)
{
	assert_int_equal(w->slot, W.slot);
	assert_int_equal(w->gen, W.gen);
	assert_int_equal(w->pid, W.pid);
}

/* ---- a fixture of every kind, encoded into one buffer ---- */

static const struct env_str sync_addrs[] = {
    {"user:1", 6}, {"channel:news", 12}, {"all", 3}};
static const struct up_counter sync_users[] = {{{"1", 1}, 2}, {{"u2", 2}, 1}};
static const struct up_counter counters[] = {
    {{"sent", 4}, 10}, {{"dropped_slow", 12}, UINT64_MAX}, {{"", 0}, 0}};

static const struct bus_msg msg1 = {.epoch = UINT64_MAX,
    .seq = 1,
    .to = {"user:42", 7},
    .cls = PAYLOAD_JSON,
    .data = {"{\"a\":1}", 7},
    .from = {"alice", 5},
    .id = {"m-1", 3},
    .ts = 1700000000000ull};
static const struct bus_msg msg2 = {.epoch = 9,
    .seq = 1ull << 40,
    .to = {"all", 3},
    .cls = PAYLOAD_BINARY,
    .data = {"\0\xff\x01", 3},
    .from = {NULL, 0},
    .id = {NULL, 0},
    .ts = 0};
static const struct bus_heartbeat hb1 = {7, 1234, {"node-a", 6}, true};
static const struct bus_ack ack1 = {7, 3, 17, 99, ACK_FAILED, {"node-a", 6}};

static void
encode_bus_all(msgpack_sbuffer *sb)
{
	assert_int_equal(bus_encode_msg(sb, &msg1), 0);
	assert_int_equal(bus_encode_heartbeat(sb, &hb1), 0);
	assert_int_equal(bus_encode_ack(sb, &ack1), 0);
	assert_int_equal(bus_encode_msg(sb, &msg2), 0);
}

static void
check_msg(const struct bus_msg *got, const struct bus_msg *want)
{
	assert_true(got->epoch == want->epoch);
	assert_true(got->seq == want->seq);
	assert_str(got->to, want->to);
	assert_int_equal(got->cls, want->cls);
	assert_str(got->data, want->data);
	assert_str(got->from, want->from);
	assert_str(got->id, want->id);
	assert_true(got->ts == want->ts);
}

/* Checks the i-th envelope of encode_bus_all(). */
static void
check_bus(int i, const struct bus_env *e)
{
	switch (i) {
	case 0:
		assert_int_equal(e->kind, BUS_MSG);
		check_msg(&e->u.msg, &msg1);
		break;
	case 1:
		assert_int_equal(e->kind, BUS_HEARTBEAT);
		assert_true(e->u.hb.epoch == hb1.epoch);
		assert_true(e->u.hb.last_seq == hb1.last_seq);
		assert_str(e->u.hb.node, hb1.node);
		assert_true(e->u.hb.redis_up);
		break;
	case 2:
		assert_int_equal(e->kind, BUS_ACK);
		assert_true(e->u.ack.epoch == ack1.epoch);
		assert_int_equal(e->u.ack.slot, ack1.slot);
		assert_int_equal(e->u.ack.gen, ack1.gen);
		assert_true(e->u.ack.req_id == ack1.req_id);
		assert_int_equal(e->u.ack.status, ACK_FAILED);
		assert_str(e->u.ack.node, ack1.node);
		break;
	case 3:
		assert_int_equal(e->kind, BUS_MSG);
		check_msg(&e->u.msg, &msg2);
		break;
	default:
		fail();
	}
}

#define N_BUS 4

static void
encode_up_all(msgpack_sbuffer *sb)
{
	struct up_interest add = {77, {"channel:news", 12}};
	struct up_interest del = {0, {"user:1", 6}};
	struct up_sync sync = {5, 3, sync_addrs, 2, sync_users};
	struct up_publish pub = {
	    {"channel:x", 9}, {"bob", 3}, {"[1,2]", 5}, {NULL, 0}};
	struct up_send send = {{"bob", 3}, {"n.1.2.3", 7}, {"\"hi\"", 4}};
	struct up_event ev = {
	    {"disconnect", 10}, {"bob", 3}, {"n.1.2.3", 7}, {"slow", 4}};
	struct up_counters c = {3, counters};
	struct up_sync empty = {0, 0, NULL, 0, NULL};

	assert_int_equal(up_encode_interest(sb, &W, UP_INTEREST_ADD, &add), 0);
	assert_int_equal(up_encode_interest(sb, &W, UP_INTEREST_DEL, &del), 0);
	assert_int_equal(up_encode_sync(sb, &W, &sync), 0);
	assert_int_equal(up_encode_publish(sb, &W, &pub), 0);
	assert_int_equal(up_encode_send(sb, &W, &send), 0);
	assert_int_equal(up_encode_event(sb, &W, &ev), 0);
	assert_int_equal(up_encode_counters(sb, &W, &c), 0);
	assert_int_equal(up_encode_sync(sb, &W, &empty), 0);
	assert_int_equal(up_encode_bye(sb, &W), 0);
}

#define N_UP 9

static void
check_up(int i, const struct up_env *e)
{
	assert_worker(&e->w);
	switch (i) {
	case 0:
		assert_int_equal(e->kind, UP_INTEREST_ADD);
		assert_true(e->u.interest.req_id == 77);
		assert_str(e->u.interest.addr, S("channel:news"));
		break;
	case 1:
		assert_int_equal(e->kind, UP_INTEREST_DEL);
		assert_true(e->u.interest.req_id == 0);
		assert_str(e->u.interest.addr, S("user:1"));
		break;
	case 2:
		assert_int_equal(e->kind, UP_INTEREST_SYNC);
		assert_true(e->u.sync.epoch == 5);
		assert_int_equal(e->u.sync.n_addrs, 3);
		for (int k = 0; k < 3; k++)
			assert_str(e->u.sync.addrs[k], sync_addrs[k]);
		assert_int_equal(e->u.sync.n_users, 2);
		for (int k = 0; k < 2; k++) {
			assert_str(e->u.sync.users[k].name, sync_users[k].name);
			assert_true(
			    e->u.sync.users[k].value == sync_users[k].value);
		}
		break;
	case 3:
		assert_int_equal(e->kind, UP_PUBLISH);
		assert_str(e->u.publish.to, S("channel:x"));
		assert_str(e->u.publish.from, S("bob"));
		assert_str(e->u.publish.data, S("[1,2]"));
		assert_str(e->u.publish.id, NONE);
		break;
	case 4:
		assert_int_equal(e->kind, UP_SEND);
		assert_str(e->u.send.user, S("bob"));
		assert_str(e->u.send.conn, S("n.1.2.3"));
		assert_str(e->u.send.data, S("\"hi\""));
		break;
	case 5:
		assert_int_equal(e->kind, UP_EVENT);
		assert_str(e->u.event.type, S("disconnect"));
		assert_str(e->u.event.user, S("bob"));
		assert_str(e->u.event.conn, S("n.1.2.3"));
		assert_str(e->u.event.reason, S("slow"));
		break;
	case 6:
		assert_int_equal(e->kind, UP_COUNTERS);
		assert_int_equal(e->u.counters.n, 3);
		for (int k = 0; k < 3; k++) {
			assert_str(
			    e->u.counters.items[k].name, counters[k].name);
			assert_true(
			    e->u.counters.items[k].value == counters[k].value);
		}
		break;
	case 7:
		assert_int_equal(e->kind, UP_INTEREST_SYNC);
		assert_int_equal(e->u.sync.n_addrs, 0);
		assert_int_equal(e->u.sync.n_users, 0);
		break;
	case 8:
		assert_int_equal(e->kind, UP_BYE);
		break;
	default:
		fail();
	}
}

/* Reads what encode_bus_all wrote, from r's position to the end. */
static void
read_bus_all(struct env_reader *r)
{
	struct bus_env e;

	for (int i = 0; i < N_BUS; i++) {
		assert_int_equal(bus_reader_next(r, &e), ENV_OK);
		check_bus(i, &e);
	}
	assert_int_equal(bus_reader_next(r, &e), ENV_END);
}

/* Reads what encode_up_all wrote, from r's position to the end. */
static void
read_up_all(struct env_reader *r)
{
	struct up_env u;

	for (int i = 0; i < N_UP; i++) {
		assert_int_equal(up_reader_next(r, &u), ENV_OK);
		check_up(i, &u);
	}
	assert_int_equal(up_reader_next(r, &u), ENV_END);
}

/* ---- tests ---- */

static void
every_bus_kind_round_trips_in_one_buffer(void **state)
{
	msgpack_sbuffer sb;
	struct env_reader r;
	struct bus_env e;

	msgpack_sbuffer_init(&sb);
	encode_bus_all(&sb);
	env_reader_init(&r, sb.data, sb.size);
	read_bus_all(&r);
	assert_int_equal(bus_reader_next(&r, &e), ENV_END);
	env_reader_fini(&r);
	msgpack_sbuffer_destroy(&sb);
}

static void
every_up_kind_round_trips_in_one_buffer(void **state)
{
	msgpack_sbuffer sb;
	struct env_reader r;

	msgpack_sbuffer_init(&sb);
	encode_up_all(&sb);
	env_reader_init(&r, sb.data, sb.size);
	read_up_all(&r);
	env_reader_fini(&r);
	msgpack_sbuffer_destroy(&sb);
}

static void
an_empty_buffer_is_the_end(void **state)
{
	struct env_reader r;
	struct bus_env e;
	struct up_env u;

	env_reader_init(&r, NULL, 0);
	assert_int_equal(bus_reader_next(&r, &e), ENV_END);
	assert_int_equal(up_reader_next(&r, &u), ENV_END);
	env_reader_fini(&r);
}

static void
empty_strings_decode_as_non_null(void **state)
{
	msgpack_sbuffer sb;
	struct env_reader r;
	struct bus_env e;
	struct bus_msg m = {1, 1, NONE, PAYLOAD_TEXT, NONE, S(""), NONE, 0};

	msgpack_sbuffer_init(&sb);
	assert_int_equal(bus_encode_msg(&sb, &m), 0);
	env_reader_init(&r, sb.data, sb.size);
	assert_int_equal(bus_reader_next(&r, &e), ENV_OK);
	assert_non_null(e.u.msg.to.p);
	assert_int_equal(e.u.msg.to.len, 0);
	assert_non_null(e.u.msg.data.p);
	assert_int_equal(e.u.msg.data.len, 0);
	assert_non_null(e.u.msg.from.p); /* "" is not nil */
	assert_int_equal(e.u.msg.from.len, 0);
	assert_null(e.u.msg.id.p);
	env_reader_fini(&r);
	msgpack_sbuffer_destroy(&sb);
}

/* Every prefix of a batch: the complete envelopes decode, then either the
 * end (at a boundary) or ENV_TRUNCATED, then the end. */
static void
a_batch_truncated_at_every_offset_decodes_its_complete_envelopes(void **state)
{
	msgpack_sbuffer sb;
	size_t bounds[N_BUS + N_UP + 1];
	int nb = 0;

	msgpack_sbuffer_init(&sb);
	bounds[nb++] = 0;
	assert_int_equal(bus_encode_msg(&sb, &msg1), 0);
	bounds[nb++] = sb.size;
	assert_int_equal(bus_encode_heartbeat(&sb, &hb1), 0);
	bounds[nb++] = sb.size;
	assert_int_equal(bus_encode_ack(&sb, &ack1), 0);
	bounds[nb++] = sb.size;
	assert_int_equal(bus_encode_msg(&sb, &msg2), 0);
	bounds[nb++] = sb.size;
	for (size_t cut = 0; cut <= sb.size; cut++) {
		struct env_reader r;
		struct bus_env e;
		int complete = 0, rc;
		bool at_bound = false;

		for (int k = 1; k < nb; k++)
			if (bounds[k] <= cut)
				complete = k;
		for (int k = 0; k < nb; k++)
			at_bound |= bounds[k] == cut;
		/* Copy so that ASan sees any read past the cut. */
		char *copy = malloc(cut ? cut : 1);
		assert_non_null(copy);
		memcpy(copy, sb.data, cut);
		env_reader_init(&r, copy, cut);
		for (int k = 0; k < complete; k++) {
			assert_int_equal(bus_reader_next(&r, &e), ENV_OK);
			check_bus(k, &e);
		}
		rc = bus_reader_next(&r, &e);
		assert_int_equal(rc, at_bound ? ENV_END : ENV_TRUNCATED);
		assert_int_equal(bus_reader_next(&r, &e), ENV_END);
		env_reader_fini(&r);
		free(copy);
	}
	msgpack_sbuffer_destroy(&sb);
}

static void
an_up_batch_truncated_at_every_offset_never_decodes_a_partial_one(void **state)
{
	msgpack_sbuffer sb;

	msgpack_sbuffer_init(&sb);
	encode_up_all(&sb);
	for (size_t cut = 0; cut < sb.size; cut++) {
		struct env_reader r;
		struct up_env e;
		int i = 0, rc;
		char *copy = malloc(cut ? cut : 1);

		assert_non_null(copy);
		memcpy(copy, sb.data, cut);
		env_reader_init(&r, copy, cut);
		while ((rc = up_reader_next(&r, &e)) == ENV_OK)
			check_up(i++, &e);
		assert_true(rc == ENV_END || rc == ENV_TRUNCATED);
		assert_true(i < N_UP);
		assert_int_equal(up_reader_next(&r, &e), ENV_END);
		env_reader_fini(&r);
		free(copy);
	}
	msgpack_sbuffer_destroy(&sb);
}

static void
random_buffers_never_crash_and_always_end(void **state)
{
	unsigned char buf[256];
	uint32_t x = 12345;

	for (int iter = 0; iter < 20000; iter++) {
		size_t len = (size_t)(iter % 64) + 1;
		struct env_reader r;
		struct bus_env e;
		struct up_env u;
		int n;

		for (size_t i = 0; i < len; i++) {
			x = x * 1103515245 + 12345;
			buf[i] = (unsigned char)(x >> 16);
		}
		/* Bias some toward our shape: [1, kind, ...]. */
		if (iter % 3 == 0 && len > 3) {
			buf[0] = (unsigned char)(0x90 | (buf[0] & 0x0f));
			buf[1] = 1;
			buf[2] = (unsigned char)(buf[2] % 10);
		}
		env_reader_init(&r, buf, len);
		for (n = 0; n < 300 && bus_reader_next(&r, &e) != ENV_END; n++)
			;
		assert_true(n < 300);
		env_reader_reset(&r, buf, len);
		for (n = 0; n < 300 && up_reader_next(&r, &u) != ENV_END; n++)
			;
		assert_true(n < 300);
		env_reader_fini(&r);
	}
}

/* ---- hand-built envelopes: a field list packed as given ---- */

/* Field kinds: u uint, i negative int, s str, b bin, n nil, B bool,
 * f float, a array of one str, m map of one str -> uint, x ext,
 * U a uint over 32 bits. */
struct field {
	char t;
	uint64_t u;
	const char *s;
};

static void
pack_field(msgpack_packer *pk, const struct field *f)
{
	const char *s = f->s != NULL ? f->s : "x";

	switch (f->t) {
	case 'u':
		msgpack_pack_uint64(pk, f->u);
		break;
	case 'U':
		msgpack_pack_uint64(pk, 1ull << 32);
		break;
	case 'i':
		msgpack_pack_int64(pk, -1);
		break;
	case 's':
		msgpack_pack_str_with_body(pk, s, strlen(s));
		break;
	case 'b':
		msgpack_pack_bin_with_body(pk, s, strlen(s));
		break;
	case 'n':
		msgpack_pack_nil(pk);
		break;
	case 'B':
		msgpack_pack_true(pk);
		break;
	case 'f':
		msgpack_pack_double(pk, 1.5);
		break;
	case 'a':
		msgpack_pack_array(pk, 1);
		msgpack_pack_str_with_body(pk, "user:1", 6);
		break;
	case 'm':
		msgpack_pack_map(pk, 1);
		msgpack_pack_str_with_body(pk, "k", 1);
		msgpack_pack_uint64(pk, 1);
		break;
	case 'x':
		msgpack_pack_ext_with_body(pk, "ab", 2, 5);
		break;
	default:
		fail();
	}
}

static void
pack_fields(msgpack_sbuffer *sb, const struct field *f, size_t n)
{
	msgpack_packer pk;

	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, n);
	for (size_t i = 0; i < n; i++)
		pack_field(&pk, &f[i]);
}

/* A valid envelope's fields and, per field, the kinds it accepts. */
struct tmpl {
	bool up;
	size_t n;
	struct field f[10];
	const char *ok[10];
};

#define U(v)                   \
	{                      \
		'u', (v), NULL \
	}
#define STR(v)              \
	{                   \
		's', 0, (v) \
	}
#define BIN(v)              \
	{                   \
		'b', 0, (v) \
	}
#define NIL                  \
	{                    \
		'n', 0, NULL \
	}
#define BOOL                 \
	{                    \
		'B', 0, NULL \
	}
#define ARR                  \
	{                    \
		'a', 0, NULL \
	}
#define MAP                  \
	{                    \
		'm', 0, NULL \
	}

static const struct tmpl tmpls[] = {
    {false, 10,
	{U(1), U(BUS_MSG), U(5), U(6), STR("user:1"), U(1), BIN("hi"),
	    STR("bob"), STR("id"), U(7)},
	{"u", "u", "u", "u", "s", "u", "bs", "sn", "sn", "un"}},
    {false, 6, {U(1), U(BUS_HEARTBEAT), U(5), U(6), STR("node"), BOOL},
	{"u", "u", "u", "u", "s", "B"}},
    {false, 8, {U(1), U(BUS_ACK), U(5), U(1), U(1), U(9), U(0), STR("node")},
	{"u", "u", "u", "u", "u", "u", "u", "s"}},
    {true, 7, {U(1), U(UP_INTEREST_ADD), U(1), U(2), U(3), U(4), STR("user:1")},
	{"u", "u", "u", "u", "u", "u", "s"}},
    {true, 6, {U(1), U(UP_INTEREST_DEL), U(1), U(2), U(3), STR("user:1")},
	{"u", "u", "u", "u", "u", "s"}},
    {true, 8, {U(1), U(UP_INTEREST_SYNC), U(1), U(2), U(3), U(4), ARR, MAP},
	{"u", "u", "u", "u", "u", "u", "a", "m"}},
    {true, 9,
	{U(1), U(UP_PUBLISH), U(1), U(2), U(3), STR("channel:c"), STR("bob"),
	    BIN("1"), STR("id")},
	{"u", "u", "u", "u", "u", "s", "sn", "bs", "sn"}},
    {true, 8,
	{U(1), U(UP_SEND), U(1), U(2), U(3), STR("bob"), STR("c1"), BIN("1")},
	{"u", "u", "u", "u", "u", "s", "s", "bs"}},
    {true, 9,
	{U(1), U(UP_EVENT), U(1), U(2), U(3), STR("connect"), STR("bob"),
	    STR("c1"), STR("r")},
	{"u", "u", "u", "u", "u", "s", "s", "s", "sn"}},
    {true, 6, {U(1), U(UP_COUNTERS), U(1), U(2), U(3), MAP},
	{"u", "u", "u", "u", "u", "m"}},
    {true, 5, {U(1), U(UP_BYE), U(1), U(2), U(3)}, {"u", "u", "u", "u", "u"}},
};

/* Decodes buf with the template's reader; returns the first result and
 * checks what follows it (one valid BYE / HEARTBEAT sentinel). */
static int
decode_one(bool up, const char *buf, size_t len, int *second)
{
	struct env_reader r;
	struct bus_env e;
	struct up_env u;
	int rc;

	env_reader_init(&r, buf, len);
	rc = up ? up_reader_next(&r, &u) : bus_reader_next(&r, &e);
	*second = up ? up_reader_next(&r, &u) : bus_reader_next(&r, &e);
	if (*second == ENV_OK)
		assert_int_equal(up ? (int)u.kind : (int)e.kind,
		    up ? UP_BYE : BUS_HEARTBEAT);
	assert_int_equal(
	    up ? up_reader_next(&r, &u) : bus_reader_next(&r, &e), ENV_END);
	env_reader_fini(&r);
	return rc;
}

static void
append_sentinel(msgpack_sbuffer *sb, bool up)
{
	if (up)
		assert_int_equal(up_encode_bye(sb, &W), 0);
	else
		assert_int_equal(bus_encode_heartbeat(sb, &hb1), 0);
}

/* Appends the sentinel to sb, decodes it, checks the first and second
 * results and frees sb. */
static void
expect_decode(bool up, msgpack_sbuffer *sb, int want, int want_second)
{
	int second;

	append_sentinel(sb, up);
	assert_int_equal(decode_one(up, sb->data, sb->size, &second), want);
	assert_int_equal(second, want_second);
	msgpack_sbuffer_destroy(sb);
}

static void
templates_decode(void **state)
{
	for (size_t t = 0; t < sizeof(tmpls) / sizeof(tmpls[0]); t++) {
		msgpack_sbuffer sb;

		msgpack_sbuffer_init(&sb);
		pack_fields(&sb, tmpls[t].f, tmpls[t].n);
		expect_decode(tmpls[t].up, &sb, ENV_OK, ENV_OK);
	}
}

/* Each field of each kind replaced by every msgpack type: accepted only
 * when the schema allows that type; a rejection stops the reader. */
static void
wrong_types_in_every_field_are_malformed(void **state)
{
	static const char kinds[] = "uiUsbnBfamx";

	for (size_t t = 0; t < sizeof(tmpls) / sizeof(tmpls[0]); t++) {
		const struct tmpl *tp = &tmpls[t];

		for (size_t i = 0; i < tp->n; i++) {
			for (const char *k = kinds; *k != '\0'; k++) {
				struct field f[10];
				msgpack_sbuffer sb;
				int rc, second, want;

				memcpy(f, tp->f, sizeof(f));
				f[i].t = *k;
				f[i].u = i == 0 ? 1 : i == 1 ? tp->f[1].u : 1;
				f[i].s = NULL;
				msgpack_sbuffer_init(&sb);
				pack_fields(&sb, f, tp->n);
				append_sentinel(&sb, tp->up);
				rc = decode_one(
				    tp->up, sb.data, sb.size, &second);
				want = strchr(tp->ok[i], *k) != NULL
					   ? ENV_OK
					   : ENV_MALFORMED;
				/* A uint over 32 bits fits u64 fields only. */
				if (*k == 'U' && strchr(tp->ok[i], 'u') != NULL)
					want =
					    (i >= 2 && tp->up && i <= 4) ||
						    (!tp->up &&
							tp->f[1].u == BUS_ACK &&
							(i == 3 || i == 4 ||
							    i == 6))
						? ENV_MALFORMED
						: ENV_OK;
				/* version 2^32 is an unknown version */
				if (*k == 'U' && i == 0)
					want = ENV_VERSION_UNKNOWN;
				/* kind 2^32 is an unknown kind */
				if (*k == 'U' && i == 1)
					want = ENV_KIND_UNKNOWN;
				/* cls and status as 2^32: out of range */
				if (!tp->up && *k == 'U' &&
				    ((tp->f[1].u == BUS_MSG && i == 5)))
					want = ENV_MALFORMED;
				if (rc != want)
					print_error("tmpl %zu field %zu "
						    "kind %c: %s\n",
					    t, i, *k, env_strerror(rc));
				assert_int_equal(rc, want);
				assert_int_equal(second,
				    rc == ENV_MALFORMED ? ENV_END : ENV_OK);
				msgpack_sbuffer_destroy(&sb);
			}
		}
	}
}

static void
missing_fields_are_malformed(void **state)
{
	for (size_t t = 0; t < sizeof(tmpls) / sizeof(tmpls[0]); t++) {
		for (size_t n = 0; n < tmpls[t].n; n++) {
			msgpack_sbuffer sb;

			msgpack_sbuffer_init(&sb);
			pack_fields(&sb, tmpls[t].f, n);
			expect_decode(tmpls[t].up, &sb, ENV_MALFORMED, ENV_END);
		}
	}
}

static void
extra_trailing_fields_are_accepted(void **state)
{
	for (size_t t = 0; t < sizeof(tmpls) / sizeof(tmpls[0]); t++) {
		struct field f[10];
		msgpack_sbuffer sb;
		msgpack_packer pk;

		memcpy(f, tmpls[t].f, sizeof(f));
		msgpack_sbuffer_init(&sb);
		msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
		msgpack_pack_array(&pk, tmpls[t].n + 3);
		for (size_t i = 0; i < tmpls[t].n; i++)
			pack_field(&pk, &f[i]);
		msgpack_pack_map(&pk, 1); /* a nested future field */
		msgpack_pack_str_with_body(&pk, "new", 3);
		msgpack_pack_array(&pk, 2);
		msgpack_pack_double(&pk, 2.5);
		msgpack_pack_ext_with_body(&pk, "abcd", 4, -1);
		msgpack_pack_nil(&pk);
		msgpack_pack_int64(&pk, -7);
		expect_decode(tmpls[t].up, &sb, ENV_OK, ENV_OK);
	}
}

static void
an_unknown_version_is_skipped_and_reading_continues(void **state)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	struct env_reader r;
	struct bus_env e;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	/* version 2, with a shape version 1 would reject */
	msgpack_pack_array(&pk, 3);
	msgpack_pack_uint64(&pk, 2);
	msgpack_pack_str_with_body(&pk, "whatever", 8);
	msgpack_pack_map(&pk, 0);
	/* version 0, and a bare [7] */
	msgpack_pack_array(&pk, 2);
	msgpack_pack_uint64(&pk, 0);
	msgpack_pack_uint64(&pk, 1);
	msgpack_pack_array(&pk, 1);
	msgpack_pack_uint64(&pk, 7);
	encode_bus_all(&sb);
	env_reader_init(&r, sb.data, sb.size);
	assert_int_equal(bus_reader_next(&r, &e), ENV_VERSION_UNKNOWN);
	assert_int_equal(bus_reader_next(&r, &e), ENV_VERSION_UNKNOWN);
	assert_int_equal(bus_reader_next(&r, &e), ENV_VERSION_UNKNOWN);
	read_bus_all(&r);
	env_reader_fini(&r);
	msgpack_sbuffer_destroy(&sb);
}

static void
an_unknown_kind_is_skipped_and_reading_continues(void **state)
{
	static const uint64_t bad[] = {0, 5, 9, 255, UINT64_MAX};
	msgpack_sbuffer sb;
	msgpack_packer pk;
	struct env_reader r;
	struct bus_env e;
	struct up_env u;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	for (size_t i = 0; i < 5; i++) {
		msgpack_pack_array(&pk, 3);
		msgpack_pack_uint64(&pk, 1);
		msgpack_pack_uint64(&pk, bad[i]);
		msgpack_pack_str_with_body(&pk, "x", 1);
	}
	encode_bus_all(&sb);
	env_reader_init(&r, sb.data, sb.size);
	for (size_t i = 0; i < 5; i++)
		assert_int_equal(bus_reader_next(&r, &e), ENV_KIND_UNKNOWN);
	read_bus_all(&r);
	env_reader_fini(&r);
	msgpack_sbuffer_destroy(&sb);

	/* Upstream: kinds 0 and 10+ unknown. */
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, 2);
	msgpack_pack_uint64(&pk, 1);
	msgpack_pack_uint64(&pk, 10);
	msgpack_pack_array(&pk, 2);
	msgpack_pack_uint64(&pk, 1);
	msgpack_pack_uint64(&pk, 0);
	encode_up_all(&sb);
	env_reader_init(&r, sb.data, sb.size);
	assert_int_equal(up_reader_next(&r, &u), ENV_KIND_UNKNOWN);
	assert_int_equal(up_reader_next(&r, &u), ENV_KIND_UNKNOWN);
	read_up_all(&r);
	env_reader_fini(&r);
	msgpack_sbuffer_destroy(&sb);
}

static void
non_arrays_and_bad_heads_stop_the_reader(void **state)
{
	static const struct {
		const char *buf;
		size_t len;
		int want;
	} cases[] = {
	    {"\x01", 1, ENV_MALFORMED},                 /* an int */
	    {"\x80", 1, ENV_MALFORMED},                 /* {} */
	    {"\x90", 1, ENV_MALFORMED},                 /* [] */
	    {"\x91\x01", 2, ENV_MALFORMED},             /* [1] */
	    {"\x92\xa1x\x01", 4, ENV_MALFORMED},        /* ["x", 1] */
	    {"\x92\xff\x01", 3, ENV_MALFORMED},         /* [-1, 1] */
	    {"\x92\x01\xff", 3, ENV_MALFORMED},         /* [1, -1] */
	    {"\x92\x01\xc0", 3, ENV_MALFORMED},         /* [1, nil] */
	    {"\xc1", 1, ENV_MALFORMED},                 /* never used */
	    {"\x92\x01\xc1", 3, ENV_MALFORMED},         /* inside */
	    {"\x92\x01", 2, ENV_TRUNCATED},             /* short */
	    {"\xdd\xff\xff\xff\xff", 5, ENV_MALFORMED}, /* huge array */
	    {"\xdd\x00\x0f\x42\x40", 5, ENV_TRUNCATED}, /* 10^6, no items */
	    {"\xdf\x00\x0f\x42\x41", 5, ENV_MALFORMED}, /* 10^6 + 1 pairs */
	    {"\xdb\xff\xff\xff\xff", 5, ENV_TRUNCATED}, /* str 4 GiB */
	    {"\xc9\xff\xff\xff\xff", 5, ENV_TRUNCATED}, /* ext 4 GiB */
	    {"\xd8\x01", 2, ENV_TRUNCATED},             /* fixext 16 */
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		msgpack_sbuffer sb;
		struct env_reader r;
		struct bus_env e;
		struct up_env u;

		msgpack_sbuffer_init(&sb);
		msgpack_sbuffer_write(&sb, cases[i].buf, cases[i].len);
		/* Valid envelopes after it must not be reached. */
		if (cases[i].want != ENV_TRUNCATED)
			encode_bus_all(&sb);
		env_reader_init(&r, sb.data, sb.size);
		assert_int_equal(bus_reader_next(&r, &e), cases[i].want);
		assert_int_equal(bus_reader_next(&r, &e), ENV_END);
		env_reader_reset(&r, sb.data, sb.size);
		assert_int_equal(up_reader_next(&r, &u), cases[i].want);
		assert_int_equal(up_reader_next(&r, &u), ENV_END);
		env_reader_fini(&r);
		msgpack_sbuffer_destroy(&sb);
	}
}

static void
deep_nesting_is_malformed(void **state)
{
	char buf[64];
	size_t n = 0;
	size_t end;

	/* [1, 1, [[[...]]]] nested 20 deep in a trailing field. */
	buf[n++] = (char)0x93;
	buf[n++] = 1;
	buf[n++] = 1;
	for (int i = 0; i < 20; i++)
		buf[n++] = (char)0x91;
	buf[n++] = (char)0xc0;
	assert_int_equal(env_scan(buf, n, 0, &end), ENV_MALFORMED);
	/* 15 levels under the envelope: 16 in all, the limit */
	n = 3;
	for (int i = 0; i < ENV_DEPTH_MAX - 1; i++)
		buf[n++] = (char)0x91;
	buf[n++] = (char)0xc0;
	assert_int_equal(env_scan(buf, n, 0, &end), ENV_OK);
	assert_int_equal(end, n);
	buf[2] = (char)0x91; /* one more */
	memmove(buf + 3, buf + 2, n - 2);
	buf[2] = 1;
	n++;
	assert_int_equal(env_scan(buf, n, 0, &end), ENV_MALFORMED);
}

static void
oversize_fields_are_refused_by_encoders_and_decoders(void **state)
{
	static char big[ENV_ADDR_MAX + 2];
	msgpack_sbuffer sb;
	struct bus_msg m = msg1;
	struct bus_heartbeat h = hb1;
	struct up_event ev = {S("connect"), S("u"), S("c"), NONE};
	struct up_counter c1 = {{big, ENV_ID_MAX + 1}, 1};
	struct up_counters cs = {1, &c1};
	struct up_sync sy = {
	    1, 1, &(struct env_str){big, ENV_ADDR_MAX + 1}, 0, NULL};
	struct up_interest in = {1, {big, ENV_ADDR_MAX + 1}};
	size_t before;

	memset(big, 'a', sizeof(big));
	msgpack_sbuffer_init(&sb);
	encode_bus_all(&sb);
	before = sb.size;

	m.to = (struct env_str){big, ENV_ADDR_MAX + 1};
	assert_int_equal(bus_encode_msg(&sb, &m), -1);
	m.to = (struct env_str){big, ENV_ADDR_MAX};
	m.from = (struct env_str){big, ENV_ID_MAX + 1};
	assert_int_equal(bus_encode_msg(&sb, &m), -1);
	m.from = msg1.from;
	m.id = (struct env_str){big, ENV_ID_MAX + 1};
	assert_int_equal(bus_encode_msg(&sb, &m), -1);
	m.id = msg1.id;
	m.cls = (enum payload_class)3;
	assert_int_equal(bus_encode_msg(&sb, &m), -1);
	m.cls = PAYLOAD_JSON;
	m.data = (struct env_str){NULL, 5};
	assert_int_equal(bus_encode_msg(&sb, &m), -1);
	m.data = (struct env_str){big, ENV_DATA_MAX + 1u};
	assert_int_equal(bus_encode_msg(&sb, &m), -1);
	h.node = (struct env_str){big, ENV_ID_MAX + 1};
	assert_int_equal(bus_encode_heartbeat(&sb, &h), -1);
	ev.reason = (struct env_str){big, ENV_ID_MAX + 1};
	assert_int_equal(up_encode_event(&sb, &W, &ev), -1);
	assert_int_equal(up_encode_counters(&sb, &W, &cs), -1);
	assert_int_equal(up_encode_sync(&sb, &W, &sy), -1);
	assert_int_equal(up_encode_interest(&sb, &W, UP_INTEREST_ADD, &in), -1);
	in.addr.len = ENV_ADDR_MAX;
	assert_int_equal(
	    up_encode_interest(&sb, &W, (enum up_kind)UP_SEND, &in), -1);
	/* Nothing was left behind: the buffer still decodes cleanly. */
	assert_int_equal(sb.size, before);
	{
		struct env_reader r;
		struct bus_env e;

		env_reader_init(&r, sb.data, sb.size);
		for (int i = 0; i < N_BUS; i++)
			assert_int_equal(bus_reader_next(&r, &e), ENV_OK);
		assert_int_equal(bus_reader_next(&r, &e), ENV_END);
		env_reader_fini(&r);
	}

	/* Limits are inclusive: exactly at the limit round-trips. */
	m = msg1;
	m.to = (struct env_str){big, ENV_ADDR_MAX};
	m.from = (struct env_str){big, ENV_ID_MAX};
	m.id = (struct env_str){big, ENV_ID_MAX};
	msgpack_sbuffer_clear(&sb);
	assert_int_equal(bus_encode_msg(&sb, &m), 0);
	{
		struct env_reader r;
		struct bus_env e;

		env_reader_init(&r, sb.data, sb.size);
		assert_int_equal(bus_reader_next(&r, &e), ENV_OK);
		check_msg(&e.u.msg, &m);
		env_reader_fini(&r);
	}

	/* Decoders: hand-packed oversize strings are malformed. */
	for (int which = 0; which < 3; which++) {
		msgpack_packer pk;
		struct env_reader r;
		struct bus_env e;

		msgpack_sbuffer_clear(&sb);
		msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
		msgpack_pack_array(&pk, 10);
		msgpack_pack_uint64(&pk, 1);
		msgpack_pack_uint64(&pk, BUS_MSG);
		msgpack_pack_uint64(&pk, 1);
		msgpack_pack_uint64(&pk, 1);
		msgpack_pack_str_with_body(
		    &pk, big, which == 0 ? ENV_ADDR_MAX + 1 : 3);
		msgpack_pack_uint64(&pk, 0);
		msgpack_pack_bin_with_body(&pk, "{}", 2);
		msgpack_pack_str_with_body(
		    &pk, big, which == 1 ? ENV_ID_MAX + 1 : 3);
		msgpack_pack_str_with_body(
		    &pk, big, which == 2 ? ENV_ID_MAX + 1 : 3);
		msgpack_pack_uint64(&pk, 0);
		env_reader_init(&r, sb.data, sb.size);
		assert_int_equal(bus_reader_next(&r, &e), ENV_MALFORMED);
		env_reader_fini(&r);
	}
	msgpack_sbuffer_destroy(&sb);
}

static void
oversize_data_is_malformed(void **state)
{
	size_t n = (size_t)ENV_DATA_MAX + 1;
	char *big = calloc(1, n);
	msgpack_sbuffer sb;
	msgpack_packer pk;
	struct env_reader r;
	struct up_env u;
	struct up_send s = {S("u"), S("c"), {big, ENV_DATA_MAX}};

	assert_non_null(big);
	msgpack_sbuffer_init(&sb);
	assert_int_equal(up_encode_send(&sb, &W, &s), 0);
	env_reader_init(&r, sb.data, sb.size);
	assert_int_equal(up_reader_next(&r, &u), ENV_OK);
	assert_int_equal(u.u.send.data.len, ENV_DATA_MAX);
	env_reader_fini(&r);

	msgpack_sbuffer_clear(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, 8);
	msgpack_pack_uint64(&pk, 1);
	msgpack_pack_uint64(&pk, UP_SEND);
	msgpack_pack_uint64(&pk, 1);
	msgpack_pack_uint64(&pk, 1);
	msgpack_pack_uint64(&pk, 1);
	msgpack_pack_str_with_body(&pk, "u", 1);
	msgpack_pack_str_with_body(&pk, "c", 1);
	msgpack_pack_bin_with_body(&pk, big, n);
	env_reader_init(&r, sb.data, sb.size);
	assert_int_equal(up_reader_next(&r, &u), ENV_MALFORMED);
	env_reader_fini(&r);
	msgpack_sbuffer_destroy(&sb);
	free(big);
}

static void
a_large_sync_round_trips(void **state)
{
	enum { N = 5000 };
	static char names[N][16];
	static struct env_str addrs[N];
	static struct up_counter users[N];
	struct up_sync s = {42, N, addrs, N, users};
	msgpack_sbuffer sb;
	struct env_reader r;
	struct up_env u;

	for (int i = 0; i < N; i++) {
		int len = snprintf(names[i], sizeof(names[i]), "user:%d", i);

		addrs[i] = (struct env_str){names[i], (uint32_t)len};
		users[i].name =
		    (struct env_str){names[i] + 5, (uint32_t)len - 5};
		users[i].value = (uint64_t)i;
	}
	msgpack_sbuffer_init(&sb);
	assert_int_equal(up_encode_sync(&sb, &W, &s), 0);
	assert_int_equal(up_encode_bye(&sb, &W), 0);
	env_reader_init(&r, sb.data, sb.size);
	assert_int_equal(up_reader_next(&r, &u), ENV_OK);
	assert_int_equal(u.kind, UP_INTEREST_SYNC);
	assert_int_equal(u.u.sync.n_addrs, N);
	assert_int_equal(u.u.sync.n_users, N);
	for (int i = 0; i < N; i++) {
		assert_str(u.u.sync.addrs[i], addrs[i]);
		assert_str(u.u.sync.users[i].name, users[i].name);
		assert_true(u.u.sync.users[i].value == (uint64_t)i);
	}
	assert_int_equal(up_reader_next(&r, &u), ENV_OK);
	assert_int_equal(u.kind, UP_BYE);
	assert_int_equal(up_reader_next(&r, &u), ENV_END);
	env_reader_fini(&r);
	msgpack_sbuffer_destroy(&sb);
}

static void
a_reset_reader_decodes_the_new_buffer(void **state)
{
	msgpack_sbuffer a, b;
	struct env_reader r;
	struct bus_env e;

	msgpack_sbuffer_init(&a);
	msgpack_sbuffer_init(&b);
	assert_int_equal(bus_encode_heartbeat(&a, &hb1), 0);
	assert_int_equal(bus_encode_ack(&b, &ack1), 0);
	env_reader_init(&r, a.data, a.size);
	assert_int_equal(bus_reader_next(&r, &e), ENV_OK);
	assert_int_equal(e.kind, BUS_HEARTBEAT);
	env_reader_reset(&r, b.data, b.size);
	assert_int_equal(bus_reader_next(&r, &e), ENV_OK);
	assert_int_equal(e.kind, BUS_ACK);
	assert_int_equal(bus_reader_next(&r, &e), ENV_END);
	env_reader_fini(&r);
	msgpack_sbuffer_destroy(&a);
	msgpack_sbuffer_destroy(&b);
}

static void
names_and_errors_have_strings(void **state)
{
	assert_string_equal(bus_kind_str(BUS_ACK), "BUS_ACK");
	assert_string_equal(bus_kind_str((enum bus_kind)99), "BUS_UNKNOWN");
	assert_string_equal(up_kind_str(UP_BYE), "UP_BYE");
	assert_string_equal(up_kind_str((enum up_kind)0), "UP_UNKNOWN");
	assert_string_equal(payload_class_str(PAYLOAD_TEXT), "PAYLOAD_TEXT");
	assert_string_equal(
	    payload_class_str((enum payload_class)7), "PAYLOAD_UNKNOWN");
	for (int e = -6; e <= 2; e++)
		assert_non_null(env_strerror(e));
	assert_string_equal(env_strerror(ENV_TRUNCATED), "truncated envelope");
}

/* ---- history: BUS_RANGE, UP_RANGE_REQ, stream ids ---- */

static const struct bus_range_entry range_entries[] = {
    {{"1733212345678-0", 15}, PAYLOAD_JSON, {"{\"a\":1}", 7}, {"u7", 2},
	1733212345678ull},
    {{"1733212345678-1", 15}, PAYLOAD_BINARY, {"\0\xff", 2}, {NULL, 0}, 0},
    {{"1733212345679", 13}, PAYLOAD_TEXT, {"", 0}, {"", 0}, 1},
};

static void
check_range(const struct bus_range *got, const struct bus_range *want)
{
	assert_true(got->epoch == want->epoch);
	assert_int_equal(got->slot, want->slot);
	assert_int_equal(got->gen, want->gen);
	assert_true(got->req_id == want->req_id);
	assert_int_equal(got->status, want->status);
	assert_int_equal(got->chunk, want->chunk);
	assert_int_equal(got->last, want->last);
	assert_int_equal(got->recovered, want->recovered);
	assert_str(got->to, want->to);
	assert_int_equal(got->n, want->n);
	for (uint32_t i = 0; i < want->n; i++) {
		assert_str(got->entries[i].id, want->entries[i].id);
		assert_int_equal(got->entries[i].cls, want->entries[i].cls);
		assert_str(got->entries[i].data, want->entries[i].data);
		assert_str(got->entries[i].from, want->entries[i].from);
		assert_true(got->entries[i].ts == want->entries[i].ts);
	}
}

static void
range_envelopes_round_trip_between_others(void **state)
{
	struct bus_range g1 = {7, 3, 17, 1ull << 40, RANGE_OK, 0, false, true,
	    {"user:42", 7}, 3, range_entries};
	struct bus_range g2 = {7, 3, 17, 5, RANGE_UNAVAILABLE, 4, true, false,
	    {"channel:news", 12}, 0, NULL};
	struct up_range q1 = {
	    9, {"channel:news", 12}, {"1733212345678-0", 15}, 1000};
	struct up_range q2 = {10, {"user:42", 7}, {NULL, 0}, 50};
	msgpack_sbuffer sb;
	struct env_reader r;
	struct bus_env e;
	struct up_env u;

	(void)state;
	msgpack_sbuffer_init(&sb);
	assert_int_equal(bus_encode_msg(&sb, &msg1), 0);
	assert_int_equal(bus_encode_range(&sb, &g1), 0);
	assert_int_equal(bus_encode_range(&sb, &g2), 0);
	assert_int_equal(bus_encode_ack(&sb, &ack1), 0);
	env_reader_init(&r, sb.data, sb.size);
	assert_int_equal(bus_reader_next(&r, &e), ENV_OK);
	check_msg(&e.u.msg, &msg1);
	assert_int_equal(bus_reader_next(&r, &e), ENV_OK);
	assert_int_equal(e.kind, BUS_RANGE);
	check_range(&e.u.range, &g1);
	assert_int_equal(bus_reader_next(&r, &e), ENV_OK);
	assert_int_equal(e.kind, BUS_RANGE);
	check_range(&e.u.range, &g2);
	assert_null(e.u.range.entries);
	assert_int_equal(bus_reader_next(&r, &e), ENV_OK);
	assert_int_equal(e.kind, BUS_ACK);
	assert_int_equal(bus_reader_next(&r, &e), ENV_END);
	env_reader_fini(&r);
	msgpack_sbuffer_destroy(&sb);

	msgpack_sbuffer_init(&sb);
	assert_int_equal(up_encode_range(&sb, &W, &q1), 0);
	assert_int_equal(up_encode_bye(&sb, &W), 0);
	assert_int_equal(up_encode_range(&sb, &W, &q2), 0);
	env_reader_init(&r, sb.data, sb.size);
	assert_int_equal(up_reader_next(&r, &u), ENV_OK);
	assert_int_equal(u.kind, UP_RANGE_REQ);
	assert_worker(&u.w);
	assert_true(u.u.range.req_id == 9);
	assert_str(u.u.range.addr, q1.addr);
	assert_str(u.u.range.since, q1.since);
	assert_int_equal(u.u.range.limit, 1000);
	assert_int_equal(up_reader_next(&r, &u), ENV_OK);
	assert_int_equal(u.kind, UP_BYE);
	assert_int_equal(up_reader_next(&r, &u), ENV_OK);
	assert_int_equal(u.kind, UP_RANGE_REQ);
	assert_str(u.u.range.since, NONE);
	assert_int_equal(u.u.range.limit, 50);
	assert_int_equal(up_reader_next(&r, &u), ENV_END);
	env_reader_fini(&r);
	msgpack_sbuffer_destroy(&sb);
	assert_string_equal(bus_kind_str(BUS_RANGE), "BUS_RANGE");
	assert_string_equal(up_kind_str(UP_RANGE_REQ), "UP_RANGE_REQ");
	assert_string_equal(
	    range_status_str(RANGE_BAD_REQUEST), "RANGE_BAD_REQUEST");
	assert_string_equal(
	    range_status_str((enum range_status)9), "RANGE_UNKNOWN");
}

static void
range_encoder_refuses_what_readers_reject(void **state)
{
	struct bus_range_entry bad = range_entries[0];
	struct bus_range g = {
	    7, 3, 17, 1, RANGE_OK, 0, true, true, {"user:42", 7}, 1, &bad};
	msgpack_sbuffer sb;

	(void)state;
	msgpack_sbuffer_init(&sb);
	bad.id = S("m-1"); /* not a stream id */
	assert_int_equal(bus_encode_range(&sb, &g), -1);
	bad.id = NONE;
	assert_int_equal(bus_encode_range(&sb, &g), -1);
	bad = range_entries[0];
	bad.cls = (enum payload_class)3;
	assert_int_equal(bus_encode_range(&sb, &g), -1);
	bad = range_entries[0];
	g.status = (enum range_status)4;
	assert_int_equal(bus_encode_range(&sb, &g), -1);
	g.status = RANGE_OK;
	g.entries = NULL;
	assert_int_equal(bus_encode_range(&sb, &g), -1);
	assert_int_equal(sb.size, 0);
	msgpack_sbuffer_destroy(&sb);
}

/* [1, 4, epoch, slot, gen, req_id, status, chunk, last, recovered, to,
 * entries] with one entry [id, cls, data, from, ts], one field changed. */
static int
decode_range_with(int field, int entry_field, const char *what)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	struct env_reader r;
	struct bus_env e;
	int rc;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, 12);
	for (int i = 0; i < 12; i++) {
		if (i == field) {
			msgpack_pack_str_with_body(&pk, what, strlen(what));
			continue;
		}
		switch (i) {
		case 0:
			msgpack_pack_uint64(&pk, 1);
			break;
		case 1:
			msgpack_pack_uint64(&pk, 4);
			break;
		case 6:
			msgpack_pack_uint64(&pk, RANGE_OK);
			break;
		case 8:
		case 9:
			msgpack_pack_true(&pk);
			break;
		case 10:
			msgpack_pack_str_with_body(&pk, "all", 3);
			break;
		case 11:
			msgpack_pack_array(&pk, 1);
			msgpack_pack_array(&pk, 6); /* one extra: accepted */
			for (int k = 0; k < 6; k++) {
				if (k == entry_field) {
					msgpack_pack_str_with_body(
					    &pk, what, strlen(what));
				} else if (k == 0) {
					msgpack_pack_str_with_body(
					    &pk, "5-1", 3);
				} else if (k == 2) {
					msgpack_pack_bin_with_body(&pk, "x", 1);
				} else if (k == 3) {
					msgpack_pack_nil(&pk);
				} else {
					msgpack_pack_uint64(&pk, 1);
				}
			}
			break;
		default:
			msgpack_pack_uint64(&pk, 3);
			break;
		}
	}
	env_reader_init(&r, sb.data, sb.size);
	rc = bus_reader_next(&r, &e);
	if (rc == ENV_OK)
		assert_int_equal(e.u.range.n, 1);
	env_reader_fini(&r);
	msgpack_sbuffer_destroy(&sb);
	return rc;
}

static void
range_decoder_checks_every_field(void **state)
{
	(void)state;
	assert_int_equal(decode_range_with(-1, -1, ""), ENV_OK);
	/* Every field but `to` (a str) must not be a str. */
	for (int f = 2; f < 12; f++)
		assert_int_equal(decode_range_with(f, -1, "x"),
		    f == 10 ? ENV_OK : ENV_MALFORMED);
	/* In the entry: id must be a stream id; cls an int; data bin or
	 * str; from str or nil; ts an int; the extra element is free. */
	assert_int_equal(decode_range_with(-1, 0, "m-1"), ENV_MALFORMED);
	assert_int_equal(decode_range_with(-1, 0, "1-2"), ENV_OK);
	assert_int_equal(decode_range_with(-1, 1, "x"), ENV_MALFORMED);
	assert_int_equal(decode_range_with(-1, 2, "x"), ENV_OK);
	assert_int_equal(decode_range_with(-1, 3, "x"), ENV_OK);
	assert_int_equal(decode_range_with(-1, 4, "x"), ENV_MALFORMED);
	assert_int_equal(decode_range_with(-1, 5, "x"), ENV_OK);
}

static void
range_chunks_are_bounded(void **state)
{
	struct bus_range_entry e[10];

	(void)state;
	for (int i = 0; i < 10; i++)
		e[i] = (struct bus_range_entry){
		    S("1-1"), PAYLOAD_TEXT, {"0123456789", 10}, NONE, 0};
	/* Each entry counts 3 + 10 + 40 = 53 bytes, the head 64. */
	assert_int_equal(bus_range_chunk(e, 10, 1 << 20), 10);
	assert_int_equal(bus_range_chunk(e, 10, 64 + 53 * 3), 3);
	assert_int_equal(bus_range_chunk(e, 10, 64 + 53 * 3 - 1), 2);
	/* An entry larger than the bound still travels, alone. */
	assert_int_equal(bus_range_chunk(e, 10, 1), 1);
	assert_int_equal(bus_range_chunk(e, 0, 1), 0);
}

static void
stream_ids_parse_and_order(void **state)
{
	struct env_sid a, b;

	(void)state;
	assert_int_equal(env_sid_parse("0", 1, &a), 0);
	assert_true(a.ms == 0 && a.seq == 0);
	assert_int_equal(env_sid_parse("1733212345678-7", 15, &a), 0);
	assert_true(a.ms == 1733212345678ull && a.seq == 7);
	assert_int_equal(env_sid_parse("1733212345678", 13, &b), 0);
	assert_true(env_sid_cmp(&b, &a) < 0 && env_sid_cmp(&a, &b) > 0);
	assert_int_equal(env_sid_cmp(&a, &a), 0);
	assert_int_equal(
	    env_sid_parse("18446744073709551615-18446744073709551615", 41, &a),
	    0);
	assert_true(a.ms == UINT64_MAX && a.seq == UINT64_MAX);
	/* 10-9 is after 9-10: numbers, not text. */
	assert_int_equal(env_sid_parse("10-9", 4, &a), 0);
	assert_int_equal(env_sid_parse("9-10", 4, &b), 0);
	assert_true(env_sid_cmp(&a, &b) > 0);
	static const char *bad[] = {"", "-", "1-", "-1", "1-2-3", "+1", " 1",
	    "1 ", "a", "1-a", "18446744073709551616", "1-18446744073709551616",
	    "000000000000000000001", "0x10", "1.5"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(env_sid_parse(bad[i], strlen(bad[i]), &a), -1);
	assert_int_equal(env_sid_parse(NULL, 0, &a), -1);
}

static void
slot_urls_derive_from_the_bus_url(void **state)
{
	char buf[128];

	(void)state;
	assert_int_equal(
	    bus_slot_url("ipc:///run/w/bus.ipc", 1, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "ipc:///run/w/bus1.ipc");
	assert_int_equal(
	    bus_slot_url("ipc:///x/bus.ipc", 256, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "ipc:///x/bus256.ipc");
	/* Not a bus URL, or no room: refused. */
	assert_int_equal(
	    bus_slot_url("ipc:///x/up.ipc", 1, buf, sizeof(buf)), -1);
	assert_int_equal(bus_slot_url("ipc:///x/bus.ipc", 12, buf, 17), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(every_bus_kind_round_trips_in_one_buffer),
	    cmocka_unit_test(every_up_kind_round_trips_in_one_buffer),
	    cmocka_unit_test(an_empty_buffer_is_the_end),
	    cmocka_unit_test(empty_strings_decode_as_non_null),
	    cmocka_unit_test(
		a_batch_truncated_at_every_offset_decodes_its_complete_envelopes),
	    cmocka_unit_test(
		an_up_batch_truncated_at_every_offset_never_decodes_a_partial_one),
	    cmocka_unit_test(random_buffers_never_crash_and_always_end),
	    cmocka_unit_test(templates_decode),
	    cmocka_unit_test(wrong_types_in_every_field_are_malformed),
	    cmocka_unit_test(missing_fields_are_malformed),
	    cmocka_unit_test(extra_trailing_fields_are_accepted),
	    cmocka_unit_test(
		an_unknown_version_is_skipped_and_reading_continues),
	    cmocka_unit_test(an_unknown_kind_is_skipped_and_reading_continues),
	    cmocka_unit_test(non_arrays_and_bad_heads_stop_the_reader),
	    cmocka_unit_test(deep_nesting_is_malformed),
	    cmocka_unit_test(
		oversize_fields_are_refused_by_encoders_and_decoders),
	    cmocka_unit_test(oversize_data_is_malformed),
	    cmocka_unit_test(a_large_sync_round_trips),
	    cmocka_unit_test(a_reset_reader_decodes_the_new_buffer),
	    cmocka_unit_test(names_and_errors_have_strings),
	    cmocka_unit_test(range_envelopes_round_trip_between_others),
	    cmocka_unit_test(range_encoder_refuses_what_readers_reject),
	    cmocka_unit_test(range_decoder_checks_every_field),
	    cmocka_unit_test(range_chunks_are_bounded),
	    cmocka_unit_test(stream_ids_parse_and_order),
	    cmocka_unit_test(slot_urls_derive_from_the_bus_url),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
