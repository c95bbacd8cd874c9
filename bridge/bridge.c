/*
 * bridge.c - glue between Redis (redis.c), the node bus (hub.c), interest
 * routing (interest.c) and presence (presence.c).
 *
 * Down: subscriber-link replies -> MSG envelopes, subscription
 * confirmations -> interest -> ACK envelopes, in one ordered bus stream.
 * Up: worker envelopes -> interest changes, presence, and writes on the
 * command link. Pending SUBSCRIBE/UNSUBSCRIBE and presence changes are sent
 * once per loop iteration from a hook. It does no socket I/O of its own.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "addr.h"
#include "bridge.h"
#include "clock.h"
#include "dlist.h"
#include "hmap.h"
#include "hub.h"
#include "interest.h"
#include "log.h"
#include "payload.h"
#include "presence.h"
#include "redis.h"
#include "wspenv.h"

#define KEY_MAX (CONF_PREFIX_MAX + CONF_NODE_ID_MAX + 16)

struct bworker_key {
	uint32_t slot, gen;
};

struct bworker {
	struct bworker_key key;
	uint32_t pid;
	uint32_t pipe_id; /* the pipe its last envelope came on */
	uint64_t last_seen;
	size_t n_counters;
	char **names;
	uint64_t *values;
};

/* An upstream write waiting for the command link (RESP, formatted). */
struct qcmd {
	struct dlist_node node;
	char *cmd; /* redisFormatCommandArgv; redisFreeCommand */
	size_t len;
};

struct bridge {
	const struct conf *conf;
	struct loop *loop;
	char node[CONF_NODE_ID_MAX];
	size_t node_len;
	uint64_t epoch;
	uint64_t started_mono, started_unix;

	struct hub *hub;
	struct redis_link *sub, *cmd;
	struct interest *interest;
	struct presence *presence;
	struct hmap *workers; /* struct bworker_key -> struct bworker * */
	struct hmap *pipes;   /* uint32_t pipe id -> struct bworker * */

	char prefix[CONF_PREFIX_MAX + 1]; /* "<prefix>:" */
	size_t prefix_len;
	char hb_chan[KEY_MAX];   /* <prefix>:_hb:<node> */
	char hb_prefix[KEY_MAX]; /* <prefix>:_hb: */
	char key_presence[KEY_MAX], key_node[KEY_MAX];
	char key_inbound[KEY_MAX], key_events[KEY_MAX];
	char maxlen[24];

	uint64_t last_seq;
	uint64_t last_hb_seen;
	uint64_t hb_timer, refresh_timer, stop_timer;
	int status_sent; /* -1 unknown, 0 down, 1 up */

	struct dlist queue; /* struct qcmd */
	size_t queue_n, queue_bytes;

	msgpack_zone zone;   /* wspenv decoding scratch */
	msgpack_sbuffer out; /* wspenv encoding scratch */

	bool stopping;
	uint64_t stop_deadline;
	uint64_t last_err_log;

	struct bridge_counters c;
};

static const char *const drop_names[BRIDGE_DROP_COUNT] = {
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
	return drop_names[d];
}

static void
drop(struct bridge *b, enum bridge_drop d)
{
	b->c.drops[d]++;
}

/* ---- status for systemd ---- */

static void
update_status(struct bridge *b)
{
	int up = redis_link_is_up(b->sub) && redis_link_is_up(b->cmd);

	if (up == b->status_sent)
		return;
	b->status_sent = up;
	sd_notifyf(0, "STATUS=redis=%s", up ? "up" : "down");
}

/* ---- writes on the command link ---- */

static void
queue_flush(struct bridge *b)
{
	struct dlist_node *n;

	while ((n = dlist_first(&b->queue)) != NULL) {
		struct qcmd *q = DLIST_ENTRY(n, struct qcmd, node);

		if (redis_link_write_formatted(b->cmd, q->cmd, q->len) == -1)
			return; /* link went down again: keep the rest */
		b->c.upstream_writes++;
		dlist_remove(n);
		b->queue_n--;
		b->queue_bytes -= q->len;
		redisFreeCommand(q->cmd);
		free(q);
	}
}

/* Sends an upstream write now, or queues it while the link is down. */
static void
upstream_write(
    struct bridge *b, int argc, const char **argv, const size_t *lens)
{
	struct qcmd *q;
	int len;

	if (dlist_empty(&b->queue) &&
	    redis_link_write(b->cmd, argc, argv, lens) == 0) {
		b->c.upstream_writes++;
		return;
	}
	if (b->queue_n >= BRIDGE_QUEUE_MAX ||
	    b->queue_bytes >= BRIDGE_QUEUE_BYTES)
		goto drop;
	q = calloc(1, sizeof(*q));
	if (q == NULL)
		goto drop;
	len = redisFormatCommandArgv(&q->cmd, argc, argv, lens);
	if (len < 0) {
		free(q);
		goto drop;
	}
	q->len = (size_t)len;
	dlist_insert_tail(&b->queue, &q->node);
	b->queue_n++;
	b->queue_bytes += q->len;
	return;
drop:
	/* DROP: the command link is down and the queue is full. */
	drop(b, BRIDGE_DROP_REDIS_DOWN);
}

