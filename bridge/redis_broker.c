/*
 * redis_broker.c - the Redis broker: subscriber side (subscriptions,
 * messages, liveness probe), command side (queued upstream writes,
 * presence) and their link state, behind broker.h's ops.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keys.h"
#include "log.h"
#include "redis_broker.h"
#include "redis_link.h"
#include "redis_presence.h"
#include "redis_queue.h"

/* A subscriber link that misses its own probe this long is dead. */
#define REDIS_BROKER_HB_MIN_MS 3000
/* Write errors: at most one line per this long. */
#define REDIS_BROKER_ERR_LOG_MS 10000

struct redis_broker {
	struct broker base; /* first: the ops */
	struct loop *loop;
	const struct conf *conf;
	struct broker_events ev;
	char node[CONF_NODE_ID_MAX];
	struct redis_link *sub, *cmd;
	struct redis_queue *queue;
	struct redis_presence *presence;

	char prefix[CONF_PREFIX_MAX + 2]; /* "<prefix>:" */
	size_t prefix_len;
	char hb_chan[KEYS_MAX], hb_prefix[KEYS_MAX];
	size_t hb_chan_len, hb_prefix_len;
	char key_inbound[KEYS_MAX], key_events[KEYS_MAX];
	char maxlen[24];

	uint64_t hb_timer;
	uint64_t last_hb_seen;
	bool stopping;
	bool up; /* last state reported through ev.state */
	struct broker_outage outage;
	uint64_t sub_resets, messages;
	uint64_t drops[BROKER_DROP_COUNT];
	struct log_limit err_log;
	struct history hist;
	uint64_t history_reads;
	bool freeing; /* range answers are not called back any more */
};

static const struct broker_ops redis_broker_ops;

static struct redis_broker *
redis_broker_of(struct broker *b)
{
	return (struct redis_broker *)b;
}

/* Reports a change of "both links up" and records outages there. */
static void
redis_broker_state(struct redis_broker *rb)
{
	bool up = redis_link_is_up(rb->sub) && redis_link_is_up(rb->cmd);
	uint64_t failures = redis_link_connect_failures(rb->sub) +
			    redis_link_connect_failures(rb->cmd);

	if (up == rb->up)
		return;
	rb->up = up;
	broker_outage_note(&rb->outage, up, failures > 0, loop_now(rb->loop));
	rb->ev.state(rb->ev.arg, up);
}

/* ---- subscriber side ---- */

static bool
redis_broker_is_str(const redisReply *r)
{
	return r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS;
}

static bool
redis_broker_streq(const redisReply *r, const char *s)
{
	return redis_broker_is_str(r) && r->len == strlen(s) &&
	       memcmp(r->str, s, r->len) == 0;
}

static bool
redis_broker_is_hb(const struct redis_broker *rb, const redisReply *ch)
{
	return ch->len == rb->hb_chan_len &&
	       memcmp(ch->str, rb->hb_chan, rb->hb_chan_len) == 0;
}

static bool
redis_broker_prefixed(const struct redis_broker *rb, const redisReply *ch)
{
	return ch->len > rb->prefix_len &&
	       memcmp(ch->str, rb->prefix, rb->prefix_len) == 0;
}

/* A message on channel ch: to the core, without the prefix. */
static void
redis_broker_deliver(
    struct redis_broker *rb, const redisReply *ch, const redisReply *payload)
{
	rb->messages++;
	if (!redis_broker_prefixed(rb, ch)) {
		/* Not ours: an empty address, which the core drops. */
		rb->ev.message(rb->ev.arg, "", 0, payload->str, payload->len);
		return;
	}
	rb->ev.message(rb->ev.arg, ch->str + rb->prefix_len,
	    ch->len - rb->prefix_len, payload->str, payload->len);
}

/* A (un)subscribe confirmation of one channel. */
static void
redis_broker_confirmed(
    struct redis_broker *rb, bool subscribed, const redisReply *ch)
{
	const char *addr = ch->str + rb->prefix_len;
	size_t len = ch->len - rb->prefix_len;

	if (redis_broker_is_hb(rb, ch) || !redis_broker_prefixed(rb, ch))
		return;
	if (subscribed)
		rb->ev.subscribed(rb->ev.arg, addr, len);
	else
		rb->ev.unsubscribed(rb->ev.arg, addr, len);
}

