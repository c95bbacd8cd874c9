/*
 * cluster_broker.c - the Redis Cluster broker: shards (a master endpoint
 * with a subscriber and a command link), addresses (a sharded
 * subscription each: wanted, sent, active or being removed) and routed
 * upstream writes, behind broker.h's ops. See cluster_broker.h, and
 * CLUSTER-NOTES.md for the Redis behaviour it follows.
 *
 * Subscriptions follow the core's requests one SSUBSCRIBE per channel (a
 * cluster refuses several slots in one command). The ssubscribe push
 * acknowledges; Redis' own sunsubscribe push (slot moved, master demoted)
 * and a lost subscriber link report the addresses lost, so the core asks
 * again and the request goes to the owner of the refreshed map.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <hiredis/hiredis.h>

#include "cluster_broker.h"
#include "cluster_slots.h"
#include "dlist.h"
#include "hmap.h"
#include "keys.h"
#include "log.h"
#include "resp_conn.h"

#define CB_DISCO_RETRY_MS 300
#define CB_REDIRECTS_MAX 5
#define CB_PING_MIN_MS 1000
#define CB_ERR_LOG_MS 10000
#define CB_PRESENCE_TTL_S 10
#define CB_STARTUP_PROBE_MS 2000

struct cluster_broker;

struct cb_shard {
	struct cluster_broker *cb;
	char host[CLUSTER_HOST_MAX];
	uint16_t port;
	char name[CLUSTER_HOST_MAX + 16]; /* "shard <host>:<port>" */
	struct resp_conn *sub;            /* once a channel is wanted here */
	struct resp_conn *cmd;
	bool in_map; /* a master in the last slot map */
	bool up;     /* its links up, as last noted in outage */
	struct broker_outage outage;
	int handover_slot; /* a slot it owned while down, -1: none; kept
			      until another master serves it */
	uint64_t messages;
	size_t nsubs;        /* addresses routed here */
	struct dlist queue;  /* struct cb_write waiting for cmd */
	struct history hist; /* the function library on this master */
	struct cb_shard *next;
};

enum cb_addr_state {
	CA_WANT,   /* wanted, not sent (its shard is down or unknown) */
	CA_SENT,   /* SSUBSCRIBE sent */
	CA_ACTIVE, /* confirmed */
	CA_UNSUB,  /* SUNSUBSCRIBE sent */
};

struct cb_addr {
	char *chan; /* "<prefix>:<address>", NUL-terminated */
	size_t chan_len;
	unsigned slot;
	enum cb_addr_state state;
	int redirects; /* MOVED followed since the last confirmation */
	struct cb_shard *on;
	struct cb_addr *next; /* on a detached list only */
};

struct cb_write {
	struct dlist_node node; /* on a queue, or on cb->inflight */
	bool in_queue;
	struct cluster_broker *cb;
	unsigned slot;
	int redirects;
	struct cb_shard *ask; /* ASK target for the next send, or NULL */
	int argc;
	const char **argv;
	size_t *lens;
	/* argv strings follow in the same allocation */
};

struct cluster_broker {
	struct broker base; /* first: the ops */
	struct loop *loop;
	const struct conf *conf;
	struct broker_events ev;
	char node[CONF_NODE_ID_MAX];
	char prefix[CONF_PREFIX_MAX + 2]; /* "<prefix>:" */
	size_t prefix_len;
	char key_inbound[KEYS_MAX], key_events[KEYS_MAX];
	char key_presence[KEYS_MAX], key_node[KEYS_MAX];
	char maxlen[24];

	struct resp_conn *seed; /* the configured node, for discovery */
	struct cb_shard *shards;
	struct cb_shard *slot_shard[CLUSTER_SLOTS];
	struct cluster_map map;
	bool mapped; /* a slot map was applied once */
	bool disco_inflight, disco_again;
	uint64_t disco_timer, refresh_timer;
	struct hmap *addrs;    /* chan -> struct cb_addr */
	struct dlist unrouted; /* writes for slots without an owner yet */
	struct dlist inflight; /* writes sent, reply not seen yet */
	size_t queued;         /* writes on the queues */

	bool stopping;
	bool up;
	struct broker_outage outage;
	uint64_t messages, writes, sub_resets, history_reads;
	bool history;        /* [history] size > 0 */
	struct dlist ranges; /* struct cb_range in flight */
	uint64_t drops[BROKER_DROP_COUNT];
	struct log_limit err_log, disco_log;
};

static const struct broker_ops cluster_broker_ops;

static void cb_discover(struct cluster_broker *cb);
static int cb_write_send(struct cluster_broker *cb, struct cb_write *w);
static void cb_addr_send(struct cluster_broker *cb, struct cb_addr *a);
static void cb_discover_later(struct cluster_broker *cb);
static void shard_history_load(struct cb_shard *s);

static struct cluster_broker *
cb_of(struct broker *b)
{
	return (struct cluster_broker *)b;
}

static uint32_t
cb_ping_ms(const struct cluster_broker *cb)
{
	return cb->conf->heartbeat_ms > CB_PING_MIN_MS ? cb->conf->heartbeat_ms
						       : CB_PING_MIN_MS;
}

/* ---- state and outages ---- */

static bool
link_up(const struct resp_conn *rc)
{
	return rc == NULL || resp_conn_is_up(rc);
}

static uint64_t
link_failures(const struct resp_conn *rc)
{
	return rc != NULL ? resp_conn_stats(rc)->failures : 0;
}

/* The broker is up when it has a map and every master's links are up. */
static void
cb_state(struct cluster_broker *cb)
{
	bool up = cb->mapped;
	uint64_t failures = link_failures(cb->seed);

	for (struct cb_shard *s = cb->shards; s != NULL; s = s->next) {
		failures += link_failures(s->sub) + link_failures(s->cmd);
		if (s->in_map &&
		    !(link_up(s->sub) && link_up(s->cmd) && s->cmd != NULL))
			up = false;
	}
	if (up == cb->up)
		return;
	cb->up = up;
	broker_outage_note(&cb->outage, up, failures > 0, loop_now(cb->loop));
	cb->ev.state(cb->ev.arg, up);
}

/* An outage of one shard is that shard's only. */
static void
shard_state(struct cb_shard *s)
{
	/* A subscriber link made on first need, still connecting and not
	 * failed yet, is no outage of the shard: the shard was not down. */
	bool sub_new = s->sub != NULL &&
		       resp_conn_stats(s->sub)->connects == 0 &&
		       resp_conn_stats(s->sub)->failures == 0;
	bool up =
	    s->cmd != NULL && link_up(s->cmd) && (link_up(s->sub) || sub_new);

	if (up != s->up) {
		s->up = up;
		broker_outage_note(&s->outage, up,
		    link_failures(s->sub) + link_failures(s->cmd) > 0,
		    loop_now(s->cb->loop));
	}
	cb_state(s->cb);
}

/* ---- addresses ---- */

static const char *
addr_str(const struct cluster_broker *cb, const struct cb_addr *a)
{
	return a->chan + cb->prefix_len;
}

static size_t
addr_len(const struct cluster_broker *cb, const struct cb_addr *a)
{
	return a->chan_len - cb->prefix_len;
}

static void
addr_free(struct cb_addr *a)
{
	if (a != NULL) {
		free(a->chan);
		free(a);
	}
}

static void
addr_route(struct cb_addr *a, struct cb_shard *s)
{
	if (a->on == s)
		return;
	if (a->on != NULL)
		a->on->nsubs--;
	a->on = s;
	if (s != NULL)
		s->nsubs++;
}

