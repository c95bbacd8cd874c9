/*
 * bridge.c - the core: wires the broker, the bus, interest, presence, the
 * worker registry and upstream dispatch together, and owns the bus
 * stream (seq numbers, heartbeats), worker expiry, the node description
 * handed to the broker and the graceful stop. No socket I/O of its own.
 *
 * Down: broker messages -> MSG envelopes, each only to the bus streams of
 * the worker slots that hold its address (interest_route()), `all` to every
 * slot; subscription acknowledgements -> interest -> ACK envelopes on the
 * stream of the worker's slot. A worker's ACK and the messages for the
 * address it acknowledges are in that one ordered stream: the worker holds
 * the address in interest before the ACK is due, so every message after
 * the ACK is routed to its slot. Up: bus ->
 * upstream.c. Pending subscription changes and presence changes are
 * handed to the broker once per loop iteration, from a hook.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "addr.h"
#include "bridge.h"
#include "bus.h"
#include "clock.h"
#include "interest.h"
#include "log.h"
#include "payload.h"
#include "presence.h"
#include "systemd.h"
#include "upstream.h"
#include "workers.h"
#include "wspenv.h"

/* How often a lingering subscription's grace time is looked at. */
#define BRIDGE_GRACE_TICK_MS 500

struct bridge {
	const struct conf *conf;
	bool failed; /* stopping for a fatal broker error: exit status 1 */
	struct loop *loop;
	char node[CONF_NODE_ID_MAX];
	size_t node_len;
	uint64_t epoch;
	uint64_t started_mono, started_unix;

	struct bus *bus;
	struct broker *broker;
	struct workers *workers;
	struct interest *interest;
	struct presence *presence;
	struct upstream *upstream;

	uint64_t hb_timer, info_timer, grace_timer, stop_timer;
	bool stopping;
	uint64_t stop_deadline;

	msgpack_zone zone; /* wspenv decoding scratch */
	uint64_t broker_messages, bus_msgs, bus_acks, bus_heartbeats;
	uint64_t unrouted; /* broker messages no worker held */
	uint64_t drops[BRIDGE_DROP_COUNT];
};

static const char *const bridge_drop_names[BRIDGE_DROP_COUNT] = {
    [BRIDGE_DROP_BAD_ADDRESS] = "bad_address",
    [BRIDGE_DROP_BAD_ENVELOPE] = "bad_envelope",
    [BRIDGE_DROP_REDIS_DOWN] = "redis_down",
    [BRIDGE_DROP_BAD_UPSTREAM] = "bad_upstream",
    [BRIDGE_DROP_REDIS_ERROR] = "redis_error",
    [BRIDGE_DROP_ENCODE] = "encode",
    [BRIDGE_DROP_BUS_SEND] = "bus_send",
};

const char *
bridge_drop_str(enum bridge_drop d)
{
	if ((unsigned)d >= BRIDGE_DROP_COUNT)
		return "unknown";
	return bridge_drop_names[d];
}

/* ---- broker -> bus ---- */

static void
bridge_ack_cb(void *arg, uint32_t slot, uint32_t gen, uint64_t req_id,
    enum ack_status status)
{
	struct bridge *b = arg;
	struct bus_ack a = {
	    .epoch = b->epoch,
	    .slot = slot,
	    .gen = gen,
	    .req_id = req_id,
	    .status = status,
	    .node = {b->node, (uint32_t)b->node_len},
	};

	if (bus_send_ack(b->bus, &a) == -1) {
		b->drops[BRIDGE_DROP_ENCODE]++;
		return;
	}
	b->bus_acks++;
	log_debug("ack slot=%" PRIu32 " gen=%" PRIu32 " req=%" PRIu64
		  " status=%d",
	    slot, gen, req_id, (int)status);
}

/* The payload of m: a \xC1WSP envelope's fields, or the raw bytes. */
static int
bridge_payload(struct bridge *b, struct bus_msg *m, const char *p, size_t plen)
{
	struct wspenv env;
	int rc;

	if (!wspenv_is(p, plen)) {
		m->data.p = p;
		m->data.len = (uint32_t)plen;
		m->cls = payload_classify(p, plen, false);
		return 0;
	}
	rc = wspenv_decode(p, plen, &b->zone, &env);
	msgpack_zone_clear(&b->zone);
	if (rc == -1)
		return -1;
	m->data = env.data;
	m->from = env.from;
	m->id = env.id;
	m->ts = env.ts;
	m->cls = payload_classify(env.data.p, env.data.len, env.json);
	return 0;
}

