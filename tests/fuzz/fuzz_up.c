/*
 * fuzz_up.c - libFuzzer target for the upstream reader (worker -> bridge).
 * Decoding arbitrary bytes must never crash or loop; every envelope that
 * decodes must re-encode and decode to the same fields.
 */
#include "fuzz_env.h"

static void
same_counters(
    uint32_t n, const struct up_counter *a, const struct up_counter *b)
{
	for (uint32_t i = 0; i < n; i++) {
		fuzz_same_str(a[i].name, b[i].name);
		if (a[i].value != b[i].value)
			abort();
	}
}

static void
same_env(const struct up_env *a, const struct up_env *b)
{
	if (a->kind != b->kind || a->w.slot != b->w.slot ||
	    a->w.gen != b->w.gen || a->w.pid != b->w.pid)
		abort();
	if (a->kind == UP_RANGE_REQ) {
		if (a->u.range.req_id != b->u.range.req_id ||
		    a->u.range.limit != b->u.range.limit)
			abort();
		fuzz_same_str(a->u.range.addr, b->u.range.addr);
		fuzz_same_str(a->u.range.since, b->u.range.since);
		return;
	}
	switch (a->kind) {
	case UP_INTEREST_ADD:
	case UP_INTEREST_DEL:
		if (a->u.interest.req_id != b->u.interest.req_id)
			abort();
		fuzz_same_str(a->u.interest.addr, b->u.interest.addr);
		break;
	case UP_INTEREST_SYNC:
		if (a->u.sync.epoch != b->u.sync.epoch ||
		    a->u.sync.n_addrs != b->u.sync.n_addrs ||
		    a->u.sync.n_users != b->u.sync.n_users)
			abort();
		for (uint32_t i = 0; i < a->u.sync.n_addrs; i++)
			fuzz_same_str(a->u.sync.addrs[i], b->u.sync.addrs[i]);
		same_counters(
		    a->u.sync.n_users, a->u.sync.users, b->u.sync.users);
		break;
	case UP_PUBLISH:
		fuzz_same_str(a->u.publish.to, b->u.publish.to);
		fuzz_same_str(a->u.publish.from, b->u.publish.from);
		fuzz_same_str(a->u.publish.data, b->u.publish.data);
		fuzz_same_str(a->u.publish.id, b->u.publish.id);
		break;
	case UP_SEND:
		fuzz_same_str(a->u.send.user, b->u.send.user);
		fuzz_same_str(a->u.send.conn, b->u.send.conn);
		fuzz_same_str(a->u.send.data, b->u.send.data);
		break;
	case UP_EVENT:
		fuzz_same_str(a->u.event.type, b->u.event.type);
		fuzz_same_str(a->u.event.user, b->u.event.user);
		fuzz_same_str(a->u.event.conn, b->u.event.conn);
		fuzz_same_str(a->u.event.reason, b->u.event.reason);
		break;
	case UP_COUNTERS:
		if (a->u.counters.n != b->u.counters.n)
			abort();
		same_counters(
		    a->u.counters.n, a->u.counters.items, b->u.counters.items);
		break;
	case UP_BYE:
		break;
	default:
		abort();
	}
}

static int
encode(msgpack_sbuffer *sb, const struct up_env *e)
{
	if (e->kind == UP_RANGE_REQ)
		return up_encode_range(sb, &e->w, &e->u.range);
	switch (e->kind) {
	case UP_INTEREST_ADD:
	case UP_INTEREST_DEL:
		return up_encode_interest(sb, &e->w, e->kind, &e->u.interest);
	case UP_INTEREST_SYNC:
		return up_encode_sync(sb, &e->w, &e->u.sync);
	case UP_PUBLISH:
		return up_encode_publish(sb, &e->w, &e->u.publish);
	case UP_SEND:
		return up_encode_send(sb, &e->w, &e->u.send);
	case UP_EVENT:
		return up_encode_event(sb, &e->w, &e->u.event);
	case UP_COUNTERS:
		return up_encode_counters(sb, &e->w, &e->u.counters);
	case UP_BYE:
		return up_encode_bye(sb, &e->w);
	}
	return -1;
}

FUZZ_ENV_READER_TARGET(up_env, up_reader_next, encode, same_env)