/* Removes a from the table (not yet freed: events may still read it). */
static void
addr_detach(struct cluster_broker *cb, struct cb_addr *a)
{
	(void)hmap_del(cb->addrs, a->chan, a->chan_len);
	addr_route(a, NULL);
}

/* Reports a detached address lost (or unsubscribed when that was asked)
 * and frees it. The core may call back into the ops meanwhile. */
static void
addr_report(struct cluster_broker *cb, struct cb_addr *a)
{
	if (a->state == CA_UNSUB)
		cb->ev.unsubscribed(
		    cb->ev.arg, addr_str(cb, a), addr_len(cb, a));
	else
		cb->ev.sub_lost(cb->ev.arg, addr_str(cb, a), addr_len(cb, a));
	addr_free(a);
}

static struct cb_addr *
addr_find(struct cluster_broker *cb, const char *chan, size_t len)
{
	return hmap_get(cb->addrs, chan, len);
}

/* ---- shards and their links ---- */

static void sub_push_cb(struct resp_conn *rc, const redisReply *r, void *arg);
static void sub_state_cb(
    struct resp_conn *rc, bool up, const char *why, void *arg);
static void cmd_state_cb(
    struct resp_conn *rc, bool up, const char *why, void *arg);

static struct resp_conn *
cb_link(struct cluster_broker *cb, const char *name, const char *host,
    uint16_t port, bool pubsub, resp_push_fn *push, resp_state_fn *state,
    void *arg)
{
	const struct conf *c = cb->conf;
	struct resp_conn_opts o = {
	    .name = name,
	    .host = host,
	    .port = port,
	    .user = c->redis_user[0] != '\0' ? c->redis_user : NULL,
	    .password = c->redis_password,
	    .pubsub = pubsub,
	    /* Messages come on the subscriber links: read them in batches
	     * under sustained traffic. */
	    .coalesce_ms = pubsub ? c->coalesce_ms : 0,
	    .ping_interval_ms = cb_ping_ms(cb),
	    .on_push = push,
	    .on_state = state,
	    .arg = arg,
	};
	struct resp_conn *rc = resp_conn_new(cb->loop, &o);

	if (rc != NULL)
		resp_conn_start(rc);
	return rc;
}

static struct cb_shard *
shard_find(struct cluster_broker *cb, const char *host, uint16_t port)
{
	for (struct cb_shard *s = cb->shards; s != NULL; s = s->next)
		if (s->port == port && strcmp(s->host, host) == 0)
			return s;
	return NULL;
}

/* Finds or adds the shard host:port with its command link. */
static struct cb_shard *
shard_get(struct cluster_broker *cb, const char *host, uint16_t port)
{
	struct cb_shard *s = shard_find(cb, host, port);
	char name[CLUSTER_HOST_MAX + 24];

	if (s != NULL)
		return s;
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return NULL;
	s->cb = cb;
	snprintf(s->host, sizeof(s->host), "%s", host);
	s->port = port;
	s->handover_slot = -1;
	snprintf(s->name, sizeof(s->name), "shard %s:%u", host, port);
	dlist_init(&s->queue);
	if (history_init(&s->hist, cb->conf) == -1) {
		free(s);
		return NULL;
	}
	snprintf(name, sizeof(name), "%s cmd", s->name);
	s->cmd = cb_link(cb, name, host, port, false, NULL, cmd_state_cb, s);
	if (s->cmd == NULL) {
		history_fini(&s->hist);
		free(s);
		return NULL;
	}
	broker_outage_note(&s->outage, false, false, loop_now(cb->loop));
	s->next = cb->shards;
	cb->shards = s;
	return s;
}

/* The subscriber link of s, created on first need. */
static bool
shard_sub(struct cluster_broker *cb, struct cb_shard *s)
{
	char name[CLUSTER_HOST_MAX + 24];

	if (s->sub != NULL)
		return true;
	snprintf(name, sizeof(name), "%s sub", s->name);
	s->sub = cb_link(
	    cb, name, s->host, s->port, true, sub_push_cb, sub_state_cb, s);
	if (s->sub != NULL)
		shard_state(s);
	return s->sub != NULL;
}

/* Detaches every address routed to s in a state other than CA_WANT. */
static struct cb_addr *
shard_detach_subs(struct cluster_broker *cb, struct cb_shard *s)
{
	struct cb_addr *lost = NULL, *a;
	struct hmap_iter it;
	const void *k;
	size_t kl;
	void *v;

	hmap_iter_init(cb->addrs, &it);
	while (hmap_iter_next(&it, &k, &kl, &v)) {
		a = v;
		if (a->on != s || a->state == CA_WANT)
			continue;
		hmap_iter_del(&it);
		addr_route(a, NULL);
		a->next = lost;
		lost = a;
	}
	return lost;
}

static void
report_all(struct cluster_broker *cb, struct cb_addr *lost)
{
	while (lost != NULL) {
		struct cb_addr *next = lost->next;

		addr_report(cb, lost);
		lost = next;
	}
}

/* ---- subscriber side ---- */

static bool
is_str(const redisReply *r)
{
	return r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS;
}

static bool
streq(const redisReply *r, const char *s)
{
	return is_str(r) && r->len == strlen(s) &&
	       memcmp(r->str, s, r->len) == 0;
}

static bool
prefixed(const struct cluster_broker *cb, const redisReply *ch)
{
	return ch->len > cb->prefix_len &&
	       memcmp(ch->str, cb->prefix, cb->prefix_len) == 0;
}

static void
sub_push_cb(struct resp_conn *rc, const redisReply *r, void *arg)
{
	struct cb_shard *s = arg;
	struct cluster_broker *cb = s->cb;
	const redisReply *kind, *ch;
	struct cb_addr *a;

	if (r->elements < 3)
		return;
	kind = r->element[0];
	ch = r->element[1];
	if (!is_str(ch))
		return;
	if (streq(kind, "smessage")) {
		if (!is_str(r->element[2]) || !prefixed(cb, ch))
			return;
		cb->messages++;
		s->messages++;
		cb->ev.message(cb->ev.arg, ch->str + cb->prefix_len,
		    ch->len - cb->prefix_len, r->element[2]->str,
		    r->element[2]->len);
		return;
	}
	a = addr_find(cb, ch->str, ch->len);
	if (a == NULL)
		return;
	if (streq(kind, "ssubscribe")) {
		if (a->state == CA_SENT && a->on == s) {
			a->state = CA_ACTIVE;
			a->redirects = 0;
			cb->ev.subscribed(
			    cb->ev.arg, addr_str(cb, a), addr_len(cb, a));
		}
	} else if (streq(kind, "sunsubscribe") && a->on == s) {
		if (a->state != CA_UNSUB) {
			/* Redis' own: the slot left this master. */
			log_info(
			    "redis-cluster: %s dropped channel=%.*s "
			    "(slot %u moved or failed over): rediscovering",
			    s->name, (int)a->chan_len, a->chan, a->slot);
			cb->sub_resets++;
			cb_discover(cb);
		}
		addr_detach(cb, a);
		addr_report(cb, a);
	}
}