/* m to the streams of the slots that want it. */
static void
bridge_route(struct bridge *b, struct bus_msg *m, const struct addr *parsed)
{
	struct interest_slots to;
	int sent = 0;

	if (parsed->kind == ADDR_ALL) {
		sent = bus_send_msg_all(b->bus, m);
		if (sent < 0) {
			b->drops[BRIDGE_DROP_ENCODE]++;
			return;
		}
		b->bus_msgs += (uint64_t)sent;
		return;
	}
	if (interest_route(b->interest, m->to.p, m->to.len, &to) == 0) {
		/* Nobody on this node holds it (a lingering subscription,
		 * or broadcast routing): nothing to send, no seq used. */
		b->unrouted++;
		return;
	}
	for (size_t wi = 0; wi < sizeof(to.bits) / sizeof(to.bits[0]); wi++) {
		uint64_t bits = to.bits[wi];

		while (bits != 0) {
			uint32_t slot =
			    (uint32_t)(wi * 64 +
				       (size_t)__builtin_ctzll(bits)) +
			    1;

			bits &= bits - 1;
			if (bus_send_msg(b->bus, slot, m) == -1) {
				log_debug("bus: message dropped reason=encode "
					  "to=%.*s slot=%" PRIu32,
				    (int)m->to.len, m->to.p, slot);
				b->drops[BRIDGE_DROP_ENCODE]++;
				continue;
			}
			b->bus_msgs++;
		}
	}
}

static void
bridge_message_cb(
    void *arg, const char *addr, size_t len, const char *p, size_t plen)
{
	struct bridge *b = arg;
	struct bus_msg m = {.epoch = b->epoch};
	struct addr parsed;

	b->broker_messages++;
	if (addr_parse(addr, len, &parsed) == -1) {
		log_debug("broker: message dropped reason=bad_address "
			  "address=%.*s",
		    (int)(len > 300 ? 300 : len), addr);
		b->drops[BRIDGE_DROP_BAD_ADDRESS]++;
		return;
	}
	m.to.p = addr;
	m.to.len = (uint32_t)len;
	if (bridge_payload(b, &m, p, plen) == -1) {
		log_debug("broker: message dropped reason=bad_envelope to=%.*s",
		    (int)m.to.len, m.to.p);
		b->drops[BRIDGE_DROP_BAD_ENVELOPE]++;
		return;
	}
	bridge_route(b, &m, &parsed);
}

/* ---- broker events -> interest, presence, systemd ---- */

static void
bridge_subscribed_cb(void *arg, const char *addr, size_t len)
{
	struct bridge *b = arg;

	interest_confirmed(b->interest,
	    addr == NULL ? INTEREST_PSUBSCRIBE : INTEREST_SUBSCRIBE, addr, len);
}

static void
bridge_unsubscribed_cb(void *arg, const char *addr, size_t len)
{
	struct bridge *b = arg;

	interest_confirmed(b->interest, INTEREST_UNSUBSCRIBE, addr, len);
}

static void
bridge_sub_lost_cb(void *arg, const char *addr, size_t len)
{
	struct bridge *b = arg;

	if (addr == NULL)
		interest_link_down(b->interest);
	else
		interest_lost(b->interest, addr, len);
}

static void
bridge_sub_ready_cb(void *arg, bool ready)
{
	struct bridge *b = arg;

	if (ready)
		interest_link_up(b->interest);
	else
		interest_link_down(b->interest);
}

static void
bridge_state_cb(void *arg, bool up)
{
	struct bridge *b = arg;

	systemd_status(b->broker->ops->kind, up);
}

/* The stop runs from a timer, not inside the broker's callback: stopping
 * the broker from within its own frame handling is not safe. */
static void
bridge_fatal_stop_cb(struct loop *l, uint64_t id, void *arg)
{
	(void)l;
	(void)id;
	bridge_stop(arg);
}