/* A write only worth doing while the link is up (rewritten on reconnect). */
static void
state_write(struct bridge *b, int argc, const char **argv, const size_t *lens)
{
	(void)redis_link_write(b->cmd, argc, argv, lens);
}

static void
redis_error_cb(void *arg, struct redis_link *rl, const char *msg, size_t len)
{
	struct bridge *b = arg;
	uint64_t now = loop_now(b->loop);

	drop(b, BRIDGE_DROP_REDIS_ERROR);
	/* One line per 10 s at most: a misconfigured ACL would flood. */
	if (b->last_err_log == 0 || now - b->last_err_log >= 10000) {
		b->last_err_log = now;
		log_warnx("redis: write error: %.*s errors=%" PRIu64,
		    (int)(len > 200 ? 200 : len), msg,
		    b->c.drops[BRIDGE_DROP_REDIS_ERROR]);
	}
}

/* ---- presence in Redis ---- */

struct hset_batch {
	struct bridge *b;
	int argc_set, argc_del;
	bool changed;
	const char *set[2 + 2 * INTEREST_CHUNK];
	size_t set_len[2 + 2 * INTEREST_CHUNK];
	char nums[INTEREST_CHUNK][24];
	const char *del[2 + INTEREST_CHUNK];
	size_t del_len[2 + INTEREST_CHUNK];
};

static void
hset_send(void *arg)
{
	struct hset_batch *h = arg;

	if (h->argc_set > 2)
		state_write(h->b, h->argc_set, h->set, h->set_len);
	if (h->argc_del > 2)
		state_write(h->b, h->argc_del, h->del, h->del_len);
	h->argc_set = h->argc_del = 2;
}

static void
hset_init(struct hset_batch *h, struct bridge *b)
{
	h->b = b;
	h->set[0] = "HSET";
	h->set_len[0] = 4;
	h->del[0] = "HDEL";
	h->del_len[0] = 4;
	h->set[1] = h->del[1] = b->key_presence;
	h->set_len[1] = h->del_len[1] = strlen(b->key_presence);
	h->argc_set = h->argc_del = 2;
}

/* Strings are borrowed until hset_send(): presence keeps them alive until
 * its flush (or iteration) returns. */
static void
presence_emit(void *arg, const char *user, size_t len, uint64_t conns)
{
	struct hset_batch *h = arg;
	int i;

	h->changed = true;
	if (conns == 0) {
		h->del[h->argc_del] = user;
		h->del_len[h->argc_del] = len;
		if (++h->argc_del == 2 + INTEREST_CHUNK)
			hset_send(h);
		return;
	}
	i = (h->argc_set - 2) / 2;
	h->set[h->argc_set] = user;
	h->set_len[h->argc_set] = len;
	h->set_len[h->argc_set + 1] =
	    (size_t)snprintf(h->nums[i], sizeof(h->nums[i]), "%" PRIu64, conns);
	h->set[h->argc_set + 1] = h->nums[i];
	h->argc_set += 2;
	if (i + 1 == INTEREST_CHUNK)
		hset_send(h);
}

static void node_hash_write(struct bridge *b);
static void keys_expire(struct bridge *b);

static void
presence_write_changes(struct bridge *b)
{
	struct hset_batch *h;

	if (!redis_link_is_up(b->cmd))
		return; /* rewritten in full on reconnect */
	h = malloc(sizeof(*h));
	if (h == NULL)
		return;
	hset_init(h, b);
	h->changed = false;
	presence_flush(b->presence, presence_emit, hset_send, h);
	if (h->changed) {
		node_hash_write(b); /* the totals changed with it */
		/* An HSET may have created the key afresh (after its last
		 * field went): it must never live without a TTL. */
		keys_expire(b);
	}
	free(h);
}

static void
node_hash_write(struct bridge *b)
{
	char conns[24], users[24], workers[24], started[24], pid[24];
	const char *argv[14];
	size_t lens[14];

	snprintf(conns, sizeof(conns), "%" PRIu64,
	    presence_connections(b->presence));
	snprintf(users, sizeof(users), "%zu", presence_users(b->presence));
	snprintf(workers, sizeof(workers), "%zu", hmap_count(b->workers));
	snprintf(started, sizeof(started), "%" PRIu64, b->started_unix);
	snprintf(pid, sizeof(pid), "%ld", (long)getpid());
	argv[0] = "HSET";
	argv[1] = b->key_node;
	argv[2] = "connections";
	argv[3] = conns;
	argv[4] = "users";
	argv[5] = users;
	argv[6] = "workers";
	argv[7] = workers;
	argv[8] = "started";
	argv[9] = started;
	argv[10] = "version";
	argv[11] = WSPUSH_VERSION;
	argv[12] = "pid";
	argv[13] = pid;
	for (int i = 0; i < 14; i++)
		lens[i] = strlen(argv[i]);
	state_write(b, 14, argv, lens);
}