/* The SSUBSCRIBE's own reply: only errors matter (the push confirms). */
static void
sub_reply_cb(struct resp_conn *rc, const redisReply *r, void *arg)
{
	struct cb_addr *a = arg;
	struct cluster_broker *cb;
	struct cluster_redirect rd;
	struct cb_shard *s = a->on;
	uint64_t suppressed;

	if (r == NULL || r->type != REDIS_REPLY_ERROR || s == NULL)
		return; /* lost links are handled by sub_state_cb */
	cb = s->cb;
	switch (cluster_redirect_parse(r->str, r->len, &rd)) {
	case CLUSTER_REDIRECT_MOVED: {
		const char *host = rd.host[0] != '\0' ? rd.host : s->host;
		struct cb_shard *to = shard_get(cb, host, rd.port);

		(void)cluster_map_move(&cb->map, rd.slot, host, rd.port);
		if (to != NULL)
			cb->slot_shard[rd.slot] = to;
		a->state = CA_WANT;
		addr_route(a, to);
		cb_discover(cb);
		/* Follow at most a few redirections in a row; then wait for
		 * the refreshed map (cluster_broker_map()). */
		if (to != NULL && ++a->redirects <= CB_REDIRECTS_MAX)
			cb_addr_send(cb, a);
		return;
	}
	case CLUSTER_REDIRECT_ASK:
		/* The slot is migrating: subscribe again once the map says
		 * where it ended up. */
		a->state = CA_WANT;
		cb_discover_later(cb);
		return;
	case CLUSTER_REDIRECT_NONE:
		break;
	}
	if (r->len >= 8 && (memcmp(r->str, "TRYAGAIN", 8) == 0 ||
			       memcmp(r->str, "CLUSTERD", 8) == 0)) {
		a->state = CA_WANT;
		cb_discover_later(cb);
		return;
	}
	/* Refused (NOPERM: an ACL without the channel, ...). Reporting it
	 * lost would make the core ask again at once, a loop at network
	 * speed: it stays wanted and is retried with the next map, a few
	 * times a second at most, and logged. */
	if (log_limit_pass(
		&cb->err_log, loop_now(cb->loop), CB_ERR_LOG_MS, &suppressed))
		log_warnx("redis-cluster: %s: SSUBSCRIBE %.*s: %.*s; retrying",
		    s->name, (int)a->chan_len, a->chan,
		    (int)(r->len > 200 ? 200 : r->len), r->str);
	a->state = CA_WANT;
	cb_discover_later(cb);
}

/* Sends a's SSUBSCRIBE if its shard's subscriber link is up; else it
 * stays wanted until the link comes up (sub_state_cb). */
static void
cb_addr_send(struct cluster_broker *cb, struct cb_addr *a)
{
	const char *argv[2] = {"SSUBSCRIBE", a->chan};
	size_t lens[2] = {10, a->chan_len};

	if (a->on == NULL || !shard_sub(cb, a->on) ||
	    !resp_conn_is_up(a->on->sub))
		return;
	if (resp_conn_command(a->on->sub, 2, argv, lens, sub_reply_cb, a) == 0)
		a->state = CA_SENT;
}

static void
sub_state_cb(struct resp_conn *rc, bool up, const char *why, void *arg)
{
	struct cb_shard *s = arg;
	struct cluster_broker *cb = s->cb;

	if (up) {
		struct hmap_iter it;
		const void *k;
		size_t kl;
		void *v;

		/* Sending changes no table entry: iterating is safe. */
		hmap_iter_init(cb->addrs, &it);
		while (hmap_iter_next(&it, &k, &kl, &v)) {
			struct cb_addr *a = v;

			if (a->on == s && a->state == CA_WANT)
				cb_addr_send(cb, a);
		}
		shard_state(s);
		return;
	}
	/* Everything this link carried is gone; the core asks again, and a
	 * failover shows in the refreshed map. */
	report_all(cb, shard_detach_subs(cb, s));
	shard_state(s);
	cb_discover(cb);
}

/* ---- command side: routed writes ---- */

static struct cb_write *
write_new(struct cluster_broker *cb, const void *key, size_t keylen, int argc,
    const char *const *argv, const size_t *lens)
{
	size_t total = sizeof(struct cb_write) +
		       (size_t)argc * (sizeof(char *) + sizeof(size_t));
	struct cb_write *w;
	char *p;

	for (int i = 0; i < argc; i++)
		total += lens[i] + 1;
	w = calloc(1, total);
	if (w == NULL)
		return NULL;
	w->cb = cb;
	w->slot = cluster_keyslot(key, keylen);
	w->argc = argc;
	w->argv = (const char **)(w + 1);
	w->lens = (size_t *)(w->argv + argc);
	p = (char *)(w->lens + argc);
	for (int i = 0; i < argc; i++) {
		memcpy(p, argv[i], lens[i]);
		p[lens[i]] = '\0';
		w->argv[i] = p;
		w->lens[i] = lens[i];
		p += lens[i] + 1;
	}
	dlist_node_init(&w->node);
	return w;
}

/* Takes w off whatever list holds it. */
static void
write_unlink(struct cluster_broker *cb, struct cb_write *w)
{
	if (dlist_node_linked(&w->node)) {
		dlist_remove(&w->node);
		dlist_node_init(&w->node);
		if (w->in_queue)
			cb->queued--;
	}
	w->in_queue = false;
}

static void
write_free(struct cluster_broker *cb, struct cb_write *w)
{
	write_unlink(cb, w);
	free(w);
}

static void
write_drop(struct cluster_broker *cb, struct cb_write *w, enum broker_drop d,
    const char *why, size_t whylen)
{
	uint64_t suppressed;

	cb->drops[d]++;
	if (log_limit_pass(
		&cb->err_log, loop_now(cb->loop), CB_ERR_LOG_MS, &suppressed))
		log_warnx(
		    "redis-cluster: %.*s %.*s dropped: %.*s drops=%" PRIu64,
		    (int)w->lens[0], w->argv[0],
		    (int)(w->argc > 1 ? (w->lens[1] > 80 ? 80 : w->lens[1])
				      : 0),
		    w->argc > 1 ? w->argv[1] : "",
		    (int)(whylen > 200 ? 200 : whylen), why,
		    cb->drops[BROKER_DROP_DOWN] + cb->drops[BROKER_DROP_ERROR]);
	write_free(cb, w);
}

static void
write_reply_cb(struct resp_conn *rc, const redisReply *r, void *arg)
{
	struct cb_write *w = arg;
	struct cluster_broker *cb = w->cb;
	struct cluster_redirect rd;
	const char *host;

	if (r == NULL) {
		/* Sent, then the link died: Redis may or may not have it. */
		write_drop(cb, w, BROKER_DROP_DOWN, "link lost", 9);
		return;
	}
	if (r->type != REDIS_REPLY_ERROR) {
		cb->writes++;
		write_free(cb, w);
		return;
	}
	switch (cluster_redirect_parse(r->str, r->len, &rd)) {
	case CLUSTER_REDIRECT_MOVED:
	case CLUSTER_REDIRECT_ASK:
		if (++w->redirects > CB_REDIRECTS_MAX)
			break;
		host = rd.host[0] != '\0' ? rd.host : resp_conn_host(rc);
		if (rd.kind == CLUSTER_REDIRECT_ASK) {
			/* This one command only: ASKING, then it, there. */
			w->ask = shard_get(cb, host, rd.port);
		} else {
			struct cb_shard *to = shard_get(cb, host, rd.port);

			(void)cluster_map_move(
			    &cb->map, rd.slot, host, rd.port);
			if (to != NULL)
				cb->slot_shard[rd.slot] = to;
			cb_discover(cb);
		}
		(void)cb_write_send(cb, w);
		return;
	case CLUSTER_REDIRECT_NONE:
		break;
	}
	write_drop(cb, w, BROKER_DROP_ERROR, r->str, r->len);
}

/* Sends w to the master owning its slot now, or queues it (bounded)
 * until that master's command link is up or the slot has an owner.
 * Returns 0, or -1 when w was dropped (counted, freed). */