static void
bridge_fatal_cb(void *arg, const char *why)
{
	struct bridge *b = arg;

	log_errx("stopping: %s", why);
	b->failed = true;
	if (loop_timer_add(b->loop, 0, 0, bridge_fatal_stop_cb, b) == 0)
		bridge_stop(b);
}

bool
bridge_failed(const struct bridge *b)
{
	return b->failed;
}

/* interest_flush() callback: one request to the broker. */
static int
bridge_interest_cmd(void *arg, enum interest_cmd cmd, const char *const *names,
    const size_t *lens, size_t n)
{
	struct bridge *b = arg;
	int rc;

	switch (cmd) {
	case INTEREST_SUBSCRIBE:
		rc = broker_subscribe(b->broker, names, lens, n);
		break;
	case INTEREST_UNSUBSCRIBE:
		rc = broker_unsubscribe(b->broker, names, lens, n);
		break;
	default:
		rc = broker_subscribe_all(b->broker);
		break;
	}
	return rc == 0 ? 0 : -1;
}

/* Presence changes go to the broker in batches of this many users. */
#define BRIDGE_PRESENCE_BATCH 500

struct bridge_presence_batch {
	struct bridge *b;
	bool changed;
	size_t n;
	struct broker_presence p[BRIDGE_PRESENCE_BATCH];
};

static void
bridge_presence_send(void *arg)
{
	struct bridge_presence_batch *pb = arg;

	if (pb->n > 0)
		(void)broker_presence_set(pb->b->broker, pb->p, pb->n);
	pb->n = 0;
}

/* Strings are borrowed until bridge_presence_send(): presence keeps them
 * alive until its flush (or iteration) returns. */
static void
bridge_presence_emit(void *arg, const char *user, size_t len, uint64_t conns)
{
	struct bridge_presence_batch *pb = arg;

	pb->changed = true;
	pb->p[pb->n++] = (struct broker_presence){user, len, conns};
	if (pb->n == BRIDGE_PRESENCE_BATCH)
		bridge_presence_send(pb);
}

static void
bridge_node_info(struct bridge *b)
{
	struct broker_node_info ni = {
	    .connections = presence_connections(b->presence),
	    .users = presence_users(b->presence),
	    .workers = workers_count(b->workers),
	    .started_unix = b->started_unix,
	    .version = WSPUSH_VERSION,
	    .pid = (long)getpid(),
	};

	(void)broker_node_info(b->broker, &ni);
}

/* Hands the presence changes (all of it if full) to the broker. */
static void
bridge_presence_write(struct bridge *b, bool full)
{
	struct bridge_presence_batch *pb = malloc(sizeof(*pb));
	bool changed;

	if (pb == NULL)
		return;
	pb->b = b;
	pb->n = 0;
	pb->changed = full;
	if (full) {
		presence_each(b->presence, bridge_presence_emit, pb);
		bridge_presence_send(pb);
	} else {
		presence_flush(b->presence, bridge_presence_emit,
		    bridge_presence_send, pb);
	}
	changed = pb->changed;
	free(pb);
	if (changed)
		bridge_node_info(b); /* the totals changed with it */
}

static void
bridge_presence_lost_cb(void *arg)
{
	bridge_presence_write(arg, true);
}

/* ---- workers ---- */

static void
bridge_worker_forget_cb(void *arg, struct worker *w, const char *why)
{
	struct bridge *b = arg;

	interest_forget(b->interest, w);
	presence_forget(b->presence, w);
}

static void
bridge_up_recv_cb(void *arg, uint32_t pipe_id, const struct up_env *env)
{
	struct bridge *b = arg;

	/* A worker of a slot beyond the configured count (the gateway's
	 * count grew at a reload): its stream opens before anything is
	 * routed or acked to it. */
	if (env->w.slot >= 1 && env->w.slot <= BUS_SLOTS_MAX &&
	    !bus_slot_is_open(b->bus, env->w.slot))
		(void)bus_slot_open(b->bus, env->w.slot);
	upstream_dispatch(b->upstream, pipe_id, env);
}

static void
bridge_pipe_removed_cb(void *arg, uint32_t pipe_id)
{
	struct bridge *b = arg;
	struct worker *w = workers_by_pipe(b->workers, pipe_id);

	/* Unknown pipes (nothing came on them, e.g. a listener's own check)
	 * are not worth a line. */
	if (w != NULL)
		workers_forget(b->workers, w, "pipe_closed");
}