static void
keys_expire(struct bridge *b)
{
	char ttl[16];
	const char *argv[3] = {"EXPIRE", b->key_presence, ttl};
	size_t lens[3];

	snprintf(ttl, sizeof(ttl), "%d", BRIDGE_KEY_TTL_S);
	lens[0] = 6;
	lens[2] = strlen(ttl);
	lens[1] = strlen(b->key_presence);
	state_write(b, 3, argv, lens);
	argv[1] = b->key_node;
	lens[1] = strlen(b->key_node);
	state_write(b, 3, argv, lens);
}

static void
keys_delete(struct bridge *b)
{
	const char *argv[3] = {"DEL", b->key_presence, b->key_node};
	size_t lens[3] = {3, strlen(b->key_presence), strlen(b->key_node)};

	state_write(b, 3, argv, lens);
}

/* After a (re)connect: DEL, then everything we know, then the TTLs. */
static void
presence_rewrite(struct bridge *b)
{
	struct hset_batch *h = malloc(sizeof(*h));

	keys_delete(b);
	if (h != NULL) {
		hset_init(h, b);
		presence_each(b->presence, presence_emit, h);
		hset_send(h);
		free(h);
	}
	node_hash_write(b);
	keys_expire(b);
}

static void
refresh_cb(struct loop *l, uint64_t id, void *arg)
{
	struct bridge *b = arg;

	if (b->stopping || !redis_link_is_up(b->cmd))
		return;
	presence_write_changes(b);
	node_hash_write(b);
	keys_expire(b);
}

/* ---- workers ---- */

static void
worker_counters_free(struct bworker *w)
{
	for (size_t i = 0; i < w->n_counters; i++)
		free(w->names[i]);
	free(w->names);
	free(w->values);
	w->names = NULL;
	w->values = NULL;
	w->n_counters = 0;
}

static void
worker_forget(struct bridge *b, struct bworker *w, const char *why)
{
	log_notice("worker forgotten slot=%" PRIu32 " gen=%" PRIu32
		   " pid=%" PRIu32 " reason=%s",
	    w->key.slot, w->key.gen, w->pid, why);
	interest_forget(b->interest, w->key.slot, w->key.gen);
	presence_forget(b->presence, w->key.slot, w->key.gen);
	if (hmap_get(b->pipes, &w->pipe_id, sizeof(w->pipe_id)) == w)
		hmap_del(b->pipes, &w->pipe_id, sizeof(w->pipe_id));
	hmap_del(b->workers, &w->key, sizeof(w->key));
	worker_counters_free(w);
	free(w);
}

static struct bworker *
worker_touch(struct bridge *b, const struct up_worker *uw, uint32_t pipe_id)
{
	struct bworker_key key = {uw->slot, uw->gen};
	struct bworker *w = hmap_get(b->workers, &key, sizeof(key));

	if (w == NULL) {
		w = calloc(1, sizeof(*w));
		if (w == NULL)
			return NULL;
		w->key = key;
		if (hmap_put(b->workers, &w->key, sizeof(w->key), w) == -1) {
			free(w);
			return NULL;
		}
		log_info("worker attached slot=%" PRIu32 " gen=%" PRIu32
			 " pid=%" PRIu32 " pipe=%" PRIu32,
		    uw->slot, uw->gen, uw->pid, pipe_id);
	}
	w->pid = uw->pid;
	w->last_seen = loop_now(b->loop);
	if (w->pipe_id != pipe_id) {
		if (hmap_get(b->pipes, &w->pipe_id, sizeof(w->pipe_id)) == w)
			hmap_del(b->pipes, &w->pipe_id, sizeof(w->pipe_id));
		w->pipe_id = pipe_id;
	}
	(void)hmap_put(b->pipes, &w->pipe_id, sizeof(w->pipe_id), w);
	return w;
}

static void
worker_set_counters(struct bworker *w, const struct up_counters *c)
{
	char **names;
	uint64_t *values;
	size_t n = 0;

	worker_counters_free(w);
	if (c->n == 0)
		return;
	names = calloc(c->n, sizeof(*names));
	values = calloc(c->n, sizeof(*values));
	if (names == NULL || values == NULL)
		goto fail;
	for (uint32_t i = 0; i < c->n; i++) {
		const struct env_str *s = &c->items[i].name;

		if (s->p == NULL)
			continue;
		names[n] = strndup(s->p, s->len);
		if (names[n] == NULL)
			break;
		values[n] = c->items[i].value;
		n++;
	}
	w->names = names;
	w->values = values;
	w->n_counters = n;
	return;
fail:
	free(names);
	free(values);
}

static void
pipe_removed_cb(void *arg, uint32_t pipe_id)
{
	struct bridge *b = arg;
	struct bworker *w = hmap_get(b->pipes, &pipe_id, sizeof(pipe_id));

	/* Unknown pipes (nothing came on them, e.g. the hub's own listener
	 * check) are not worth a line. */
	if (w != NULL && w->pipe_id == pipe_id)
		worker_forget(b, w, "pipe_closed");
}