static int
cb_write_send(struct cluster_broker *cb, struct cb_write *w)
{
	struct cb_shard *s = w->ask != NULL ? w->ask : cb->slot_shard[w->slot];
	struct dlist *q = s != NULL ? &s->queue : &cb->unrouted;

	write_unlink(cb, w);
	if (s != NULL && resp_conn_is_up(s->cmd)) {
		bool ask = w->ask != NULL;

		w->ask = NULL;
		if ((!ask || resp_conn_cmd(
				 s->cmd, NULL, NULL, "ASKING", NULL) == 0) &&
		    resp_conn_command(s->cmd, w->argc, w->argv, w->lens,
			write_reply_cb, w) == 0) {
			dlist_insert_tail(&cb->inflight, &w->node);
			return 0;
		}
	}
	if (cb->queued >= CLUSTER_BROKER_QUEUE_MAX) {
		write_drop(cb, w, BROKER_DROP_DOWN, "queue full", 10);
		return -1;
	}
	dlist_insert_tail(q, &w->node);
	w->in_queue = true;
	cb->queued++;
	return 0;
}

/* Sends what waits in q (each write goes where its slot says now). */
static void
cb_flush(struct cluster_broker *cb, struct dlist *q)
{
	struct dlist pending;
	struct dlist_node *n;

	/* Move aside first: a write that cannot go yet is queued again,
	 * possibly on the same list. */
	dlist_init(&pending);
	while ((n = dlist_first(q)) != NULL) {
		dlist_remove(n);
		dlist_insert_tail(&pending, n);
	}
	while ((n = dlist_first(&pending)) != NULL) {
		struct cb_write *w = DLIST_ENTRY(n, struct cb_write, node);

		(void)cb_write_send(cb, w); /* unlinks it from pending */
	}
}

static int
cb_write(struct cluster_broker *cb, const char *key, size_t keylen, int argc,
    const char *const *argv, const size_t *lens)
{
	struct cb_write *w = write_new(cb, key, keylen, argc, argv, lens);

	if (w == NULL)
		return BROKER_ENOMEM;
	return cb_write_send(cb, w) == 0 ? 0 : BROKER_EFULL;
}

/* A write that only matters while its shard is up (presence: rewritten
 * in full after a reconnect). */
static void
cb_write_now(struct cluster_broker *cb, const char *key, int argc,
    const char *const *argv, const size_t *lens)
{
	struct cb_shard *s = cb->slot_shard[cluster_keyslot(key, strlen(key))];

	if (s != NULL && resp_conn_is_up(s->cmd))
		(void)resp_conn_command(s->cmd, argc, argv, lens, NULL, NULL);
}

/* ---- presence ---- */

static bool
owns_presence(const struct cluster_broker *cb, const struct cb_shard *s)
{
	return cb->slot_shard[cluster_keyslot(
		   cb->key_presence, strlen(cb->key_presence))] == s ||
	       cb->slot_shard[cluster_keyslot(
		   cb->key_node, strlen(cb->key_node))] == s;
}

static void
presence_delete(struct cluster_broker *cb)
{
	/* Two commands: the keys hash to different slots. */
	const char *a1[2] = {"DEL", cb->key_presence};
	size_t l1[2] = {3, strlen(cb->key_presence)};
	const char *a2[2] = {"DEL", cb->key_node};
	size_t l2[2] = {3, strlen(cb->key_node)};

	cb_write_now(cb, cb->key_presence, 2, a1, l1);
	cb_write_now(cb, cb->key_node, 2, a2, l2);
}

/* ---- history: the function library on every master ---- */

static void
hist_config_cb(struct resp_conn *rc, const redisReply *r, void *arg)
{
	struct cb_shard *s = arg;
	char line[512];

	if (r != NULL && history_on_config(&s->hist, r, line, sizeof(line)))
		log_warnx("%s: %s", s->name, line);
}

static void
hist_load_cb(struct resp_conn *rc, const redisReply *r, void *arg)
{
	struct cb_shard *s = arg;
	char line[512];
	const char *msg = history_on_load(&s->hist, r, line, sizeof(line));

	if (msg == NULL)
		return;
	if (s->hist.state == HISTORY_READY)
		log_info("%s: %s", s->name, msg);
	else
		log_errx("%s: %s", s->name, msg);
}

/* Every master holds the streams of its slots, so every master gets the
 * library (publishing with SPUBLISH: history_conf_from() sets sharded),
 * on every connection: a restarted master without persistence has none. */
static void
shard_history_load(struct cb_shard *s)
{
	struct history_argv check, load;

	if (s->hist.state == HISTORY_OFF)
		return;
	history_connected(&s->hist, &check, &load);
	if (resp_conn_command(s->cmd, check.argc, check.argv, check.lens,
		hist_config_cb, s) == -1 ||
	    resp_conn_command(
		s->cmd, load.argc, load.argv, load.lens, hist_load_cb, s) == -1)
		log_warnx("%s: history: could not send FUNCTION LOAD; retried "
			  "at the next connection",
		    s->name);
}

static void
cmd_state_cb(struct resp_conn *rc, bool up, const char *why, void *arg)
{
	struct cb_shard *s = arg;
	struct cluster_broker *cb = s->cb;

	if (up) {
		/* Ahead of the queued writes, so queued FCALLs find it. */
		shard_history_load(s);
		cb_discover(cb);
		cb_flush(cb, &s->queue);
		if (cb->mapped && owns_presence(cb, s)) {
			presence_delete(cb);
			if (!cb->stopping)
				cb->ev.presence_lost(cb->ev.arg);
		}
	} else {
		history_lost(&s->hist);
		cb_discover(cb);
	}
	shard_state(s);
}

/* ---- discovery ---- */

static void
disco_timer_cb(struct loop *l, uint64_t id, void *arg)
{
	struct cluster_broker *cb = arg;

	cb->disco_timer = 0;
	cb_discover(cb);
}

static void
cb_discover_later(struct cluster_broker *cb)
{
	if (cb->disco_timer == 0)
		cb->disco_timer = loop_timer_add(
		    cb->loop, CB_DISCO_RETRY_MS, 0, disco_timer_cb, cb);
}

static bool
shard_in_outage(const struct cb_shard *s)
{
	return s->outage.down_since_ms != 0 && s->outage.was_up;
}

/*
 * The slots of a master that went down now live on to (a promoted
 * replica, usually a new address): the shard is the slot range, so its
 * outage and its past outages move to the new owner, and the outage ends
 * (is counted) when the new owner's links are up - not when a master that
 * will never return does. Without this a failover would count nowhere.
 */
static void
shard_hand_over(struct cb_shard *old, struct cb_shard *to, uint64_t now)
{
	struct broker_outage *o = &old->outage, *n = &to->outage;

	n->outages += o->outages;
	o->outages = 0;
	if (to->up) {
		n->last_outage_ms =
		    now > o->down_since_ms ? now - o->down_since_ms : 0;
		n->outages++;
	} else {
		n->was_up = true;
		if (n->down_since_ms == 0 ||
		    o->down_since_ms < n->down_since_ms)
			n->down_since_ms = o->down_since_ms;
	}
	o->down_since_ms = 0;
}