static void
bridge_up_drop_cb(void *arg, const char *reason)
{
	struct bridge *b = arg;

	upstream_bad(b->upstream);
}

/* ---- timers and the per-iteration hook ---- */

static void
bridge_hb_cb(struct loop *l, uint64_t id, void *arg)
{
	struct bridge *b = arg;
	struct broker_status st;
	struct bus_heartbeat hb = {
	    .epoch = b->epoch,
	    .node = {b->node, (uint32_t)b->node_len},
	};

	broker_status(b->broker, &st);
	hb.redis_up = st.sub_up;
	b->bus_heartbeats += (uint64_t)bus_send_heartbeat(b->bus, &hb);
	/* Workers that went silent (they send COUNTERS every second). */
	workers_expire(b->workers, loop_now(l), BRIDGE_WORKER_TIMEOUT_MS);
}

static void
bridge_info_cb(struct loop *l, uint64_t id, void *arg)
{
	struct bridge *b = arg;

	if (b->stopping)
		return;
	bridge_presence_write(b, false);
	bridge_node_info(b);
}

/* Wakes the loop so that the hook sees expired grace times. */
static void
bridge_grace_cb(struct loop *l, uint64_t id, void *arg)
{
}

static void
bridge_hook(struct loop *l, void *arg)
{
	struct bridge *b = arg;

	if (interest_dirty(b->interest))
		interest_flush(b->interest, bridge_interest_cmd, b);
	if (!b->stopping)
		bridge_presence_write(b, false);
}

static uint64_t
bridge_clock(void *arg)
{
	return loop_now(arg);
}

static void
bridge_stop_check_cb(struct loop *l, uint64_t id, void *arg)
{
	struct bridge *b = arg;
	/* Done when nothing is queued or unanswered; while the link is down
	 * with writes queued, wait (bounded) for it to come back. */
	bool done = broker_drained(b->broker);

	if (done || loop_now(l) >= b->stop_deadline) {
		if (!done) {
			struct broker_status st;

			broker_status(b->broker, &st);
			log_warnx("stop: gave up flushing queued=%" PRIu64,
			    st.queued);
		}
		loop_timer_del(l, id);
		b->stop_timer = 0;
		loop_stop(l);
	}
}

void
bridge_stop(struct bridge *b)
{
	struct broker_status st;

	if (b->stopping)
		return;
	b->stopping = true;
	b->stop_deadline = loop_now(b->loop) + BRIDGE_STOP_FLUSH_MS;
	broker_status(b->broker, &st);
	log_notice("stopping: flushing writes queued=%" PRIu64, st.queued);
	broker_stop(b->broker);
	b->stop_timer = loop_timer_add(b->loop, 0, 20, bridge_stop_check_cb, b);
	if (b->stop_timer == 0)
		loop_stop(b->loop);
}

/* ---- life ---- */

static int
bridge_open_bus(struct bridge *b, char *err, size_t errlen)
{
	struct bus_cbs cbs = {
	    .recv = bridge_up_recv_cb,
	    .pipe_removed = bridge_pipe_removed_cb,
	    .drop = bridge_up_drop_cb,
	    .arg = b,
	};
	char bus_url[CONF_RUNTIME_DIR_MAX + 32];
	char up_url[CONF_RUNTIME_DIR_MAX + 32];

	conf_bus_url(b->conf, bus_url, sizeof(bus_url));
	conf_up_url(b->conf, up_url, sizeof(up_url));
	b->bus = bus_open(
	    b->loop, bus_url, up_url, conf_workers(b->conf), &cbs, err, errlen);
	if (b->bus == NULL)
		return -1;
	log_notice("bridge started node=%s epoch=%016" PRIx64
		   " bus=%s (one stream per slot 1..%" PRIu32
		   ") up=%s routing=%s",
	    b->node, b->epoch, bus_url, conf_workers(b->conf), up_url,
	    b->conf->routing == CONF_ROUTING_BROADCAST ? "broadcast"
						       : "interest");
	return 0;
}

