/*
 * amqp_broker.c - broker.h over amqp_conn: subscriptions as queue
 * bindings, deliveries as messages, upstream writes as confirmed
 * publishes (queued, bounded, while they cannot go out).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "amqp_broker.h"
#include "amqp_conn.h"
#include "dlist.h"
#include "log.h"

#define HDR_MAX 4

/* An upstream publish waiting to go out; strings live in buf. */
struct apub {
	struct dlist_node node;
	const char *exchange; /* one of the broker's names */
	const char *type;     /* static */
	bool mandatory, persistent;
	size_t n_headers;
	const char *hnames[HDR_MAX]; /* static */
	size_t hoff[HDR_MAX], hlen[HDR_MAX];
	size_t key_len, body_off, body_len, size;
	char buf[]; /* key, header values, body */
};

/*
 * An address longer than an AMQP routing key can be (255 bytes: a
 * channel name near the 256-byte limit). Nothing can be published to it
 * on the direct exchange, so there is nothing to bind: its subscription
 * is acknowledged as it stands (the fanout exchange, with a wspush-to
 * header, still reaches it), from the loop rather than inside the core's
 * call.
 */
struct unbindable {
	struct dlist_node node;
	bool bind;
	size_t len;
	char addr[];
};

struct amqp_broker {
	struct broker base; /* first: the core sees a struct broker */
	struct broker_events ev;
	struct loop *loop;
	const struct conf *conf;
	char node[CONF_NODE_ID_MAX];
	bool broadcast;
	bool stopping;
	bool ever_up;
	bool hooked;
	bool fatal_told; /* events.fatal() called */
	struct amqp_conn *conn;
	struct broker_outage outage;
	uint64_t all_timer;  /* acknowledges subscribe_all() */
	uint64_t long_timer; /* acknowledges struct unbindable */
	struct dlist longs;  /* struct unbindable */

	struct dlist queue; /* struct apub, oldest first */
	size_t queue_n, queue_bytes;

	uint64_t writes, messages;
	uint64_t drops_down;
	uint64_t drops_long; /* publishes to an address no key can carry */
	char refused[BROKER_ERR_MAX];
};

static const struct broker_ops amqp_broker_ops;

static struct amqp_broker *
AB(struct broker *b)
{
	return (struct amqp_broker *)b;
}

/* ---- upstream publishes ---- */

static int
pub_send(struct amqp_broker *ab, const struct apub *q)
{
	amqp_bytes_t hv[HDR_MAX];
	struct amqp_pub p = {
	    .exchange = q->exchange,
	    .key = {q->key_len, (void *)(uintptr_t)q->buf},
	    .mandatory = q->mandatory,
	    .persistent = q->persistent,
	    .type = q->type,
	    .n_headers = q->n_headers,
	    .hnames = q->hnames,
	    .hvalues = hv,
	    .body = {q->body_len, (void *)(uintptr_t)(q->buf + q->body_off)},
	};

	for (size_t i = 0; i < q->n_headers; i++) {
		hv[i].bytes = (void *)(uintptr_t)(q->buf + q->hoff[i]);
		hv[i].len = q->hlen[i];
	}
	if (amqp_conn_publish(ab->conn, &p) == -1)
		return -1;
	ab->writes++;
	return 0;
}

static void
queue_flush(struct amqp_broker *ab)
{
	struct dlist_node *n;

	while ((n = dlist_first(&ab->queue)) != NULL) {
		struct apub *q = DLIST_ENTRY(n, struct apub, node);

		if (!amqp_conn_can_publish(ab->conn, q->size))
			return;
		if (pub_send(ab, q) == -1)
			return; /* went down: keep it for the next connection */
		dlist_remove(n);
		ab->queue_n--;
		ab->queue_bytes -= q->size;
		free(q);
	}
}

/*
 * Builds a publish (copies everything) and sends it now, or queues it.
 * hv/hl are the header values for hnames. Returns 0, or BROKER_EFULL /
 * BROKER_ENOMEM when dropped (counted).
 */