/* Every reply of the subscriber link. */
static void
redis_broker_push_cb(void *arg, struct redis_link *rl, const redisReply *r)
{
	struct redis_broker *rb = arg;
	redisReply **e;

	if (r->type != REDIS_REPLY_ARRAY || r->elements < 3)
		return;
	e = r->element;
	for (size_t i = 0; i < r->elements; i++) {
		if (e[i]->type != REDIS_REPLY_STRING &&
		    e[i]->type != REDIS_REPLY_INTEGER &&
		    e[i]->type != REDIS_REPLY_STATUS)
			return;
	}
	if (!redis_broker_is_str(e[0]) || !redis_broker_is_str(e[1]))
		return;
	if (redis_broker_streq(e[0], "message") && redis_broker_is_str(e[2])) {
		if (redis_broker_is_hb(rb, e[1]))
			rb->last_hb_seen = loop_now(rb->loop);
		else
			redis_broker_deliver(rb, e[1], e[2]);
	} else if (redis_broker_streq(e[0], "pmessage") && r->elements >= 4 &&
		   redis_broker_is_str(e[2]) && redis_broker_is_str(e[3])) {
		if (redis_broker_is_hb(rb, e[2]))
			rb->last_hb_seen = loop_now(rb->loop);
		if (e[2]->len >= rb->hb_prefix_len &&
		    memcmp(e[2]->str, rb->hb_prefix, rb->hb_prefix_len) == 0)
			return; /* probes are never delivered */
		redis_broker_deliver(rb, e[2], e[3]);
	} else if (redis_broker_streq(e[0], "subscribe")) {
		redis_broker_confirmed(rb, true, e[1]);
	} else if (redis_broker_streq(e[0], "unsubscribe")) {
		redis_broker_confirmed(rb, false, e[1]);
	} else if (redis_broker_streq(e[0], "psubscribe")) {
		log_info("redis: pattern subscribed pattern=%.*s",
		    (int)e[1]->len, e[1]->str);
		rb->ev.subscribed(rb->ev.arg, NULL, 0);
	}
}

/* One SUBSCRIBE or UNSUBSCRIBE of prefixed names. */
static int
redis_broker_sub_cmd(struct redis_broker *rb, const char *verb,
    const char *const *addrs, const size_t *lens, size_t n)
{
	const char **argv = NULL;
	size_t *alens = NULL, total = 0;
	char *buf = NULL, *p;
	int rc = BROKER_ENOMEM;

	if (!redis_link_is_up(rb->sub))
		return BROKER_EAGAIN;
	for (size_t i = 0; i < n; i++)
		total += rb->prefix_len + lens[i];
	argv = calloc(n + 1, sizeof(*argv));
	alens = calloc(n + 1, sizeof(*alens));
	buf = malloc(total + 1);
	if (argv == NULL || alens == NULL || buf == NULL)
		goto out;
	argv[0] = verb;
	alens[0] = strlen(verb);
	p = buf;
	for (size_t i = 0; i < n; i++) {
		memcpy(p, rb->prefix, rb->prefix_len);
		memcpy(p + rb->prefix_len, addrs[i], lens[i]);
		argv[i + 1] = p;
		alens[i + 1] = rb->prefix_len + lens[i];
		p += alens[i + 1];
	}
	rc = redis_link_subscribe(rb->sub, (int)n + 1, argv, alens) == 0
		 ? 0
		 : BROKER_EAGAIN;
	log_debug("redis: %s channels=%zu rc=%d", verb, n, rc);
out:
	free(argv);
	free(alens);
	free(buf);
	return rc;
}

static int
redis_broker_subscribe(
    struct broker *b, const char *const *addrs, const size_t *lens, size_t n)
{
	return redis_broker_sub_cmd(
	    redis_broker_of(b), "SUBSCRIBE", addrs, lens, n);
}

static int
redis_broker_unsubscribe(
    struct broker *b, const char *const *addrs, const size_t *lens, size_t n)
{
	return redis_broker_sub_cmd(
	    redis_broker_of(b), "UNSUBSCRIBE", addrs, lens, n);
}