static int
bridge_open_broker(struct bridge *b, char *err, size_t errlen)
{
	struct broker_env env = {b->loop, b->conf, b->node};
	struct broker_events ev = {
	    .message = bridge_message_cb,
	    .subscribed = bridge_subscribed_cb,
	    .unsubscribed = bridge_unsubscribed_cb,
	    .sub_lost = bridge_sub_lost_cb,
	    .sub_ready = bridge_sub_ready_cb,
	    .presence_lost = bridge_presence_lost_cb,
	    .state = bridge_state_cb,
	    .fatal = bridge_fatal_cb,
	    .arg = b,
	};

	b->broker = broker_new(&env, &ev, err, errlen);
	return b->broker != NULL ? 0 : -1;
}

/* The pure modules and the timers. */
static int
bridge_open_core(struct bridge *b)
{
	b->interest = interest_new(
	    b->conf->routing == CONF_ROUTING_BROADCAST, bridge_ack_cb, b);
	b->presence = presence_new();
	b->workers = workers_new(bridge_worker_forget_cb, b);
	if (b->interest == NULL || b->presence == NULL || b->workers == NULL)
		return -1;
	interest_set_grace(
	    b->interest, INTEREST_GRACE_MS, bridge_clock, b->loop);
	/* Our hook first: it may queue work the bus's hook then sends. */
	if (loop_hook_add(b->loop, bridge_hook, b) == -1)
		return -1;
	b->hb_timer = loop_timer_add(b->loop, b->conf->heartbeat_ms,
	    b->conf->heartbeat_ms, bridge_hb_cb, b);
	b->info_timer = loop_timer_add(b->loop, BRIDGE_NODE_INFO_MS,
	    BRIDGE_NODE_INFO_MS, bridge_info_cb, b);
	b->grace_timer = loop_timer_add(b->loop, BRIDGE_GRACE_TICK_MS,
	    BRIDGE_GRACE_TICK_MS, bridge_grace_cb, b);
	if (b->hb_timer == 0 || b->info_timer == 0 || b->grace_timer == 0)
		return -1;
	return 0;
}