static int
pub_write(struct amqp_broker *ab, const char *exchange, const char *key,
    size_t key_len, bool mandatory, bool persistent, const char *type,
    size_t n_headers, const char *const *hnames, const char *const *hv,
    const size_t *hl, const char *body, size_t body_len)
{
	size_t size = key_len + body_len, off;
	struct apub *q;

	for (size_t i = 0; i < n_headers; i++)
		size += hl[i];
	if (!dlist_empty(&ab->queue))
		queue_flush(ab);
	if (ab->queue_n >= AMQP_BROKER_QUEUE_MAX ||
	    ab->queue_bytes + size > AMQP_BROKER_QUEUE_BYTES) {
		/* DROP: the broker is down (or not confirming) and the queue
		 * is full; counted as BROKER_DROP_DOWN. */
		ab->drops_down++;
		return BROKER_EFULL;
	}
	q = malloc(sizeof(*q) + size + 1);
	if (q == NULL) {
		ab->drops_down++;
		return BROKER_ENOMEM;
	}
	q->exchange = exchange;
	q->type = type;
	q->mandatory = mandatory;
	q->persistent = persistent;
	q->n_headers = n_headers;
	q->size = size;
	if (key_len > 0)
		memcpy(q->buf, key, key_len);
	q->key_len = key_len;
	off = key_len;
	for (size_t i = 0; i < n_headers; i++) {
		q->hnames[i] = hnames[i];
		if (hl[i] > 0)
			memcpy(q->buf + off, hv[i], hl[i]);
		q->hoff[i] = off;
		q->hlen[i] = hl[i];
		off += hl[i];
	}
	if (body_len > 0)
		memcpy(q->buf + off, body, body_len);
	q->body_off = off;
	q->body_len = body_len;
	if (dlist_empty(&ab->queue) && pub_send(ab, q) == 0) {
		free(q);
		return 0;
	}
	dlist_insert_tail(&ab->queue, &q->node);
	ab->queue_n++;
	ab->queue_bytes += size;
	return 0;
}

/* Before every poll() sleep: what the confirm window or a reconnect
 * freed goes out. */
static void
flush_hook(struct loop *l, void *arg)
{
	struct amqp_broker *ab = arg;

	if (!dlist_empty(&ab->queue))
		queue_flush(ab);
}

/* ---- connection events ---- */

static void
note_state(struct amqp_broker *ab, bool up)
{
	struct amqp_conn_stats cs;

	amqp_conn_stats(ab->conn, &cs);
	broker_outage_note(
	    &ab->outage, up, cs.connect_failures > 0, loop_now(ab->loop));
	if (ab->ev.state != NULL)
		ab->ev.state(ab->ev.arg, up);
}

static void
conn_up_cb(void *arg)
{
	struct amqp_broker *ab = arg;

	ab->ever_up = true;
	note_state(ab, true);
	ab->ev.sub_ready(ab->ev.arg, true);
	queue_flush(ab);
}

static void
longs_clear(struct amqp_broker *ab)
{
	struct dlist_node *n;

	while ((n = dlist_first(&ab->longs)) != NULL) {
		dlist_remove(n);
		free(DLIST_ENTRY(n, struct unbindable, node));
	}
}

static void
long_cb(struct loop *l, uint64_t id, void *arg)
{
	struct amqp_broker *ab = arg;
	struct dlist_node *n;

	ab->long_timer = 0;
	while ((n = dlist_first(&ab->longs)) != NULL) {
		struct unbindable *u = DLIST_ENTRY(n, struct unbindable, node);

		dlist_remove(n);
		if (u->bind)
			ab->ev.subscribed(ab->ev.arg, u->addr, u->len);
		else
			ab->ev.unsubscribed(ab->ev.arg, u->addr, u->len);
		free(u);
	}
}

static int
long_ack(struct amqp_broker *ab, bool bind, const char *addr, size_t len)
{
	struct unbindable *u = malloc(sizeof(*u) + len);

	if (u == NULL)
		return -1;
	u->bind = bind;
	u->len = len;
	memcpy(u->addr, addr, len);
	dlist_insert_tail(&ab->longs, &u->node);
	if (ab->long_timer == 0)
		ab->long_timer = loop_timer_add(ab->loop, 0, 0, long_cb, ab);
	return 0;
}

static void
conn_down_cb(void *arg)
{
	struct amqp_broker *ab = arg;

	/* The queue was exclusive: its bindings died with the connection. */
	longs_clear(ab);
	ab->ev.sub_ready(ab->ev.arg, false);
	ab->ev.sub_lost(ab->ev.arg, NULL, 0);
	note_state(ab, false);
}

static void
conn_bound_cb(void *arg, bool bind, const char *key, size_t len)
{
	struct amqp_broker *ab = arg;

	if (bind)
		ab->ev.subscribed(ab->ev.arg, key, len);
	else
		ab->ev.unsubscribed(ab->ev.arg, key, len);
}