/* ---- Redis -> bus ---- */

static void
ack_cb(void *arg, uint32_t slot, uint32_t gen, uint64_t req_id,
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

	if (hub_bus_ack(b->hub, &a) == -1) {
		drop(b, BRIDGE_DROP_ENCODE);
		return;
	}
	b->c.bus_acks++;
	log_debug("ack slot=%" PRIu32 " gen=%" PRIu32 " req=%" PRIu64
		  " status=%d",
	    slot, gen, req_id, (int)status);
}

static void
on_message(
    struct bridge *b, const char *ch, size_t chlen, const char *p, size_t plen)
{
	struct bus_msg m = {.epoch = b->epoch};
	struct addr parsed;
	struct wspenv env;

	b->c.redis_messages++;
	if (chlen <= b->prefix_len ||
	    memcmp(ch, b->prefix, b->prefix_len) != 0 ||
	    addr_parse(ch + b->prefix_len, chlen - b->prefix_len, &parsed) ==
		-1) {
		log_debug("redis: message dropped reason=bad_address "
			  "channel=%.*s",
		    (int)(chlen > 300 ? 300 : chlen), ch);
		drop(b, BRIDGE_DROP_BAD_ADDRESS);
		return;
	}
	m.to.p = ch + b->prefix_len;
	m.to.len = (uint32_t)(chlen - b->prefix_len);
	if (wspenv_is(p, plen)) {
		int rc = wspenv_decode(p, plen, &b->zone, &env);

		msgpack_zone_clear(&b->zone);
		if (rc == -1) {
			log_debug("redis: message dropped reason=bad_envelope "
				  "to=%.*s",
			    (int)m.to.len, m.to.p);
			drop(b, BRIDGE_DROP_BAD_ENVELOPE);
			return;
		}
		m.data = env.data;
		m.from = env.from;
		m.id = env.id;
		m.ts = env.ts;
		m.cls = payload_classify(env.data.p, env.data.len, env.json);
	} else {
		m.data.p = p;
		m.data.len = (uint32_t)plen;
		m.cls = payload_classify(p, plen, false);
	}
	m.seq = b->last_seq + 1;
	if (hub_bus_msg(b->hub, &m) == -1) {
		log_debug("bus: message dropped reason=encode to=%.*s",
		    (int)m.to.len, m.to.p);
		drop(b, BRIDGE_DROP_ENCODE);
		return;
	}
	b->last_seq = m.seq;
	b->c.bus_msgs++;
}

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
is_hb(const struct bridge *b, const redisReply *ch)
{
	size_t n = strlen(b->hb_chan);

	return ch->len == n && memcmp(ch->str, b->hb_chan, n) == 0;
}

/* Every reply of the subscriber link comes here (one callback for all). */
static void
sub_reply_cb(redisAsyncContext *ac, void *r, void *privdata)
{
	struct bridge *b = privdata;
	redisReply *reply = r;
	redisReply **e;

	if (reply == NULL)
		return; /* the link is going down */
	if (reply->type == REDIS_REPLY_ERROR) {
		log_warnx("redis: link=sub error: %.*s",
		    (int)(reply->len > 200 ? 200 : reply->len), reply->str);
		return;
	}
	if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 3)
		return;
	e = reply->element;
	for (size_t i = 0; i < reply->elements; i++) {
		if (e[i]->type != REDIS_REPLY_STRING &&
		    e[i]->type != REDIS_REPLY_INTEGER &&
		    e[i]->type != REDIS_REPLY_STATUS)
			return;
	}
	if (!is_str(e[0]) || !is_str(e[1]))
		return;
	if (streq(e[0], "message") && is_str(e[2])) {
		if (is_hb(b, e[1])) {
			b->last_hb_seen = loop_now(b->loop);
			return;
		}
		on_message(b, e[1]->str, e[1]->len, e[2]->str, e[2]->len);
	} else if (streq(e[0], "pmessage") && reply->elements >= 4 &&
		   is_str(e[2]) && is_str(e[3])) {
		size_t hl = strlen(b->hb_prefix);

		if (is_hb(b, e[2]))
			b->last_hb_seen = loop_now(b->loop);
		if (e[2]->len >= hl && memcmp(e[2]->str, b->hb_prefix, hl) == 0)
			return; /* never delivered */
		on_message(b, e[2]->str, e[2]->len, e[3]->str, e[3]->len);
	} else if (streq(e[0], "subscribe") || streq(e[0], "unsubscribe")) {
		enum interest_cmd cmd = streq(e[0], "subscribe")
					    ? INTEREST_SUBSCRIBE
					    : INTEREST_UNSUBSCRIBE;

		if (is_hb(b, e[1]) || e[1]->len <= b->prefix_len ||
		    memcmp(e[1]->str, b->prefix, b->prefix_len) != 0)
			return;
		interest_confirmed(b->interest, cmd, e[1]->str + b->prefix_len,
		    e[1]->len - b->prefix_len);
	} else if (streq(e[0], "psubscribe")) {
		interest_confirmed(b->interest, INTEREST_PSUBSCRIBE, NULL, 0);
		log_info("redis: pattern subscribed pattern=%.*s",
		    (int)e[1]->len, e[1]->str);
	}
}