struct bridge *
bridge_new(struct loop *loop, const struct conf *c, const char *node,
    uint64_t epoch, char *err, size_t errlen)
{
	struct bridge *b = calloc(1, sizeof(*b));
	struct upstream_deps d;

	if (b == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	b->conf = c;
	b->loop = loop;
	snprintf(b->node, sizeof(b->node), "%s", node);
	b->node_len = strlen(b->node);
	b->epoch = epoch;
	b->started_mono = clock_mono_ms();
	b->started_unix = (uint64_t)time(NULL);
	msgpack_zone_init(&b->zone, 2048);
	snprintf(err, errlen, "out of memory");
	if (bridge_open_core(b) == -1 ||
	    bridge_open_bus(b, err, errlen) == -1 ||
	    bridge_open_broker(b, err, errlen) == -1)
		goto fail;
	d = (struct upstream_deps){loop, b->workers, b->interest, b->presence,
	    b->broker, epoch, b->bus, c};
	if ((b->upstream = upstream_new(&d)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	systemd_status(b->broker->ops->kind, false);
	if (broker_start(b->broker) != 0) {
		snprintf(err, errlen, "broker: cannot start (out of memory)");
		goto fail;
	}
	return b;
fail:
	bridge_free(b);
	return NULL;
}

void
bridge_free(struct bridge *b)
{
	if (b == NULL)
		return;
	loop_hook_del(b->loop, bridge_hook, b);
	if (b->hb_timer != 0)
		loop_timer_del(b->loop, b->hb_timer);
	if (b->info_timer != 0)
		loop_timer_del(b->loop, b->info_timer);
	if (b->grace_timer != 0)
		loop_timer_del(b->loop, b->grace_timer);
	if (b->stop_timer != 0)
		loop_timer_del(b->loop, b->stop_timer);
	broker_free(b->broker);
	bus_close(b->bus);
	upstream_free(b->upstream);
	/* The modules free their per-worker state, then the registry. */
	interest_free(b->interest);
	presence_free(b->presence);
	workers_free(b->workers);
	msgpack_zone_destroy(&b->zone);
	free(b);
}

static void
bridge_counters_broker(struct bridge *b, struct bridge_counters *c)
{
	struct broker_status st = {0};

	broker_status(b->broker, &st);
	c->broker = st.kind;
	c->broker_up = st.up;
	c->sub_up = st.sub_up;
	c->cmd_up = st.cmd_up;
	c->sub_reconnects = st.sub_reconnects;
	c->cmd_reconnects = st.cmd_reconnects;
	c->connect_failures = st.connect_failures;
	c->sub_resets = st.sub_resets;
	c->upstream_writes = st.writes;
	c->queued_writes = st.queued;
	c->drops[BRIDGE_DROP_REDIS_DOWN] = st.drops[BROKER_DROP_DOWN];
	/* redis_error keeps its old meaning for Redis nodes and sums every
	 * reason a write failed at the broker for the others; the reasons
	 * apart are in broker_drops. */
	c->drops[BRIDGE_DROP_REDIS_ERROR] = 0;
	for (int d = 0; d < BROKER_DROP_COUNT; d++)
		if (d != BROKER_DROP_DOWN)
			c->drops[BRIDGE_DROP_REDIS_ERROR] += st.drops[d];
	memcpy(c->broker_drops, st.drops, sizeof(c->broker_drops));
	c->outages = st.outages;
	c->last_outage_ms = st.last_outage_ms;
	c->down_for_ms = st.down_for_ms;
	memcpy(c->last_error, st.last_error, sizeof(c->last_error));
	c->history = st.history != NULL ? st.history : "off";
	memcpy(c->history_error, st.history_error, sizeof(c->history_error));
	c->history_load_failures = st.history_load_failures;
	c->history_reads = st.history_reads;
}

void
bridge_counters(struct bridge *b, struct bridge_counters *out)
{
	struct bus_stats bs;
	struct upstream_stats us;
	struct bridge_counters c = {0};

	memcpy(c.drops, b->drops, sizeof(b->drops));
	bridge_counters_broker(b, &c); /* the broker's drops */
	bus_stats(b->bus, &bs);
	upstream_stats(b->upstream, &us);
	c.drops[BRIDGE_DROP_BAD_ADDRESS] += us.bad_address;
	c.drops[BRIDGE_DROP_ENCODE] += us.encode;
	c.drops[BRIDGE_DROP_BAD_UPSTREAM] = us.bad_upstream;
	c.drops[BRIDGE_DROP_BUS_SEND] = bs.bus_send_errors;
	c.subscriptions = interest_subscribed(b->interest);
	c.addresses = interest_addresses(b->interest);
	c.acks_waiting = interest_waiting(b->interest);
	c.lingering = interest_lingering(b->interest);
	c.redis_messages = b->broker_messages;
	c.bus_msgs = b->bus_msgs;
	c.bus_acks = b->bus_acks;
	c.bus_heartbeats = b->bus_heartbeats;
	c.bus_batches = bs.bus_messages;
	c.listener_restarts = bs.listener_restarts;
	c.last_seq = bs.msg_seqs; /* every slot stream's, summed */
	c.upstream_envelopes = us.envelopes;
	c.range_requests = us.range_requests;
	c.range_bad = us.range_bad;
	c.range_failed = us.range_failed;
	c.ranges_recovered = us.ranges_recovered;
	c.range_entries = us.range_entries;
	c.workers = workers_count(b->workers);
	c.connections = presence_connections(b->presence);
	c.users = presence_users(b->presence);
	c.uptime_s = (clock_mono_ms() - b->started_mono) / 1000;
	c.version = WSPUSH_VERSION;
	*out = c;
}

struct bridge_worker_each_ctx {
	bridge_worker_fn *fn;
	void *arg;
};

static void
bridge_worker_each_cb(void *arg, struct worker *w)
{
	struct bridge_worker_each_ctx *ctx = arg;
	struct bridge_worker_info info = {
	    .slot = w->slot,
	    .gen = w->gen,
	    .pid = w->pid,
	    .last_seen_ms = w->last_seen_ms,
	    .n_counters = w->n_counters,
	    .names = (const char *const *)w->names,
	    .values = w->values,
	};

	ctx->fn(ctx->arg, &info);
}

void
bridge_worker_each(struct bridge *b, bridge_worker_fn *fn, void *arg)
{
	struct bridge_worker_each_ctx ctx = {fn, arg};

	workers_each(b->workers, bridge_worker_each_cb, &ctx);
}

void
bridge_link_each(struct bridge *b, broker_link_fn *fn, void *arg)
{
	broker_link_each(b->broker, fn, arg);
}