static void
conn_delivery_cb(void *arg, const struct amqp_delivery *d)
{
	struct amqp_broker *ab = arg;
	const char *addr;
	size_t len;
	enum amqp_msg_why why;

	why = amqp_msg_address(
	    d->from_fanout, d->hdr, d->to, d->key, &addr, &len);
	switch (why) {
	case AMQP_MSG_OK:
		break;
	case AMQP_MSG_BAD_HEADER:
		/* The core validates every address and counts a bad one as
		 * bad_address: hand it what the header said ("" if it was
		 * not even a string). */
		addr = d->hdr == AMQP_MSG_HDR_STRING ? d->to.bytes : "";
		len = d->hdr == AMQP_MSG_HDR_STRING ? d->to.len : 0;
		log_debug("amqp: bad %s header on exchange %.*s",
		    AMQP_MSG_TO_HEADER, (int)d->exchange.len,
		    (const char *)d->exchange.bytes);
		break;
	case AMQP_MSG_BAD_KEY:
		addr = d->key.bytes;
		len = d->key.len;
		break;
	}
	ab->messages++;
	ab->ev.message(ab->ev.arg, addr, len, d->body, d->len);
}

static void
conn_refused_cb(void *arg, const char *msg)
{
	struct amqp_broker *ab = arg;

	snprintf(ab->refused, sizeof(ab->refused), "%s", msg);
	if (ab->ever_up) {
		log_warnx("amqp: the broker refused our declarations: %s "
			  "(retrying)",
		    msg);
		return;
	}
	/*
	 * At start, an exchange or queue that exists with another type or
	 * durability is a configuration error no retry fixes: the core
	 * stops, naming the key and quoting the broker, and the process
	 * exits with status 1. Told once: the retries that may follow until
	 * the core's stop reaches us are not news.
	 */
	if (ab->ev.fatal == NULL || ab->fatal_told) {
		log_warnx("amqp: the broker refused our declarations: %s", msg);
		return;
	}
	ab->fatal_told = true;
	ab->ev.fatal(ab->ev.arg, msg);
}

/* ---- ops ---- */

static int
ab_start(struct broker *b)
{
	struct amqp_broker *ab = AB(b);

	if (!ab->hooked) {
		if (loop_hook_add(ab->loop, flush_hook, ab) == -1)
			return BROKER_ENOMEM;
		ab->hooked = true;
	}
	note_state(ab, false);
	amqp_conn_start(ab->conn);
	return 0;
}

static void
ab_stop(struct broker *b)
{
	AB(b)->stopping = true;
}

static bool
ab_drained(struct broker *b)
{
	struct amqp_broker *ab = AB(b);
	struct amqp_conn_stats st;

	amqp_conn_stats(ab->conn, &st);
	return dlist_empty(&ab->queue) && (!st.up || st.unconfirmed == 0);
}

static void
ab_free(struct broker *b)
{
	struct amqp_broker *ab = AB(b);
	struct dlist_node *n;

	if (ab->hooked)
		loop_hook_del(ab->loop, flush_hook, ab);
	if (ab->all_timer != 0)
		loop_timer_del(ab->loop, ab->all_timer);
	if (ab->long_timer != 0)
		loop_timer_del(ab->loop, ab->long_timer);
	longs_clear(ab);
	amqp_conn_free(ab->conn);
	while ((n = dlist_first(&ab->queue)) != NULL) {
		dlist_remove(n);
		free(DLIST_ENTRY(n, struct apub, node));
	}
	free(ab);
}

static int
bind_many(struct amqp_broker *ab, bool bind, const char *const *addrs,
    const size_t *lens, size_t n)
{
	if (!amqp_conn_is_up(ab->conn))
		return BROKER_EAGAIN;
	for (size_t i = 0; i < n; i++) {
		if (lens[i] > AMQP_BROKER_KEY_MAX) {
			if (long_ack(ab, bind, addrs[i], lens[i]) == -1)
				return BROKER_ENOMEM;
			continue;
		}
		if (amqp_conn_bind(ab->conn, bind, addrs[i], lens[i]) == -1)
			return BROKER_EAGAIN; /* went down: sub_lost follows */
	}
	return 0;
}

static int
ab_subscribe(
    struct broker *b, const char *const *addrs, const size_t *lens, size_t n)
{
	return bind_many(AB(b), true, addrs, lens, n);
}

static int
ab_unsubscribe(
    struct broker *b, const char *const *addrs, const size_t *lens, size_t n)
{
	return bind_many(AB(b), false, addrs, lens, n);
}

static void
all_cb(struct loop *l, uint64_t id, void *arg)
{
	struct amqp_broker *ab = arg;

	ab->all_timer = 0;
	if (amqp_conn_is_up(ab->conn))
		ab->ev.subscribed(ab->ev.arg, NULL, 0);
}

/* Broadcast: the fanout binding is part of every connection's setup, so
 * it is in place already; acknowledged from the loop, not from inside
 * the core's call. */