/* interest_flush() callback: one (P)(UN)SUBSCRIBE on the subscriber link. */
static int
sub_cmd_cb(void *arg, enum interest_cmd cmd, const char *const *names,
    const size_t *lens, size_t n)
{
	struct bridge *b = arg;
	const char **argv = NULL;
	size_t *alens = NULL;
	char *buf = NULL, *p;
	size_t total = 0;
	int rc = -1;

	if (cmd == INTEREST_PSUBSCRIBE) {
		/* "<prefix>:*", glob characters of the prefix escaped. */
		char pat[2 * CONF_PREFIX_MAX + 2];
		const char *pv[2] = {"PSUBSCRIBE", pat};
		size_t pl[2] = {10, 0}, j = 0;

		for (size_t i = 0; i < b->prefix_len; i++) {
			if (strchr("?[]\\", b->prefix[i]) != NULL)
				pat[j++] = '\\';
			pat[j++] = b->prefix[i];
		}
		pat[j++] = '*';
		pl[1] = j;
		return redis_link_command(b->sub, sub_reply_cb, b, 2, pv, pl);
	}
	for (size_t i = 0; i < n; i++)
		total += b->prefix_len + lens[i];
	argv = calloc(n + 1, sizeof(*argv));
	alens = calloc(n + 1, sizeof(*alens));
	buf = malloc(total + 1);
	if (argv == NULL || alens == NULL || buf == NULL)
		goto out;
	argv[0] = cmd == INTEREST_SUBSCRIBE ? "SUBSCRIBE" : "UNSUBSCRIBE";
	alens[0] = strlen(argv[0]);
	p = buf;
	for (size_t i = 0; i < n; i++) {
		memcpy(p, b->prefix, b->prefix_len);
		memcpy(p + b->prefix_len, names[i], lens[i]);
		argv[i + 1] = p;
		alens[i + 1] = b->prefix_len + lens[i];
		p += alens[i + 1];
	}
	rc = redis_link_command(
	    b->sub, sub_reply_cb, b, (int)n + 1, argv, alens);
	log_debug("redis: %s channels=%zu rc=%d", argv[0], n, rc);
out:
	free(argv);
	free(alens);
	free(buf);
	return rc;
}

/* ---- links ---- */

static void
sub_up_cb(void *arg, struct redis_link *rl)
{
	struct bridge *b = arg;

	b->last_hb_seen = loop_now(b->loop);
	if (b->conf->routing == CONF_ROUTING_INTEREST) {
		const char *argv[2] = {"SUBSCRIBE", b->hb_chan};
		size_t lens[2] = {9, strlen(b->hb_chan)};

		(void)redis_link_command(rl, sub_reply_cb, b, 2, argv, lens);
	}
	interest_link_up(b->interest);
	update_status(b);
}

static void
sub_down_cb(void *arg, struct redis_link *rl)
{
	struct bridge *b = arg;

	interest_link_down(b->interest);
	update_status(b);
}

static void
cmd_up_cb(void *arg, struct redis_link *rl)
{
	struct bridge *b = arg;

	if (b->stopping)
		keys_delete(b);
	else
		presence_rewrite(b);
	queue_flush(b);
	b->last_hb_seen = loop_now(b->loop);
	update_status(b);
}

static void
cmd_down_cb(void *arg, struct redis_link *rl)
{
	update_status(arg);
}

/* ---- upstream ---- */

static void
upstream_publish(struct bridge *b, const struct up_publish *p)
{
	struct addr parsed;
	struct wspenv e = {
	    .data = p->data,
	    .from = p->from,
	    .id = p->id,
	    .ts = clock_wall_ms(),
	    .json = true,
	};
	char chan[KEY_MAX + ADDR_MAX];
	const char *argv[3];
	size_t lens[3];

	if (p->to.p == NULL || addr_parse(p->to.p, p->to.len, &parsed) == -1) {
		log_debug("upstream publish dropped reason=bad_address");
		drop(b, BRIDGE_DROP_BAD_ADDRESS);
		return;
	}
	if (e.data.p == NULL)
		e.data.p = "";
	msgpack_sbuffer_clear(&b->out);
	if (wspenv_encode(&b->out, &e) == -1) {
		drop(b, BRIDGE_DROP_ENCODE);
		return;
	}
	memcpy(chan, b->prefix, b->prefix_len);
	memcpy(chan + b->prefix_len, p->to.p, p->to.len);
	argv[0] = "PUBLISH";
	lens[0] = 7;
	argv[1] = chan;
	lens[1] = b->prefix_len + p->to.len;
	argv[2] = b->out.data;
	lens[2] = b->out.size;
	upstream_write(b, 3, argv, lens);
}