static int
redis_broker_subscribe_all(struct broker *b)
{
	struct redis_broker *rb = redis_broker_of(b);
	char pat[KEYS_MAX];
	const char *argv[2] = {"PSUBSCRIBE", pat};
	size_t lens[2] = {10, 0};
	int n = keys_all_pattern(pat, sizeof(pat), rb->conf->prefix);

	if (n == -1)
		return BROKER_ENOMEM;
	lens[1] = (size_t)n;
	if (!redis_link_is_up(rb->sub))
		return BROKER_EAGAIN;
	return redis_link_subscribe(rb->sub, 2, argv, lens) == 0
		   ? 0
		   : BROKER_EAGAIN;
}

static void
redis_broker_sub_up_cb(void *arg, struct redis_link *rl)
{
	struct redis_broker *rb = arg;

	rb->last_hb_seen = loop_now(rb->loop);
	rb->ev.sub_ready(rb->ev.arg, true);
	redis_broker_state(rb);
}

static void
redis_broker_sub_down_cb(void *arg, struct redis_link *rl)
{
	struct redis_broker *rb = arg;

	rb->ev.sub_lost(rb->ev.arg, NULL, 0);
	rb->ev.sub_ready(rb->ev.arg, false);
	redis_broker_state(rb);
}

/* ---- command side ---- */

/* ---- history: the function library, per command-link connection ---- */

static void
redis_broker_history_config_cb(void *arg, const redisReply *r)
{
	struct redis_broker *rb = arg;
	char line[512];

	if (r != NULL && !rb->freeing &&
	    history_on_config(&rb->hist, r, line, sizeof(line)) != NULL)
		log_warnx("%s", line);
}

static void
redis_broker_history_load_cb(void *arg, const redisReply *r)
{
	struct redis_broker *rb = arg;
	char line[512];
	const char *msg;

	if (rb->freeing)
		return;
	msg = history_on_load(&rb->hist, r, line, sizeof(line));
	if (msg == NULL)
		return;
	if (rb->hist.state == HISTORY_READY)
		log_info("%s", msg);
	else
		log_errx("%s", msg);
}

/* Sent first on every connection: a restarted Redis without persistence
 * has no functions. Pipelined ahead of the queued writes, so queued
 * FCALLs find the library. */
static void
redis_broker_history_load(struct redis_broker *rb)
{
	struct history_argv check, load;

	if (rb->hist.state == HISTORY_OFF)
		return;
	history_connected(&rb->hist, &check, &load);
	if (redis_link_command(rb->cmd, redis_broker_history_config_cb, rb,
		check.argc, check.argv, check.lens) != 0 ||
	    redis_link_command(rb->cmd, redis_broker_history_load_cb, rb,
		load.argc, load.argv, load.lens) != 0)
		log_warnx("history: could not send FUNCTION LOAD; retried at "
			  "the next connection");
}

static void
redis_broker_cmd_up_cb(void *arg, struct redis_link *rl)
{
	struct redis_broker *rb = arg;

	redis_broker_history_load(rb);
	/* DEL, then (unless stopping) everything the core knows. */
	redis_presence_delete(rb->presence);
	if (!rb->stopping)
		rb->ev.presence_lost(rb->ev.arg);
	redis_queue_flush(rb->queue);
	rb->last_hb_seen = loop_now(rb->loop);
	redis_broker_state(rb);
}

static void
redis_broker_cmd_down_cb(void *arg, struct redis_link *rl)
{
	struct redis_broker *rb = arg;

	history_lost(&rb->hist);
	redis_broker_state(rb);
}

static void
redis_broker_error_cb(
    void *arg, struct redis_link *rl, const char *msg, size_t len)
{
	struct redis_broker *rb = arg;
	uint64_t suppressed;

	rb->drops[BROKER_DROP_ERROR]++;
	/* A misconfigured ACL would flood. */
	if (log_limit_pass(&rb->err_log, loop_now(rb->loop),
		REDIS_BROKER_ERR_LOG_MS, &suppressed))
		log_warnx("redis: write error: %.*s errors=%" PRIu64,
		    (int)(len > 200 ? 200 : len), msg,
		    rb->drops[BROKER_DROP_ERROR]);
}