/* Makes the map the truth: shards, slot owners, routes of waiting work. */
static void
cb_apply_map(struct cluster_broker *cb, const struct cluster_map *m)
{
	struct hmap_iter it;
	const void *k;
	size_t kl;
	void *v;

	for (struct cb_shard *s = cb->shards; s != NULL; s = s->next)
		s->in_map = false;
	for (unsigned i = 0; i < CLUSTER_SLOTS; i++) {
		struct cb_shard *s = cb->slot_shard[i];

		if (s != NULL && s->handover_slot < 0 && shard_in_outage(s))
			s->handover_slot = (int)i;
		cb->slot_shard[i] = NULL;
	}
	for (size_t i = 0; i < m->nshards; i++) {
		struct cb_shard *s =
		    shard_get(cb, m->shards[i].host, m->shards[i].port);

		if (s == NULL)
			continue;
		s->in_map = true;
		for (unsigned slot = 0; slot < CLUSTER_SLOTS; slot++)
			if (m->owner[slot] == i)
				cb->slot_shard[slot] = s;
	}
	/* A failed master's slots are often uncovered for a map or two
	 * before a replica takes them: the slot is kept until then. */
	for (struct cb_shard *s = cb->shards; s != NULL; s = s->next) {
		struct cb_shard *to;

		if (s->handover_slot < 0)
			continue;
		to = cb->slot_shard[s->handover_slot];
		if (!shard_in_outage(s) || to == s)
			s->handover_slot = -1;
		else if (to != NULL) {
			shard_hand_over(s, to, loop_now(cb->loop));
			s->handover_slot = -1;
		}
	}
	/* Waiting subscriptions go where their slot lives now. */
	hmap_iter_init(cb->addrs, &it);
	while (hmap_iter_next(&it, &k, &kl, &v)) {
		struct cb_addr *a = v;

		if (a->state != CA_WANT)
			continue;
		addr_route(a, cb->slot_shard[a->slot]);
		a->redirects = 0;
		cb_addr_send(cb, a);
	}
	/* So do waiting writes. */
	cb_flush(cb, &cb->unrouted);
	for (struct cb_shard *s = cb->shards; s != NULL; s = s->next)
		if (!s->in_map)
			cb_flush(cb, &s->queue);
}

static void
disco_reply_cb(struct resp_conn *rc, const redisReply *r, void *arg)
{
	struct cluster_broker *cb = arg;
	struct cluster_map m;
	char err[256] = "";
	uint64_t suppressed;
	bool first = !cb->mapped;

	cb->disco_inflight = false;
	if (r == NULL) {
		cb_discover_later(cb);
		return;
	}
	cluster_map_init(&m);
	if (r->type == REDIS_REPLY_ERROR)
		snprintf(err, sizeof(err), "CLUSTER SHARDS: %.*s",
		    (int)(r->len > 200 ? 200 : r->len), r->str);
	else
		(void)cluster_map_from_shards(
		    &m, r, resp_conn_host(rc), err, sizeof(err));
	if (err[0] != '\0' || m.nshards == 0) {
		if (log_limit_pass(&cb->disco_log, loop_now(cb->loop),
			CB_ERR_LOG_MS, &suppressed))
			log_warnx(
			    "redis-cluster: discovery from %s:%u failed: %s",
			    resp_conn_host(rc), resp_conn_port(rc),
			    err[0] != '\0' ? err : "no master owns a slot");
		cluster_map_fini(&m);
		cb_discover_later(cb);
		return;
	}
	cluster_map_fini(&cb->map);
	cb->map = m;
	cb->mapped = true;
	cb_apply_map(cb, &cb->map);
	log_debug("redis-cluster: map from %s:%u: masters=%zu uncovered=%u",
	    resp_conn_host(rc), resp_conn_port(rc), cb->map.nshards,
	    cluster_map_uncovered(&cb->map));
	if (cluster_map_uncovered(&cb->map) > 0)
		cb_discover_later(cb); /* a failover in progress */
	if (first) {
		log_info("redis-cluster: %zu masters", cb->map.nshards);
		cb->ev.sub_ready(cb->ev.arg, true);
		if (!cb->stopping) {
			presence_delete(cb);
			cb->ev.presence_lost(cb->ev.arg);
		}
	}
	cb_state(cb);
	if (cb->disco_again) {
		cb->disco_again = false;
		cb_discover(cb);
	}
}

/* Asks any reachable node for the slot map (coalesced: one at a time). */
static void
cb_discover(struct cluster_broker *cb)
{
	struct resp_conn *via = NULL;

	if (cb->disco_inflight) {
		cb->disco_again = true;
		return;
	}
	for (struct cb_shard *s = cb->shards; s != NULL && via == NULL;
	     s = s->next)
		if (s->in_map && resp_conn_is_up(s->cmd))
			via = s->cmd;
	for (struct cb_shard *s = cb->shards; s != NULL && via == NULL;
	     s = s->next)
		if (resp_conn_is_up(s->cmd))
			via = s->cmd;
	if (via == NULL && cb->seed != NULL && resp_conn_is_up(cb->seed))
		via = cb->seed;
	if (via == NULL || resp_conn_cmd(via, disco_reply_cb, cb, "CLUSTER",
			       "SHARDS", NULL) == -1) {
		cb_discover_later(cb);
		return;
	}
	cb->disco_inflight = true;
}

static void
seed_state_cb(struct resp_conn *rc, bool up, const char *why, void *arg)
{
	struct cluster_broker *cb = arg;

	if (up)
		cb_discover(cb);
	cb_state(cb);
}

/* Every CLUSTER_BROKER_REFRESH_MS: a fresh map, and idle links of
 * masters that left it (or want nothing) closed. */
static void
refresh_cb(struct loop *l, uint64_t id, void *arg)
{
	struct cluster_broker *cb = arg;
	struct cb_shard **pp = &cb->shards;

	cb_discover(cb);
	while (*pp != NULL) {
		struct cb_shard *s = *pp;

		if (s->sub != NULL && s->nsubs == 0) {
			resp_conn_free(s->sub);
			s->sub = NULL;
		}
		if (!s->in_map && s->nsubs == 0 && dlist_empty(&s->queue) &&
		    resp_conn_pending(s->cmd) == 0) {
			*pp = s->next;
			resp_conn_free(s->cmd);
			history_fini(&s->hist);
			free(s);
			continue;
		}
		pp = &s->next;
	}
	cb_state(cb);
}

/* ---- ops ---- */

static int
cluster_broker_subscribe(
    struct broker *b, const char *const *addrs, const size_t *lens, size_t n)
{
	struct cluster_broker *cb = cb_of(b);

	if (!cb->mapped)
		return BROKER_EAGAIN;
	for (size_t i = 0; i < n; i++) {
		char chan[KEYS_MAX];
		int cl = keys_channel(
		    chan, sizeof(chan), cb->conf->prefix, addrs[i], lens[i]);
		struct cb_addr *a;

		if (cl == -1)
			return BROKER_ENOMEM;
		if ((a = addr_find(cb, chan, (size_t)cl)) != NULL) {
			/* Already wanted (the core waits for acks, so this
			 * is a repeat after a loss it has not seen yet). */
			if (a->state == CA_ACTIVE)
				cb->ev.subscribed(
				    cb->ev.arg, addrs[i], lens[i]);
			continue;
		}
		a = calloc(1, sizeof(*a));
		if (a == NULL || (a->chan = strdup(chan)) == NULL) {
			free(a);
			return BROKER_ENOMEM;
		}
		a->chan_len = (size_t)cl;
		a->slot = cluster_keyslot(chan, (size_t)cl);
		a->state = CA_WANT;
		if (hmap_put(cb->addrs, a->chan, a->chan_len, a) == -1) {
			addr_free(a);
			return BROKER_ENOMEM;
		}
		addr_route(a, cb->slot_shard[a->slot]);
		if (a->on == NULL)
			cb_discover(cb); /* an uncovered slot: ask again */
		cb_addr_send(cb, a);
	}
	return 0;
}

static int
cluster_broker_unsubscribe(
    struct broker *b, const char *const *addrs, const size_t *lens, size_t n)
{
	struct cluster_broker *cb = cb_of(b);