#define STR_ARG(s) ((s).p != NULL ? (s).p : "")

static void
upstream_send(struct bridge *b, const struct up_send *s)
{
	const char *argv[14] = {"XADD", b->key_inbound, "MAXLEN", "~",
	    b->maxlen, "*", "user", STR_ARG(s->user), "conn", STR_ARG(s->conn),
	    "node", b->node, "data", STR_ARG(s->data)};
	size_t lens[14];

	for (int i = 0; i < 14; i++)
		lens[i] = strlen(argv[i]);
	lens[7] = s->user.len;
	lens[9] = s->conn.len;
	lens[13] = s->data.len;
	upstream_write(b, 14, argv, lens);
}

static void
upstream_event(
    struct bridge *b, const struct bworker *w, const struct up_event *ev)
{
	const char *argv[16] = {"XADD", b->key_events, "MAXLEN", "~", b->maxlen,
	    "*", "type", STR_ARG(ev->type), "user", STR_ARG(ev->user), "conn",
	    STR_ARG(ev->conn), "node", b->node, "reason", STR_ARG(ev->reason)};
	size_t lens[16];
	int delta = 0;

	for (int i = 0; i < 16; i++)
		lens[i] = strlen(argv[i]);
	lens[7] = ev->type.len;
	lens[9] = ev->user.len;
	lens[11] = ev->conn.len;
	lens[15] = ev->reason.len;
	upstream_write(b, 16, argv, lens);
	if (ev->type.len == 7 && memcmp(ev->type.p, "connect", 7) == 0)
		delta = 1;
	else if (ev->type.len == 10 &&
		 memcmp(ev->type.p, "disconnect", 10) == 0)
		delta = -1;
	if (delta != 0)
		(void)presence_event(b->presence, w->key.slot, w->key.gen,
		    ev->user.p, ev->user.len, delta);
}

static void
up_recv_cb(void *arg, uint32_t pipe_id, const struct up_env *env)
{
	struct bridge *b = arg;
	struct bworker *w;
	size_t invalid = 0;

	b->c.upstream_envelopes++;
	w = worker_touch(b, &env->w, pipe_id);
	if (w == NULL) {
		log_errx("out of memory: upstream envelope dropped");
		drop(b, BRIDGE_DROP_BAD_UPSTREAM);
		return;
	}
	switch (env->kind) {
	case UP_INTEREST_ADD:
		(void)interest_add(b->interest, w->key.slot, w->key.gen,
		    env->u.interest.req_id, env->u.interest.addr.p,
		    env->u.interest.addr.len);
		break;
	case UP_INTEREST_DEL:
		interest_del(b->interest, w->key.slot, w->key.gen,
		    env->u.interest.addr.p, env->u.interest.addr.len);
		break;
	case UP_INTEREST_SYNC:
		(void)interest_sync(b->interest, w->key.slot, w->key.gen,
		    env->u.sync.addrs, env->u.sync.n_addrs, &invalid);
		(void)presence_sync(b->presence, w->key.slot, w->key.gen,
		    env->u.sync.users, env->u.sync.n_users);
		log_info("worker sync slot=%" PRIu32 " gen=%" PRIu32
			 " addrs=%" PRIu32 " invalid=%zu users=%" PRIu32
			 " epoch_match=%d",
		    w->key.slot, w->key.gen, env->u.sync.n_addrs, invalid,
		    env->u.sync.n_users, env->u.sync.epoch == b->epoch);
		break;
	case UP_PUBLISH:
		upstream_publish(b, &env->u.publish);
		break;
	case UP_SEND:
		upstream_send(b, &env->u.send);
		break;
	case UP_EVENT:
		upstream_event(b, w, &env->u.event);
		break;
	case UP_COUNTERS:
		worker_set_counters(w, &env->u.counters);
		break;
	case UP_BYE:
		worker_forget(b, w, "bye");
		break;
	}
}

static void
up_drop_cb(void *arg, const char *reason)
{
	drop(arg, BRIDGE_DROP_BAD_UPSTREAM);
}

/* ---- timers and the per-iteration hook ---- */