static int
redis_broker_write(
    struct redis_broker *rb, int argc, const char **argv, const size_t *lens)
{
	if (redis_queue_write(rb->queue, argc, argv, lens) == 0)
		return 0;
	rb->drops[BROKER_DROP_DOWN]++;
	return BROKER_EFULL;
}

static int
redis_broker_publish(struct broker *b, const char *addr, size_t addr_len,
    const char *data, size_t data_len)
{
	struct redis_broker *rb = redis_broker_of(b);
	char chan[KEYS_MAX];
	int n =
	    keys_channel(chan, sizeof(chan), rb->conf->prefix, addr, addr_len);
	const char *argv[3] = {"PUBLISH", chan, data};
	size_t lens[3] = {7, 0, data_len};
	struct history_argv fa;

	if (n == -1)
		return BROKER_ENOMEM;
	lens[1] = (size_t)n;
	/* With history, through the function (it unwraps the envelope the
	 * core made, stores it and publishes it with its id); a Redis that
	 * refused the library gets plain PUBLISH: delivery goes on. */
	if (rb->hist.state == HISTORY_READY ||
	    rb->hist.state == HISTORY_LOADING) {
		history_publish_argv(
		    &fa, chan, (size_t)n, data, data_len, NULL, 0, false);
		return redis_broker_write(rb, fa.argc, fa.argv, fa.lens);
	}
	return redis_broker_write(rb, 3, argv, lens);
}

/* One range() in flight: what parsing its reply needs. */
struct redis_broker_range {
	struct redis_broker *rb;
	broker_range_fn *fn;
	void *arg;
	uint32_t limit;
	size_t since_len;
	bool has_since;
	char since[ENV_SID_MAX + 1];
};

static void
redis_broker_range_cb(void *arg, const redisReply *r)
{
	struct redis_broker_range *q = arg;
	struct redis_broker *rb = q->rb;
	struct history_range h;
	char why[200];
	uint64_t suppressed;
	int rc;

	if (rb->freeing) {
		free(q);
		return;
	}
	rc = history_range_parse(r, q->has_since ? q->since : NULL,
	    q->since_len, q->limit, &h, why, sizeof(why));
	if (rc == HISTORY_RANGE_OK) {
		rb->history_reads++;
		q->fn(q->arg, &h, RANGE_OK);
		history_range_free(&h);
	} else {
		if (rc != HISTORY_RANGE_LOST &&
		    log_limit_pass(&rb->err_log, loop_now(rb->loop),
			REDIS_BROKER_ERR_LOG_MS, &suppressed))
			log_warnx("history: range read failed: %s", why);
		q->fn(q->arg, NULL, RANGE_FAILED);
	}
	free(q);
}

static int
redis_broker_range(struct broker *b, const char *addr, size_t addr_len,
    const char *since, size_t since_len, uint32_t limit, broker_range_fn *fn,
    void *arg)
{
	struct redis_broker *rb = redis_broker_of(b);
	enum range_status st = history_range_status(&rb->hist);
	struct redis_broker_range *q;
	struct history_argv a;
	char key[KEYS_MAX];
	int n;

	if (st != RANGE_OK) {
		fn(arg, NULL, st);
		return 0;
	}
	n = keys_channel(key, sizeof(key), rb->conf->prefix, addr, addr_len);
	q = calloc(1, sizeof(*q));
	if (n == -1 || q == NULL || since_len > ENV_SID_MAX ||
	    history_range_argv(&a, key, (size_t)n, since, since_len, limit) !=
		0) {
		free(q);
		fn(arg, NULL,
		    n == -1 || q == NULL ? RANGE_FAILED : RANGE_BAD_REQUEST);
		return 0;
	}
	*q = (struct redis_broker_range){.rb = rb,
	    .fn = fn,
	    .arg = arg,
	    .limit = limit,
	    .since_len = since_len,
	    .has_since = since != NULL};
	if (since != NULL)
		memcpy(q->since, since, since_len);
	if (redis_link_command(rb->cmd, redis_broker_range_cb, q, a.argc,
		a.argv, a.lens) != 0) {
		free(q);
		fn(arg, NULL, RANGE_FAILED);
	}
	return 0;
}

/* One field of a stream entry (value with its length: may be binary). */
struct redis_broker_field {
	const char *name, *value;
	size_t len;
};

