/*
 * fuzz_bus.c - libFuzzer target for the bus reader (bridge -> workers).
 * Decoding arbitrary bytes must never crash or loop; every envelope that
 * decodes must re-encode and decode to the same fields.
 */
#include "fuzz_env.h"

static void
same_env(const struct bus_env *a, const struct bus_env *b)
{
	if (a->kind != b->kind)
		abort();
	if (a->kind == BUS_RANGE) {
		const struct bus_range *x = &a->u.range, *y = &b->u.range;

		if (x->epoch != y->epoch || x->slot != y->slot ||
		    x->gen != y->gen || x->req_id != y->req_id ||
		    x->status != y->status || x->chunk != y->chunk ||
		    x->last != y->last || x->recovered != y->recovered ||
		    x->n != y->n)
			abort();
		fuzz_same_str(x->to, y->to);
		for (uint32_t i = 0; i < x->n; i++) {
			if (x->entries[i].cls != y->entries[i].cls ||
			    x->entries[i].ts != y->entries[i].ts)
				abort();
			fuzz_same_str(x->entries[i].id, y->entries[i].id);
			fuzz_same_str(x->entries[i].data, y->entries[i].data);
			fuzz_same_str(x->entries[i].from, y->entries[i].from);
		}
		return;
	}
	switch (a->kind) {
	case BUS_MSG:
		if (a->u.msg.epoch != b->u.msg.epoch ||
		    a->u.msg.seq != b->u.msg.seq ||
		    a->u.msg.cls != b->u.msg.cls || a->u.msg.ts != b->u.msg.ts)
			abort();
		fuzz_same_str(a->u.msg.to, b->u.msg.to);
		fuzz_same_str(a->u.msg.data, b->u.msg.data);
		fuzz_same_str(a->u.msg.from, b->u.msg.from);
		fuzz_same_str(a->u.msg.id, b->u.msg.id);
		break;
	case BUS_HEARTBEAT:
		if (a->u.hb.epoch != b->u.hb.epoch ||
		    a->u.hb.last_seq != b->u.hb.last_seq ||
		    a->u.hb.redis_up != b->u.hb.redis_up)
			abort();
		fuzz_same_str(a->u.hb.node, b->u.hb.node);
		break;
	case BUS_ACK:
		if (a->u.ack.epoch != b->u.ack.epoch ||
		    a->u.ack.slot != b->u.ack.slot ||
		    a->u.ack.gen != b->u.ack.gen ||
		    a->u.ack.req_id != b->u.ack.req_id ||
		    a->u.ack.status != b->u.ack.status)
			abort();
		fuzz_same_str(a->u.ack.node, b->u.ack.node);
		break;
	default:
		abort();
	}
}

static int
encode(msgpack_sbuffer *sb, const struct bus_env *e)
{
	if (e->kind == BUS_RANGE)
		return bus_encode_range(sb, &e->u.range);
	switch (e->kind) {
	case BUS_MSG:
		return bus_encode_msg(sb, &e->u.msg);
	case BUS_HEARTBEAT:
		return bus_encode_heartbeat(sb, &e->u.hb);
	case BUS_ACK:
		return bus_encode_ack(sb, &e->u.ack);
	}
	return -1;
}

FUZZ_ENV_READER_TARGET(bus_env, bus_reader_next, encode, same_env)