static int
ab_subscribe_all(struct broker *b)
{
	struct amqp_broker *ab = AB(b);

	if (!amqp_conn_is_up(ab->conn))
		return BROKER_EAGAIN;
	if (ab->all_timer == 0)
		ab->all_timer = loop_timer_add(ab->loop, 0, 0, all_cb, ab);
	return ab->all_timer != 0 ? 0 : BROKER_ENOMEM;
}

static int
ab_publish(struct broker *b, const char *addr, size_t addr_len,
    const char *data, size_t data_len)
{
	struct amqp_broker *ab = AB(b);
	static const char *const to_name[1] = {AMQP_MSG_TO_HEADER};
	const char *hv[1] = {addr};
	size_t hl[1] = {addr_len};
	bool all = addr_len == 3 && memcmp(addr, "all", 3) == 0;

	/* Too long for a routing key: only the fanout exchange, with the
	 * address in a header, can carry it. */
	if (!ab->broadcast && addr_len > AMQP_BROKER_KEY_MAX &&
	    ab->conf->amqp_fanout_exchange[0] == '\0') {
		/* DROP: unpublishable address; counted as bad_address. */
		ab->drops_long++;
		return BROKER_EFULL;
	}
	if (ab->broadcast || addr_len > AMQP_BROKER_KEY_MAX)
		return pub_write(ab, ab->conf->amqp_fanout_exchange, "", 0,
		    false, false, NULL, all ? 0 : 1, to_name, hv, hl, data,
		    data_len);
	return pub_write(ab, ab->conf->amqp_exchange, addr, addr_len, false,
	    false, NULL, 0, NULL, NULL, NULL, data, data_len);
}

static int
ab_inbound(struct broker *b, const struct broker_inbound *in)
{
	struct amqp_broker *ab = AB(b);
	static const char *const names[3] = {"user", "conn", "node"};
	const char *hv[3] = {in->user, in->conn, ab->node};
	size_t hl[3] = {in->user_len, in->conn_len, strlen(ab->node)};
	const char *q = ab->conf->amqp_inbound_queue;

	/* The default exchange routes by queue name; mandatory, so a
	 * missing queue comes back as a return and is counted. */
	return pub_write(ab, "", q, strlen(q), true, true, "send", 3, names, hv,
	    hl, in->data, in->data_len);
}

/* Strings of the core may be NULL when empty. */
static const char *
S(const char *s)
{
	return s != NULL ? s : "";
}

static int
ab_event(struct broker *b, const struct broker_event *ev)
{
	struct amqp_broker *ab = AB(b);
	static const char *const names[4] = {"user", "conn", "node", "reason"};
	const char *hv[4] = {ev->user, ev->conn, ab->node, ev->reason};
	size_t hl[4] = {
	    ev->user_len, ev->conn_len, strlen(ab->node), ev->reason_len};
	const char *type = "event";
	json_t *o;
	char *body;
	int rc;

	if (ev->type_len == 7 && memcmp(ev->type, "connect", 7) == 0)
		type = "connect";
	else if (ev->type_len == 10 && memcmp(ev->type, "disconnect", 10) == 0)
		type = "disconnect";
	o = json_pack("{s:s%,s:s%,s:s%,s:s,s:s%}", "type", S(ev->type),
	    ev->type_len, "user", S(ev->user), ev->user_len, "conn",
	    S(ev->conn), ev->conn_len, "node", ab->node, "reason",
	    S(ev->reason), ev->reason_len);
	body = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (body == NULL) {
		ab->drops_down++;
		return BROKER_ENOMEM;
	}
	/* Not mandatory: an events exchange nobody listens to is normal. */
	rc = pub_write(ab, ab->conf->amqp_events_exchange, "", 0, false, false,
	    type, 4, names, hv, hl, body, strlen(body));
	free(body);
	return rc;
}

static int
ab_enotsup_presence(struct broker *b, const struct broker_presence *p, size_t n)
{
	return BROKER_ENOTSUP;
}

static int
ab_enotsup_node(struct broker *b, const struct broker_node_info *ni)
{
	return BROKER_ENOTSUP;
}