	for (size_t i = 0; i < n; i++) {
		char chan[KEYS_MAX];
		int cl = keys_channel(
		    chan, sizeof(chan), cb->conf->prefix, addrs[i], lens[i]);
		struct cb_addr *a;
		const char *argv[2] = {"SUNSUBSCRIBE", chan};
		size_t alens[2] = {12, 0};

		if (cl == -1)
			return BROKER_ENOMEM;
		alens[1] = (size_t)cl;
		a = addr_find(cb, chan, (size_t)cl);
		if (a != NULL && a->state == CA_ACTIVE && a->on != NULL &&
		    a->on->sub != NULL && resp_conn_is_up(a->on->sub) &&
		    resp_conn_command(a->on->sub, 2, argv, alens, NULL, NULL) ==
			0) {
			a->state = CA_UNSUB; /* the sunsubscribe push acks */
			continue;
		}
		/* Nothing subscribed in Redis (never sent, or its link is
		 * gone): done at once. */
		if (a != NULL) {
			addr_detach(cb, a);
			addr_free(a);
		}
		cb->ev.unsubscribed(cb->ev.arg, addrs[i], lens[i]);
	}
	return 0;
}

static int
cluster_broker_subscribe_all(struct broker *b)
{
	/* The config refuses broadcast routing with redis.cluster = on:
	 * sharded pub/sub has no pattern subscriptions. */
	return BROKER_ENOTSUP;
}

static int
cluster_broker_publish(struct broker *b, const char *addr, size_t addr_len,
    const char *data, size_t data_len)
{
	struct cluster_broker *cb = cb_of(b);
	char chan[KEYS_MAX];
	int n =
	    keys_channel(chan, sizeof(chan), cb->conf->prefix, addr, addr_len);
	const char *argv[3] = {"SPUBLISH", chan, data};
	size_t lens[3] = {8, 0, data_len};
	struct cb_shard *s;
	struct history_argv fa;

	if (n == -1)
		return BROKER_ENOMEM;
	lens[1] = (size_t)n;
	/* With history, through the function on the owning master (it
	 * stores and SPUBLISHes with the id); a master that refused the
	 * library gets plain SPUBLISH: delivery goes on. */
	s = cb->slot_shard[cluster_keyslot(chan, (size_t)n)];
	if (cb->history && (s == NULL || s->hist.state == HISTORY_READY ||
			       s->hist.state == HISTORY_LOADING)) {
		history_publish_argv(
		    &fa, chan, (size_t)n, data, data_len, NULL, 0, false);
		return cb_write(cb, chan, (size_t)n, fa.argc, fa.argv, fa.lens);
	}
	return cb_write(cb, chan, (size_t)n, 3, argv, lens);
}

/* One range() in flight: what parsing its reply needs. */
struct cb_range {
	struct dlist_node node; /* on cb->ranges */
	struct cluster_broker *cb;
	broker_range_fn *fn;
	void *arg;
	uint32_t limit;
	size_t since_len;
	bool has_since;
	char since[ENV_SID_MAX + 1];
};

static void
range_cb(struct resp_conn *rc, const redisReply *r, void *arg)
{
	struct cb_range *q = arg;
	struct cluster_broker *cb = q->cb;
	struct history_range h;
	char why[200];
	uint64_t suppressed;
	int rc_;

	dlist_remove(&q->node);
	rc_ = history_range_parse(r, q->has_since ? q->since : NULL,
	    q->since_len, q->limit, &h, why, sizeof(why));
	if (rc_ == HISTORY_RANGE_OK) {
		cb->history_reads++;
		q->fn(q->arg, &h, RANGE_OK);
		history_range_free(&h);
	} else {
		if (rc_ != HISTORY_RANGE_LOST &&
		    log_limit_pass(&cb->err_log, loop_now(cb->loop),
			CB_ERR_LOG_MS, &suppressed))
			log_warnx("history: range read failed: %s", why);
		q->fn(q->arg, NULL, RANGE_FAILED);
	}
	free(q);
}

static int
cluster_broker_range(struct broker *b, const char *addr, size_t addr_len,
    const char *since, size_t since_len, uint32_t limit, broker_range_fn *fn,
    void *arg)
{
	struct cluster_broker *cb = cb_of(b);
	struct cb_range *q;
	struct cb_shard *s;
	struct history_argv a;
	char key[KEYS_MAX];
	enum range_status st;
	int n =
	    keys_channel(key, sizeof(key), cb->conf->prefix, addr, addr_len);

	if (!cb->history) {
		fn(arg, NULL, RANGE_UNAVAILABLE);
		return 0;
	}
	s = n == -1 ? NULL : cb->slot_shard[cluster_keyslot(key, (size_t)n)];
	/* No owner known (yet) or its link down: try again later. */
	st = s != NULL && resp_conn_is_up(s->cmd)
		 ? history_range_status(&s->hist)
		 : RANGE_FAILED;
	if (st != RANGE_OK) {
		fn(arg, NULL, st);
		return 0;
	}
	q = calloc(1, sizeof(*q));
	if (q == NULL || since_len > ENV_SID_MAX ||
	    history_range_argv(&a, key, (size_t)n, since, since_len, limit) !=
		0) {
		free(q);
		fn(arg, NULL, q == NULL ? RANGE_FAILED : RANGE_BAD_REQUEST);
		return 0;
	}
	*q = (struct cb_range){.cb = cb,
	    .fn = fn,
	    .arg = arg,
	    .limit = limit,
	    .since_len = since_len,
	    .has_since = since != NULL};
	if (since != NULL)
		memcpy(q->since, since, since_len);
	if (resp_conn_command(s->cmd, a.argc, a.argv, a.lens, range_cb, q) ==
	    -1) {
		free(q);
		fn(arg, NULL, RANGE_FAILED);
		return 0;
	}
	dlist_insert_tail(&cb->ranges, &q->node);
	return 0;
}

static int
cluster_broker_inbound(struct broker *b, const struct broker_inbound *in)
{
	struct cluster_broker *cb = cb_of(b);
	const char *argv[14] = {"XADD", cb->key_inbound, "MAXLEN", "~",
	    cb->maxlen, "*", "user", in->user, "conn", in->conn, "node",
	    cb->node, "data", in->data};
	size_t lens[14];

	for (int i = 0; i < 14; i++)
		lens[i] = strlen(argv[i]);
	lens[7] = in->user_len;
	lens[9] = in->conn_len;
	lens[13] = in->data_len;
	return cb_write(
	    cb, cb->key_inbound, strlen(cb->key_inbound), 14, argv, lens);
}

static int
cluster_broker_event(struct broker *b, const struct broker_event *ev)
{
	struct cluster_broker *cb = cb_of(b);
	const char *argv[16] = {"XADD", cb->key_events, "MAXLEN", "~",
	    cb->maxlen, "*", "type", ev->type, "user", ev->user, "conn",
	    ev->conn, "node", cb->node, "reason", ev->reason};
	size_t lens[16];

	for (int i = 0; i < 16; i++)
		lens[i] = argv[i] != NULL ? strlen(argv[i]) : 0;
	lens[7] = ev->type_len;
	lens[9] = ev->user_len;
	lens[11] = ev->conn_len;
	lens[15] = ev->reason_len;
	return cb_write(
	    cb, cb->key_events, strlen(cb->key_events), 16, argv, lens);
}

#define CB_PRESENCE_CHUNK 500