static void
hb_cb(struct loop *l, uint64_t id, void *arg)
{
	struct bridge *b = arg;
	uint64_t now = loop_now(l);
	uint64_t limit = 3 * (uint64_t)b->conf->heartbeat_ms;
	struct bus_heartbeat hb = {
	    .epoch = b->epoch,
	    .last_seq = b->last_seq,
	    .node = {b->node, (uint32_t)b->node_len},
	    .redis_up = redis_link_is_up(b->sub),
	};
	struct hmap_iter it;
	const void *k;
	size_t klen;
	void *v;

	if (hub_bus_heartbeat(b->hub, &hb) == 0)
		b->c.bus_heartbeats++;

	/* Liveness of the subscriber link: our own PUBLISH must come back. */
	if (limit < 3000)
		limit = 3000;
	if (redis_link_is_up(b->cmd)) {
		char ts[24];
		const char *argv[3] = {"PUBLISH", b->hb_chan, ts};
		size_t lens[3] = {7, strlen(b->hb_chan), 0};

		lens[2] = (size_t)snprintf(ts, sizeof(ts), "%" PRIu64, now);
		state_write(b, 3, argv, lens);
	} else {
		b->last_hb_seen = now; /* cannot probe: do not blame sub */
	}
	if (redis_link_is_up(b->sub) && now - b->last_hb_seen > limit) {
		log_warnx("redis: link=sub silent for %" PRIu64
			  " ms (own heartbeat not received): reconnecting",
		    now - b->last_hb_seen);
		b->c.sub_resets++;
		redis_link_reset(b->sub, "no_heartbeat");
		b->last_hb_seen = now;
	}

	/* Workers that went silent (they send COUNTERS every second). The
	 * scan restarts after each removal: the map cannot change under an
	 * iteration, and there are few workers. */
	for (bool again = true; again;) {
		again = false;
		hmap_iter_init(b->workers, &it);
		while (hmap_iter_next(&it, &k, &klen, &v)) {
			struct bworker *w = v;

			if (now - w->last_seen > BRIDGE_WORKER_TIMEOUT_MS) {
				worker_forget(b, w, "timeout");
				again = true;
				break;
			}
		}
	}
	update_status(b);
}

static void
iteration_hook(struct loop *l, void *arg)
{
	struct bridge *b = arg;

	if (interest_dirty(b->interest))
		interest_flush(b->interest, sub_cmd_cb, b);
	if (!dlist_empty(&b->queue) && redis_link_is_up(b->cmd))
		queue_flush(b);
	if (!b->stopping)
		presence_write_changes(b);
}

static void
stop_check_cb(struct loop *l, uint64_t id, void *arg)
{
	struct bridge *b = arg;
	/* Done when nothing is queued or unanswered; while the link is down
	 * with writes queued, wait (bounded) for it to come back. */
	bool done =
	    dlist_empty(&b->queue) && redis_link_outstanding(b->cmd) == 0;

	if (done || loop_now(l) >= b->stop_deadline) {
		if (!done)
			log_warnx("stop: gave up flushing queued=%zu "
				  "outstanding=%" PRIu64,
			    b->queue_n, redis_link_outstanding(b->cmd));
		loop_timer_del(l, id);
		b->stop_timer = 0;
		loop_stop(l);
	}
}

void
bridge_stop(struct bridge *b)
{
	if (b->stopping)
		return;
	b->stopping = true;
	b->stop_deadline = loop_now(b->loop) + BRIDGE_STOP_FLUSH_MS;
	log_notice("stopping: flushing writes queued=%zu", b->queue_n);
	if (redis_link_is_up(b->cmd))
		keys_delete(b);
	b->stop_timer = loop_timer_add(b->loop, 0, 20, stop_check_cb, b);
	if (b->stop_timer == 0)
		loop_stop(b->loop);
}

/* ---- life ---- */