#define REDIS_BROKER_FIELDS_MAX 5

/* XADD key MAXLEN ~ <inbound_maxlen> * field value ... */
static int
redis_broker_xadd(struct redis_broker *rb, const char *key,
    const struct redis_broker_field *f, int n)
{
	const char *argv[6 + 2 * REDIS_BROKER_FIELDS_MAX] = {
	    "XADD", key, "MAXLEN", "~", rb->maxlen, "*"};
	size_t lens[6 + 2 * REDIS_BROKER_FIELDS_MAX];

	for (int i = 0; i < 6; i++)
		lens[i] = strlen(argv[i]);
	for (int i = 0; i < n; i++) {
		argv[6 + 2 * i] = f[i].name;
		lens[6 + 2 * i] = strlen(f[i].name);
		argv[7 + 2 * i] = f[i].value;
		lens[7 + 2 * i] = f[i].len;
	}
	return redis_broker_write(rb, 6 + 2 * n, argv, lens);
}

static int
redis_broker_inbound(struct broker *b, const struct broker_inbound *in)
{
	struct redis_broker *rb = redis_broker_of(b);
	const struct redis_broker_field f[4] = {
	    {"user", in->user, in->user_len},
	    {"conn", in->conn, in->conn_len},
	    {"node", rb->node, strlen(rb->node)},
	    {"data", in->data, in->data_len},
	};

	return redis_broker_xadd(rb, rb->key_inbound, f, 4);
}

static int
redis_broker_event(struct broker *b, const struct broker_event *ev)
{
	struct redis_broker *rb = redis_broker_of(b);
	const struct redis_broker_field f[5] = {
	    {"type", ev->type, ev->type_len},
	    {"user", ev->user, ev->user_len},
	    {"conn", ev->conn, ev->conn_len},
	    {"node", rb->node, strlen(rb->node)},
	    {"reason", ev->reason, ev->reason_len},
	};

	return redis_broker_xadd(rb, rb->key_events, f, 5);
}

static int
redis_broker_presence_set(
    struct broker *b, const struct broker_presence *p, size_t n)
{
	struct redis_broker *rb = redis_broker_of(b);

	if (!rb->stopping)
		redis_presence_set(rb->presence, p, n);
	return 0;
}

static int
redis_broker_node_info(struct broker *b, const struct broker_node_info *ni)
{
	struct redis_broker *rb = redis_broker_of(b);

	if (!rb->stopping)
		redis_presence_node(rb->presence, ni);
	return 0;
}

/* ---- liveness, hooks, life ---- */

static void
redis_broker_hb_cb(struct loop *l, uint64_t id, void *arg)
{
	struct redis_broker *rb = arg;
	uint64_t now = loop_now(l);
	uint64_t limit = 3 * (uint64_t)rb->conf->heartbeat_ms;

	if (limit < REDIS_BROKER_HB_MIN_MS)
		limit = REDIS_BROKER_HB_MIN_MS;
	/* Liveness of the subscriber link: our own PUBLISH must come back. */
	if (redis_link_is_up(rb->cmd)) {
		char ts[24];
		const char *argv[3] = {"PUBLISH", rb->hb_chan, ts};
		size_t lens[3] = {7, rb->hb_chan_len, 0};

		lens[2] = (size_t)snprintf(ts, sizeof(ts), "%" PRIu64, now);
		(void)redis_link_write(rb->cmd, 3, argv, lens);
	} else {
		rb->last_hb_seen = now; /* cannot probe: do not blame sub */
	}
	if (redis_link_is_up(rb->sub) && now - rb->last_hb_seen > limit) {
		log_warnx("redis: link=sub silent for %" PRIu64
			  " ms (own heartbeat not received): reconnecting",
		    now - rb->last_hb_seen);
		rb->sub_resets++;
		redis_link_reset(rb->sub, "no_heartbeat");
		rb->last_hb_seen = now;
	}
}

/* Retries what is queued (a write the link refused on reconnect). */
static void
redis_broker_hook(struct loop *l, void *arg)
{
	struct redis_broker *rb = arg;

	if (redis_queue_len(rb->queue) > 0 && redis_link_is_up(rb->cmd))
		redis_queue_flush(rb->queue);
}