static int
cluster_broker_presence_set(
    struct broker *b, const struct broker_presence *p, size_t n)
{
	struct cluster_broker *cb = cb_of(b);
	const char *set[2 + 2 * CB_PRESENCE_CHUNK], *del[2 + CB_PRESENCE_CHUNK];
	size_t set_len[2 + 2 * CB_PRESENCE_CHUNK],
	    del_len[2 + CB_PRESENCE_CHUNK];
	char nums[CB_PRESENCE_CHUNK][24];
	int ns = 2, nd = 2;

	if (cb->stopping)
		return 0;
	set[0] = "HSET";
	del[0] = "HDEL";
	set_len[0] = del_len[0] = 4;
	set[1] = del[1] = cb->key_presence;
	set_len[1] = del_len[1] = strlen(cb->key_presence);
	for (size_t i = 0; i <= n; i++) {
		if (i == n || ns == 2 + 2 * CB_PRESENCE_CHUNK ||
		    nd == 2 + CB_PRESENCE_CHUNK) {
			if (ns > 2)
				cb_write_now(
				    cb, cb->key_presence, ns, set, set_len);
			if (nd > 2)
				cb_write_now(
				    cb, cb->key_presence, nd, del, del_len);
			ns = nd = 2;
			if (i == n)
				break;
		}
		if (p[i].conns == 0) {
			del[nd] = p[i].user;
			del_len[nd++] = p[i].len;
		} else {
			int k = (ns - 2) / 2;

			set[ns] = p[i].user;
			set_len[ns] = p[i].len;
			set_len[ns + 1] = (size_t)snprintf(
			    nums[k], sizeof(nums[k]), "%" PRIu64, p[i].conns);
			set[ns + 1] = nums[k];
			ns += 2;
		}
	}
	return 0;
}

static int
cluster_broker_node_info(struct broker *b, const struct broker_node_info *ni)
{
	struct cluster_broker *cb = cb_of(b);
	char conns[24], users[24], workers[24], started[24], pid[24], ttl[16];
	const char *argv[14] = {"HSET", cb->key_node, "connections", conns,
	    "users", users, "workers", workers, "started", started, "version",
	    ni->version, "pid", pid};
	size_t lens[14];
	const char *ex[3] = {"EXPIRE", NULL, ttl};
	size_t exl[3] = {6, 0, 0};

	if (cb->stopping)
		return 0;
	snprintf(conns, sizeof(conns), "%" PRIu64, ni->connections);
	snprintf(users, sizeof(users), "%" PRIu64, ni->users);
	snprintf(workers, sizeof(workers), "%" PRIu64, ni->workers);
	snprintf(started, sizeof(started), "%" PRIu64, ni->started_unix);
	snprintf(pid, sizeof(pid), "%ld", ni->pid);
	for (int i = 0; i < 14; i++)
		lens[i] = strlen(argv[i]);
	cb_write_now(cb, cb->key_node, 14, argv, lens);
	exl[2] = (size_t)snprintf(ttl, sizeof(ttl), "%d", CB_PRESENCE_TTL_S);
	ex[1] = cb->key_presence;
	exl[1] = strlen(cb->key_presence);
	cb_write_now(cb, cb->key_presence, 3, ex, exl);
	ex[1] = cb->key_node;
	exl[1] = strlen(cb->key_node);
	cb_write_now(cb, cb->key_node, 3, ex, exl);
	return 0;
}

static int
cluster_broker_start(struct broker *b)
{
	struct cluster_broker *cb = cb_of(b);
	const struct conf *c = cb->conf;

	broker_outage_note(&cb->outage, false, false, loop_now(cb->loop));
	cb->refresh_timer = loop_timer_add(cb->loop, CLUSTER_BROKER_REFRESH_MS,
	    CLUSTER_BROKER_REFRESH_MS, refresh_cb, cb);
	cb->seed = cb_link(cb, "redis-cluster seed", c->redis_host,
	    c->redis_port, false, NULL, seed_state_cb, cb);
	if (cb->refresh_timer == 0 || cb->seed == NULL)
		return BROKER_ENOMEM;
	return 0;
}

static void
cluster_broker_stop(struct broker *b)
{
	struct cluster_broker *cb = cb_of(b);

	cb->stopping = true;
	presence_delete(cb);
}

static bool
cluster_broker_drained(struct broker *b)
{
	struct cluster_broker *cb = cb_of(b);

	if (cb->queued > 0)
		return false;
	for (struct cb_shard *s = cb->shards; s != NULL; s = s->next)
		if (resp_conn_pending(s->cmd) > 0)
			return false;
	return true;
}

static void
queue_free(struct cluster_broker *cb, struct dlist *q)
{
	struct dlist_node *n;

	while ((n = dlist_first(q)) != NULL)
		write_free(cb, DLIST_ENTRY(n, struct cb_write, node));
}

static void
cluster_broker_free(struct broker *b)
{
	struct cluster_broker *cb = cb_of(b);
	struct hmap_iter it;
	const void *k;
	size_t kl;
	void *v;

	if (cb->disco_timer != 0)
		loop_timer_del(cb->loop, cb->disco_timer);
	if (cb->refresh_timer != 0)
		loop_timer_del(cb->loop, cb->refresh_timer);
	/* No callback runs after resp_conn_free(): writes in flight are
	 * freed from cb->inflight below. */
	while (cb->shards != NULL) {
		struct cb_shard *s = cb->shards;

		cb->shards = s->next;
		resp_conn_free(s->sub);
		resp_conn_free(s->cmd);
		queue_free(cb, &s->queue);
		history_fini(&s->hist);
		free(s);
	}
	/* Ranges in flight are never answered: free() never calls back. */
	while (!dlist_empty(&cb->ranges)) {
		struct dlist_node *n = dlist_first(&cb->ranges);

		dlist_remove(n);
		free(DLIST_ENTRY(n, struct cb_range, node));
	}
	resp_conn_free(cb->seed);
	queue_free(cb, &cb->unrouted);
	queue_free(cb, &cb->inflight); /* their links are gone, silently */
	if (cb->addrs != NULL) {
		hmap_iter_init(cb->addrs, &it);
		while (hmap_iter_next(&it, &k, &kl, &v)) {
			hmap_iter_del(&it);
			addr_free(v);
		}
		hmap_free(cb->addrs);
	}
	cluster_map_fini(&cb->map);
	free(cb);
}

/* One history state for the broker: ready when every master of the map
 * has the library, unavailable when one refused it, loading otherwise. */
static void
cb_history_status(struct cluster_broker *cb, struct broker_status *st)
{
	enum history_state state = cb->history ? HISTORY_READY : HISTORY_OFF;
	const char *err = "";

	st->history_reads = cb->history_reads;
	for (struct cb_shard *s = cb->shards; s != NULL; s = s->next) {
		st->history_load_failures += s->hist.load_failures;
		if (!cb->history || !s->in_map)
			continue;
		if (s->hist.state == HISTORY_UNAVAILABLE) {
			state = HISTORY_UNAVAILABLE;
			err = s->hist.err;
		} else if (s->hist.state != HISTORY_READY &&
			   state == HISTORY_READY) {
			state = HISTORY_LOADING;
		}
	}
	if (cb->history && !cb->mapped)
		state = HISTORY_LOADING;
	st->history = history_state_str(state);
	snprintf(st->history_error, sizeof(st->history_error), "%s", err);
}