struct bridge *
bridge_new(struct loop *loop, const struct conf *c, const char *node,
    uint64_t epoch, char *err, size_t errlen)
{
	struct bridge *b = calloc(1, sizeof(*b));
	struct redis_link_cbs sub_cbs, cmd_cbs;
	struct hub_cbs hcbs;
	char bus_url[CONF_RUNTIME_DIR_MAX + 32];
	char up_url[CONF_RUNTIME_DIR_MAX + 32];

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
	b->status_sent = -1;
	dlist_init(&b->queue);
	msgpack_zone_init(&b->zone, 2048);
	msgpack_sbuffer_init(&b->out);
	snprintf(b->prefix, sizeof(b->prefix), "%s:", c->prefix);
	b->prefix_len = strlen(b->prefix);
	snprintf(b->hb_prefix, sizeof(b->hb_prefix), "%s_hb:", b->prefix);
	snprintf(b->hb_chan, sizeof(b->hb_chan), "%s%s", b->hb_prefix, node);
	snprintf(b->key_presence, sizeof(b->key_presence), "%spresence:%s",
	    b->prefix, node);
	snprintf(
	    b->key_node, sizeof(b->key_node), "%snode:%s", b->prefix, node);
	snprintf(
	    b->key_inbound, sizeof(b->key_inbound), "%sinbound", b->prefix);
	snprintf(b->key_events, sizeof(b->key_events), "%sevents", b->prefix);
	snprintf(b->maxlen, sizeof(b->maxlen), "%" PRIu64, c->inbound_maxlen);
	b->c.version = WSPUSH_VERSION;

	b->interest =
	    interest_new(c->routing == CONF_ROUTING_BROADCAST, ack_cb, b);
	b->presence = presence_new();
	b->workers = hmap_new();
	b->pipes = hmap_new();
	if (b->interest == NULL || b->presence == NULL || b->workers == NULL ||
	    b->pipes == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	/* Our hook first: it may queue work the hub's hook then sends. */
	if (loop_hook_add(loop, iteration_hook, b) == -1) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	hcbs.recv = up_recv_cb;
	hcbs.pipe_removed = pipe_removed_cb;
	hcbs.drop = up_drop_cb;
	hcbs.arg = b;
	conf_bus_url(c, bus_url, sizeof(bus_url));
	conf_up_url(c, up_url, sizeof(up_url));
	b->hub = hub_open(loop, bus_url, up_url, &hcbs, err, errlen);
	if (b->hub == NULL)
		goto fail;

	sub_cbs = (struct redis_link_cbs){sub_up_cb, sub_down_cb, NULL, b};
	cmd_cbs =
	    (struct redis_link_cbs){cmd_up_cb, cmd_down_cb, redis_error_cb, b};
	b->sub = redis_link_new(loop, c, "sub", &sub_cbs);
	b->cmd = redis_link_new(loop, c, "cmd", &cmd_cbs);
	b->hb_timer =
	    loop_timer_add(loop, c->heartbeat_ms, c->heartbeat_ms, hb_cb, b);
	b->refresh_timer = loop_timer_add(
	    loop, BRIDGE_KEY_REFRESH_MS, BRIDGE_KEY_REFRESH_MS, refresh_cb, b);
	if (b->sub == NULL || b->cmd == NULL || b->hb_timer == 0 ||
	    b->refresh_timer == 0) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	update_status(b);
	redis_link_start(b->cmd);
	redis_link_start(b->sub);
	log_notice("bridge started node=%s epoch=%016" PRIx64
		   " bus=%s up=%s routing=%s",
	    b->node, b->epoch, bus_url, up_url,
	    c->routing == CONF_ROUTING_BROADCAST ? "broadcast" : "interest");
	return b;
fail:
	bridge_free(b);
	return NULL;
}

void
bridge_free(struct bridge *b)
{
	struct hmap_iter it;
	const void *k;
	size_t klen;
	void *v;
	struct dlist_node *n;

	if (b == NULL)
		return;
	loop_hook_del(b->loop, iteration_hook, b);
	if (b->hb_timer != 0)
		loop_timer_del(b->loop, b->hb_timer);
	if (b->refresh_timer != 0)
		loop_timer_del(b->loop, b->refresh_timer);
	if (b->stop_timer != 0)
		loop_timer_del(b->loop, b->stop_timer);
	redis_link_free(b->sub);
	redis_link_free(b->cmd);
	hub_close(b->hub);
	if (b->workers != NULL) {
		hmap_iter_init(b->workers, &it);
		while (hmap_iter_next(&it, &k, &klen, &v)) {
			worker_counters_free(v);
			free(v);
		}
		hmap_free(b->workers);
	}
	hmap_free(b->pipes);
	interest_free(b->interest);
	presence_free(b->presence);
	while ((n = dlist_first(&b->queue)) != NULL) {
		struct qcmd *q = DLIST_ENTRY(n, struct qcmd, node);

		dlist_remove(n);
		redisFreeCommand(q->cmd);
		free(q);
	}
	msgpack_zone_destroy(&b->zone);
	msgpack_sbuffer_destroy(&b->out);
	free(b);
}

void
bridge_counters(struct bridge *b, struct bridge_counters *out)
{
	const struct hub_stats *hs = b->hub != NULL ? hub_stats(b->hub) : NULL;

	b->c.sub_up = redis_link_is_up(b->sub);
	b->c.cmd_up = redis_link_is_up(b->cmd);
	b->c.sub_reconnects = redis_link_reconnects(b->sub);
	b->c.cmd_reconnects = redis_link_reconnects(b->cmd);
	b->c.connect_failures = redis_link_connect_failures(b->sub) +
				redis_link_connect_failures(b->cmd);
	b->c.subscriptions = interest_subscribed(b->interest);
	b->c.addresses = interest_addresses(b->interest);
	b->c.acks_waiting = interest_waiting(b->interest);
	b->c.last_seq = b->last_seq;
	b->c.queued_writes = b->queue_n;
	b->c.workers = hmap_count(b->workers);
	b->c.connections = presence_connections(b->presence);
	b->c.users = presence_users(b->presence);
	b->c.uptime_s = (clock_mono_ms() - b->started_mono) / 1000;
	if (hs != NULL) {
		b->c.bus_batches = hs->bus_messages;
		b->c.drops[BRIDGE_DROP_BUS_SEND] = hs->bus_send_errors;
	}
	*out = b->c;
}

void
bridge_worker_each(struct bridge *b, bridge_worker_fn *fn, void *arg)
{
	struct hmap_iter it;
	const void *k;
	size_t klen;
	void *v;

	hmap_iter_init(b->workers, &it);
	while (hmap_iter_next(&it, &k, &klen, &v)) {
		struct bworker *w = v;
		struct bridge_worker_info info = {
		    .slot = w->key.slot,
		    .gen = w->key.gen,
		    .pid = w->pid,
		    .last_seen_ms = w->last_seen,
		    .n_counters = w->n_counters,
		    .names = (const char *const *)w->names,
		    .values = w->values,
		};

		fn(arg, &info);
	}
}