/* The handshake probes: both prove the user's permissions for what the
 * link does (NOPERM is a failed connect, not an up link that fails). */
static int
redis_broker_probes(struct redis_broker *rb)
{
	const char *sub[2] = {"SUBSCRIBE", rb->hb_chan};
	size_t sub_lens[2] = {9, rb->hb_chan_len};
	const char *cmd[3] = {"PUBLISH", rb->hb_chan, "0"};
	size_t cmd_lens[3] = {7, rb->hb_chan_len, 1};

	if (redis_link_set_probe(rb->sub, 2, sub, sub_lens) == -1 ||
	    redis_link_set_probe(rb->cmd, 3, cmd, cmd_lens) == -1)
		return -1;
	return 0;
}

static int
redis_broker_start(struct broker *b)
{
	struct redis_broker *rb = redis_broker_of(b);

	broker_outage_note(&rb->outage, false, false, loop_now(rb->loop));
	rb->hb_timer = loop_timer_add(rb->loop, rb->conf->heartbeat_ms,
	    rb->conf->heartbeat_ms, redis_broker_hb_cb, rb);
	if (rb->hb_timer == 0)
		return BROKER_ENOMEM;
	redis_link_start(rb->cmd);
	redis_link_start(rb->sub);
	return 0;
}

static void
redis_broker_stop(struct broker *b)
{
	struct redis_broker *rb = redis_broker_of(b);

	rb->stopping = true;
	if (redis_link_is_up(rb->cmd))
		redis_presence_delete(rb->presence);
}

static bool
redis_broker_drained(struct broker *b)
{
	struct redis_broker *rb = redis_broker_of(b);

	return redis_queue_len(rb->queue) == 0 &&
	       redis_link_outstanding(rb->cmd) == 0;
}

static void
redis_broker_free(struct broker *b)
{
	struct redis_broker *rb = redis_broker_of(b);

	rb->freeing = true;
	loop_hook_del(rb->loop, redis_broker_hook, rb);
	if (rb->hb_timer != 0)
		loop_timer_del(rb->loop, rb->hb_timer);
	if (rb->queue != NULL && redis_queue_len(rb->queue) > 0)
		log_warnx("redis: stop: gave up flushing queued=%zu "
			  "outstanding=%" PRIu64,
		    redis_queue_len(rb->queue),
		    rb->cmd != NULL ? redis_link_outstanding(rb->cmd) : 0);
	redis_link_free(rb->sub);
	redis_link_free(rb->cmd);
	redis_queue_free(rb->queue);
	redis_presence_free(rb->presence);
	history_fini(&rb->hist);
	free(rb);
}

static void
redis_broker_status(struct broker *b, struct broker_status *st)
{
	struct redis_broker *rb = redis_broker_of(b);
	uint64_t now = loop_now(rb->loop);
	const char *err;

	memset(st, 0, sizeof(*st));
	st->kind = "redis";
	st->sub_up = redis_link_is_up(rb->sub);
	st->cmd_up = redis_link_is_up(rb->cmd);
	st->up = st->sub_up && st->cmd_up;
	st->sub_reconnects = redis_link_reconnects(rb->sub);
	st->cmd_reconnects = redis_link_reconnects(rb->cmd);
	st->connect_failures = redis_link_connect_failures(rb->sub) +
			       redis_link_connect_failures(rb->cmd);
	st->sub_resets = rb->sub_resets;
	st->outages = rb->outage.outages;
	st->last_outage_ms = rb->outage.last_outage_ms;
	st->down_for_ms = broker_outage_down_for(&rb->outage, now);
	/* The error of a link that is down; else the last one seen. */
	err = redis_link_last_error(st->sub_up ? rb->cmd : rb->sub);
	if (err[0] == '\0')
		err = redis_link_last_error(st->sub_up ? rb->sub : rb->cmd);
	snprintf(st->last_error, sizeof(st->last_error), "%s", err);
	st->writes = redis_queue_sent(rb->queue);
	st->queued = redis_queue_len(rb->queue);
	memcpy(st->drops, rb->drops, sizeof(st->drops));
	st->messages = rb->messages;
	st->history = history_state_str(rb->hist.state);
	snprintf(
	    st->history_error, sizeof(st->history_error), "%s", rb->hist.err);
	st->history_load_failures = rb->hist.load_failures;
	st->history_reads = rb->history_reads;
}

