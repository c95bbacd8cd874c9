/*
 * fuzz_bus.c - libFuzzer target for the bus reader (bridge -> workers).
 * Decoding arbitrary bytes must never crash or loop; every envelope that
 * decodes must re-encode and decode to the same fields.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "envelope.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
same_str(struct env_str a, struct env_str b)
{
	if ((a.p == NULL) != (b.p == NULL) || a.len != b.len ||
	    (a.len != 0 && memcmp(a.p, b.p, a.len) != 0))
		abort();
}

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
		same_str(x->to, y->to);
		for (uint32_t i = 0; i < x->n; i++) {
			if (x->entries[i].cls != y->entries[i].cls ||
			    x->entries[i].ts != y->entries[i].ts)
				abort();
			same_str(x->entries[i].id, y->entries[i].id);
			same_str(x->entries[i].data, y->entries[i].data);
			same_str(x->entries[i].from, y->entries[i].from);
		}
		return;
	}
	switch (a->kind) {
	case BUS_MSG:
		if (a->u.msg.epoch != b->u.msg.epoch ||
		    a->u.msg.seq != b->u.msg.seq ||
		    a->u.msg.cls != b->u.msg.cls || a->u.msg.ts != b->u.msg.ts)
			abort();
		same_str(a->u.msg.to, b->u.msg.to);
		same_str(a->u.msg.data, b->u.msg.data);
		same_str(a->u.msg.from, b->u.msg.from);
		same_str(a->u.msg.id, b->u.msg.id);
		break;
	case BUS_HEARTBEAT:
		if (a->u.hb.epoch != b->u.hb.epoch ||
		    a->u.hb.last_seq != b->u.hb.last_seq ||
		    a->u.hb.redis_up != b->u.hb.redis_up)
			abort();
		same_str(a->u.hb.node, b->u.hb.node);
		break;
	case BUS_ACK:
		if (a->u.ack.epoch != b->u.ack.epoch ||
		    a->u.ack.slot != b->u.ack.slot ||
		    a->u.ack.gen != b->u.ack.gen ||
		    a->u.ack.req_id != b->u.ack.req_id ||
		    a->u.ack.status != b->u.ack.status)
			abort();
		same_str(a->u.ack.node, b->u.ack.node);
		break;
	default:
		abort();
	}
}

static void
round_trip(const struct bus_env *e)
{
	msgpack_sbuffer sb;
	struct env_reader r;
	struct bus_env back;
	int rc = -1;

	msgpack_sbuffer_init(&sb);
	if (e->kind == BUS_RANGE)
		rc = bus_encode_range(&sb, &e->u.range);
	switch (e->kind) {
	case BUS_MSG:
		rc = bus_encode_msg(&sb, &e->u.msg);
		break;
	case BUS_HEARTBEAT:
		rc = bus_encode_heartbeat(&sb, &e->u.hb);
		break;
	case BUS_ACK:
		rc = bus_encode_ack(&sb, &e->u.ack);
		break;
	}
	if (rc != 0)
		abort(); /* what decodes is within every limit */
	env_reader_init(&r, sb.data, sb.size);
	if (bus_reader_next(&r, &back) != ENV_OK)
		abort();
	same_env(e, &back);
	if (bus_reader_next(&r, &back) != ENV_END)
		abort();
	env_reader_fini(&r);
	msgpack_sbuffer_destroy(&sb);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct env_reader r;
	struct bus_env e;
	size_t calls = 0;
	int rc;

	env_reader_init(&r, data, size);
	while ((rc = bus_reader_next(&r, &e)) != ENV_END) {
		/* Every call but the last consumes at least one byte. */
		if (++calls > size + 1)
			abort();
		if (rc == ENV_OK)
			round_trip(&e);
		else if (rc != ENV_TRUNCATED && rc != ENV_MALFORMED &&
			 rc != ENV_VERSION_UNKNOWN && rc != ENV_KIND_UNKNOWN &&
			 rc != ENV_NOMEM)
			abort();
	}
	env_reader_fini(&r);
	return 0;
}