static void
ab_status(struct broker *b, struct broker_status *st)
{
	struct amqp_broker *ab = AB(b);
	struct amqp_conn_stats cs;
	uint64_t now = loop_now(ab->loop);
	const char *err = amqp_conn_last_error(ab->conn);

	amqp_conn_stats(ab->conn, &cs);
	memset(st, 0, sizeof(*st));
	st->kind = "amqp";
	st->up = st->sub_up = st->cmd_up = cs.up;
	st->sub_reconnects = st->cmd_reconnects =
	    cs.connects > 0 ? cs.connects - 1 : 0;
	st->connect_failures = cs.connect_failures;
	st->sub_resets = cs.heartbeat_timeouts;
	st->outages = ab->outage.outages;
	st->last_outage_ms = ab->outage.last_outage_ms;
	st->down_for_ms = broker_outage_down_for(&ab->outage, now);
	snprintf(st->last_error, sizeof(st->last_error), "%s",
	    ab->refused[0] != '\0' ? ab->refused : err);
	st->writes = ab->writes;
	st->queued = ab->queue_n;
	st->drops[BROKER_DROP_DOWN] = ab->drops_down;
	st->drops[BROKER_DROP_UNCONFIRMED] = cs.nacked + cs.lost;
	st->drops[BROKER_DROP_RETURNED] = cs.returned;
	st->drops[BROKER_DROP_OVERSIZE] = cs.oversize;
	st->drops[BROKER_DROP_BAD_ADDRESS] = ab->drops_long;
	st->messages = ab->messages;
	/* History lives in Redis streams: the config refuses it with AMQP. */
	st->history = "off";
}

static void
ab_link_each(struct broker *b, broker_link_fn *fn, void *arg)
{
	struct amqp_broker *ab = AB(b);
	struct amqp_conn_stats cs;
	struct broker_link_info li;

	amqp_conn_stats(ab->conn, &cs);
	li.name = "amqp";
	li.up = cs.up;
	li.state = cs.up ? "up" : "connecting";
	li.reconnects = cs.connects > 0 ? cs.connects - 1 : 0;
	li.connect_failures = cs.connect_failures;
	li.outages = ab->outage.outages;
	li.last_error = amqp_conn_last_error(ab->conn);
	fn(arg, &li);
}

static const struct broker_ops amqp_broker_ops = {
    .kind = "amqp",
    .start = ab_start,
    .stop = ab_stop,
    .drained = ab_drained,
    .free = ab_free,
    .subscribe = ab_subscribe,
    .unsubscribe = ab_unsubscribe,
    .subscribe_all = ab_subscribe_all,
    .publish = ab_publish,
    .inbound = ab_inbound,
    .event = ab_event,
    .presence_set = ab_enotsup_presence,
    .node_info = ab_enotsup_node,
    .status = ab_status,
    .link_each = ab_link_each,
};

struct broker *
amqp_broker_new(const struct broker_env *env, const struct broker_events *ev,
    char *err, size_t errlen)
{
	const struct conf *c = env->conf;
	struct amqp_broker *ab;
	struct amqp_conn_conf cf;
	struct amqp_conn_cbs cbs = {
	    .up = conn_up_cb,
	    .down = conn_down_cb,
	    .bound = conn_bound_cb,
	    .delivery = conn_delivery_cb,
	    .refused = conn_refused_cb,
	};
	char name[CONF_NODE_ID_MAX + 32];

	if (c->routing == CONF_ROUTING_BROADCAST &&
	    c->amqp_fanout_exchange[0] == '\0') {
		snprintf(err, errlen,
		    "broker.routing = broadcast with broker.kind = amqp needs "
		    "amqp.fanout_exchange (every node binds to it)");
		return NULL;
	}
	ab = calloc(1, sizeof(*ab));
	if (ab == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	ab->base.ops = &amqp_broker_ops;
	ab->ev = *ev;
	ab->loop = env->loop;
	ab->conf = c;
	snprintf(ab->node, sizeof(ab->node), "%s", env->node);
	ab->broadcast = c->routing == CONF_ROUTING_BROADCAST;
	dlist_init(&ab->queue);
	dlist_init(&ab->longs);
	snprintf(name, sizeof(name), "wspush-bridge %s", env->node);
	cf = (struct amqp_conn_conf){
	    .url = c->amqp_url,
	    .exchange = c->amqp_exchange,
	    .fanout_exchange = c->amqp_fanout_exchange,
	    .inbound_queue = c->amqp_inbound_queue,
	    .events_exchange = c->amqp_events_exchange,
	    .name = name,
	    .queue_max_length = AMQP_BROKER_QUEUE_MAX_LENGTH,
	    .queue_max_bytes = AMQP_BROKER_QUEUE_MAX_BYTES,
	    .max_body = AMQP_BROKER_MAX_BODY,
	    .coalesce_ms = c->coalesce_ms,
	};
	cbs.arg = ab;
	ab->conn = amqp_conn_new(env->loop, &cf, &cbs, err, errlen);
	if (ab->conn == NULL) {
		free(ab);
		return NULL;
	}
	return &ab->base;
}