static void
redis_broker_link_each(struct broker *b, broker_link_fn *fn, void *arg)
{
	struct redis_broker *rb = redis_broker_of(b);
	struct broker_link_info li;

	redis_link_info(rb->sub, &li);
	fn(arg, &li);
	redis_link_info(rb->cmd, &li);
	fn(arg, &li);
}

static const struct broker_ops redis_broker_ops = {
    .kind = "redis",
    .start = redis_broker_start,
    .stop = redis_broker_stop,
    .drained = redis_broker_drained,
    .free = redis_broker_free,
    .subscribe = redis_broker_subscribe,
    .unsubscribe = redis_broker_unsubscribe,
    .subscribe_all = redis_broker_subscribe_all,
    .publish = redis_broker_publish,
    .inbound = redis_broker_inbound,
    .event = redis_broker_event,
    .presence_set = redis_broker_presence_set,
    .node_info = redis_broker_node_info,
    .status = redis_broker_status,
    .link_each = redis_broker_link_each,
    .range = redis_broker_range,
};

/* Every name built once; -1 if one does not fit. */
static int
redis_broker_names(struct redis_broker *rb, const struct conf *c)
{
	int n;

	snprintf(rb->prefix, sizeof(rb->prefix), "%s:", c->prefix);
	rb->prefix_len = strlen(rb->prefix);
	snprintf(rb->maxlen, sizeof(rb->maxlen), "%" PRIu64, c->inbound_maxlen);
	if ((n = keys_hb_channel(
		 rb->hb_chan, sizeof(rb->hb_chan), c->prefix, rb->node)) == -1)
		return -1;
	rb->hb_chan_len = (size_t)n;
	if ((n = keys_hb_prefix(
		 rb->hb_prefix, sizeof(rb->hb_prefix), c->prefix)) == -1)
		return -1;
	rb->hb_prefix_len = (size_t)n;
	if (keys_inbound(rb->key_inbound, sizeof(rb->key_inbound), c->prefix) ==
		-1 ||
	    keys_events(rb->key_events, sizeof(rb->key_events), c->prefix) ==
		-1)
		return -1;
	return 0;
}

struct broker *
redis_broker_new(const struct broker_env *env, const struct broker_events *ev,
    char *err, size_t errlen)
{
	struct redis_broker *rb = calloc(1, sizeof(*rb));
	struct redis_link_cbs sub_cbs, cmd_cbs;

	if (rb == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	rb->base.ops = &redis_broker_ops;
	rb->loop = env->loop;
	rb->conf = env->conf;
	rb->ev = *ev;
	snprintf(rb->node, sizeof(rb->node), "%s", env->node);
	if (redis_broker_names(rb, env->conf) == -1) {
		snprintf(err, errlen, "redis.prefix or node id too long");
		free(rb);
		return NULL;
	}
	if (history_init(&rb->hist, env->conf) == -1) {
		snprintf(err, errlen, "out of memory (history library)");
		free(rb);
		return NULL;
	}
	sub_cbs = (struct redis_link_cbs){.up = redis_broker_sub_up_cb,
	    .down = redis_broker_sub_down_cb,
	    .push = redis_broker_push_cb,
	    .arg = rb};
	cmd_cbs = (struct redis_link_cbs){.up = redis_broker_cmd_up_cb,
	    .down = redis_broker_cmd_down_cb,
	    .error = redis_broker_error_cb,
	    .arg = rb};
	rb->sub = redis_link_new(rb->loop, env->conf, "sub", &sub_cbs);
	rb->cmd = redis_link_new(rb->loop, env->conf, "cmd", &cmd_cbs);
	if (rb->sub == NULL || rb->cmd == NULL ||
	    (rb->queue = redis_queue_new(rb->cmd)) == NULL ||
	    (rb->presence = redis_presence_new(
		 rb->cmd, env->conf->prefix, rb->node)) == NULL ||
	    redis_broker_probes(rb) == -1 ||
	    loop_hook_add(rb->loop, redis_broker_hook, rb) == -1) {
		snprintf(err, errlen, "out of memory");
		redis_broker_free(&rb->base);
		return NULL;
	}
	return &rb->base;
}