static void
cluster_broker_status(struct broker *b, struct broker_status *st)
{
	struct cluster_broker *cb = cb_of(b);
	const char *err = "";

	memset(st, 0, sizeof(*st));
	st->kind = "redis-cluster";
	cb_history_status(cb, st);
	st->sub_up = st->cmd_up = cb->mapped;
	st->connect_failures = link_failures(cb->seed);
	for (struct cb_shard *s = cb->shards; s != NULL; s = s->next) {
		const struct resp_conn_stats *cs = resp_conn_stats(s->cmd);

		st->connect_failures += link_failures(s->sub) + cs->failures;
		st->cmd_reconnects += cs->connects > 0 ? cs->connects - 1 : 0;
		if (s->sub != NULL) {
			const struct resp_conn_stats *ss =
			    resp_conn_stats(s->sub);

			st->sub_reconnects +=
			    ss->connects > 0 ? ss->connects - 1 : 0;
		}
		if (!s->in_map)
			continue;
		if (!link_up(s->sub)) {
			st->sub_up = false;
			if (err[0] == '\0')
				err = resp_conn_last_error(s->sub);
		}
		if (!resp_conn_is_up(s->cmd)) {
			st->cmd_up = false;
			if (err[0] == '\0')
				err = resp_conn_last_error(s->cmd);
		}
	}
	if (!cb->mapped && cb->seed != NULL)
		err = resp_conn_last_error(cb->seed);
	st->up = cb->up;
	st->sub_resets = cb->sub_resets;
	st->outages = cb->outage.outages;
	st->last_outage_ms = cb->outage.last_outage_ms;
	st->down_for_ms =
	    broker_outage_down_for(&cb->outage, loop_now(cb->loop));
	snprintf(st->last_error, sizeof(st->last_error), "%s", err);
	st->writes = cb->writes;
	st->queued = cb->queued;
	memcpy(st->drops, cb->drops, sizeof(st->drops));
	st->messages = cb->messages;
}

static void
cluster_broker_link_each(struct broker *b, broker_link_fn *fn, void *arg)
{
	struct cluster_broker *cb = cb_of(b);

	for (struct cb_shard *s = cb->shards; s != NULL; s = s->next) {
		const struct resp_conn_stats *cs = resp_conn_stats(s->cmd);
		struct resp_conn *worst =
		    (s->sub != NULL && !resp_conn_is_up(s->sub)) ? s->sub
								 : s->cmd;
		struct broker_link_info li = {
		    .name = s->name,
		    .up = s->cmd != NULL && link_up(s->sub) &&
			  resp_conn_is_up(s->cmd),
		    .state = s->in_map ? resp_conn_state_str(worst) : "gone",
		    .reconnects = cs->connects > 0 ? cs->connects - 1 : 0,
		    .connect_failures = link_failures(s->sub) + cs->failures,
		    .outages = s->outage.outages,
		    .last_error = resp_conn_last_error(worst),
		};

		fn(arg, &li);
	}
}

static const struct broker_ops cluster_broker_ops = {
    .kind = "redis-cluster",
    .start = cluster_broker_start,
    .stop = cluster_broker_stop,
    .drained = cluster_broker_drained,
    .free = cluster_broker_free,
    .subscribe = cluster_broker_subscribe,
    .unsubscribe = cluster_broker_unsubscribe,
    .subscribe_all = cluster_broker_subscribe_all,
    .publish = cluster_broker_publish,
    .inbound = cluster_broker_inbound,
    .event = cluster_broker_event,
    .presence_set = cluster_broker_presence_set,
    .node_info = cluster_broker_node_info,
    .status = cluster_broker_status,
    .link_each = cluster_broker_link_each,
    .range = cluster_broker_range,
};

/*
 * At start, before the loop: a node that answers and is not a cluster
 * node is a configuration error worth stopping for. Unreachable is not
 * (Redis may start after us). Blocking, bounded by CB_STARTUP_PROBE_MS.
 */
static int
cb_startup_probe(const struct conf *c, char *err, size_t errlen)
{
	struct timeval tv = {
	    CB_STARTUP_PROBE_MS / 1000, (CB_STARTUP_PROBE_MS % 1000) * 1000};
	redisContext *ctx =
	    redisConnectWithTimeout(c->redis_host, c->redis_port, tv);
	redisReply *r = NULL;
	int rv = 0;

	if (ctx == NULL || ctx->err != 0) {
		log_warnx("redis-cluster: %s:%u not reachable at start (%s); "
			  "will keep trying",
		    c->redis_host, c->redis_port,
		    ctx != NULL ? ctx->errstr : "out of memory");
		goto out;
	}
	(void)redisSetTimeout(ctx, tv);
	if (c->redis_password[0] != '\0') {
		r = c->redis_user[0] != '\0'
			? redisCommand(ctx, "AUTH %s %s", c->redis_user,
			      c->redis_password)
			: redisCommand(ctx, "AUTH %s", c->redis_password);
		if (r == NULL || r->type == REDIS_REPLY_ERROR)
			goto out; /* the links report AUTH failures */
		freeReplyObject(r);
	}
	r = redisCommand(ctx, "CLUSTER SHARDS");
	if (r != NULL && r->type == REDIS_REPLY_ERROR &&
	    strstr(r->str, "cluster support disabled") != NULL) {
		snprintf(err, errlen,
		    "redis.cluster = on, but %s:%u is not a Redis Cluster node "
		    "(%s); set redis.cluster = off or point redis.url at a "
		    "cluster node",
		    c->redis_host, c->redis_port, r->str);
		rv = -1;
	} else if (r != NULL && r->type == REDIS_REPLY_ERROR) {
		snprintf(err, errlen,
		    "redis.cluster = on, but %s:%u cannot list its shards "
		    "(%s): "
		    "sharded pub/sub needs Redis 7.0 or later",
		    c->redis_host, c->redis_port, r->str);
		rv = -1;
	}
out:
	if (r != NULL)
		freeReplyObject(r);
	if (ctx != NULL)
		redisFree(ctx);
	return rv;
}

struct broker *
cluster_broker_new(const struct broker_env *env, const struct broker_events *ev,
    char *err, size_t errlen)
{
	const struct conf *c = env->conf;
	struct cluster_broker *cb;

	if (c->redis_kind != CONF_REDIS_TCP) {
		snprintf(err, errlen,
		    "redis.cluster = on needs a redis:// URL (cluster nodes "
		    "talk TCP), not %s",
		    c->redis_url);
		return NULL;
	}
	if (cb_startup_probe(c, err, errlen) == -1)
		return NULL;
	cb = calloc(1, sizeof(*cb));
	if (cb == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	cb->base.ops = &cluster_broker_ops;
	cb->loop = env->loop;
	cb->conf = c;
	cb->ev = *ev;
	snprintf(cb->node, sizeof(cb->node), "%s", env->node);
	snprintf(cb->prefix, sizeof(cb->prefix), "%s:", c->prefix);
	cb->prefix_len = strlen(cb->prefix);
	snprintf(cb->maxlen, sizeof(cb->maxlen), "%" PRIu64, c->inbound_maxlen);
	cluster_map_init(&cb->map);
	dlist_init(&cb->unrouted);
	dlist_init(&cb->inflight);
	dlist_init(&cb->ranges);
	cb->history = c->history_size > 0;
	if (keys_inbound(cb->key_inbound, sizeof(cb->key_inbound), c->prefix) ==
		-1 ||
	    keys_events(cb->key_events, sizeof(cb->key_events), c->prefix) ==
		-1 ||
	    keys_presence(cb->key_presence, sizeof(cb->key_presence), c->prefix,
		cb->node) == -1 ||
	    keys_node(cb->key_node, sizeof(cb->key_node), c->prefix,
		cb->node) == -1) {
		snprintf(err, errlen, "redis.prefix or node id too long");
		free(cb);
		return NULL;
	}
	cb->addrs = hmap_new();
	if (cb->addrs == NULL) {
		snprintf(err, errlen, "out of memory");
		cluster_broker_free(&cb->base);
		return NULL;
	}
	return &cb->base;
}
