/*
 * conn.c - per-connection state: identity, memberships, welcome, replies
 * in request order, and the bounded queue's slow-client policy (see
 * conn.h). The fan-out reaches conn_deliver() once per receiving
 * connection with a shared frame; nothing here allocates per delivery
 * except when a queue ring has to grow. Writing is send.c's.
 */
#include "conn.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "fanout.h"
#include "log.h"
#include "recover.h"
#include "uptx.h"
#include "worker.h"

enum conn_tag {
	CONN_M_USER = 1,
	CONN_M_ALL = 2,
	CONN_M_CHANNEL = 3,
};

/*
 * A reply that waits for an earlier one, or is one that waits: until it
 * is answered it is the `subscribe` of m, answered with ref when m's
 * channel is active (or refused). m is also kept on an answered
 * `subscribed`: m's messages start when it is queued. m is cleared when
 * the membership goes.
 */
struct conn_reply {
	struct dlist_node node; /* in conn->replies */
	struct frame *f;        /* the reply (NULL: out of memory) */
	bool answered;          /* f is final: queue it in its turn */
	struct fan_member *m;   /* the subscription it answers, or NULL */
	json_t *ref;            /* owned; echoed when f is built */
};

#define CHANNEL_PREFIX "channel:"
#define CHANNEL_PREFIX_LEN (sizeof(CHANNEL_PREFIX) - 1)

/* A socket that never becomes writeable is cut this long after a close. */
#define CONN_CLOSE_BACKSTOP_S 3

/* c->user and c->id until they are known: "" (never freed). */
static char conn_unset[] = "";

/* Takes a copy of the id in buf as c's; returns it, or NULL. */
static const char *
conn_set_id(struct conn *c, const char *buf)
{
	char *id = strdup(buf);

	if (id == NULL)
		return NULL;
	c->id = id;
	return id;
}

const char *
conn_id(struct conn *c)
{
	struct worker *w = c->w;
	const char *node;
	char buf[CONN_ID_MAX];

	if (c->id != conn_unset)
		return c->id;
	node = worker_node(w);
	if (node == NULL && strcmp(w->conf->node_id, "auto") != 0)
		node = w->conf->node_id;
	if (node == NULL)
		return NULL;
	snprintf(buf, sizeof(buf), "%s.%" PRIu32 ".%" PRIu32 ".%" PRIu64, node,
	    w->slot, w->gen, ++w->next_conn);
	return conn_set_id(c, buf);
}

/* Marks c for send.c's pass over the flush list. */
static inline void
conn_mark(struct conn *c)
{
	if (!dlist_node_linked(&c->flush_node))
		dlist_insert_tail(&c->w->flush, &c->flush_node);
}

/* Queues f (borrowed) under the slow-client policy; counts what is lost. */
static void
conn_enqueue(struct conn *c, struct frame *f)
{
	struct worker *w = c->w;
	enum connq_verdict v;
	uint32_t dropped;

	if (c->dead) {
		w->c.drop_closed++; /* DROP: the socket failed */
		return;
	}
	if (c->close_code != 0) {
		/* DROP: the client is being cut */
		if (c->close_code == 1013)
			w->c.drop_slow_closed++;
		else
			w->c.drop_closed++;
		return;
	}
	v = connq_offer(&c->q, f, w->conf->slow_client != CONF_SLOW_CLOSE,
	    &dropped, &w->c.queue_hwm);
	if (v == CONNQ_OVERFLOW) {
		/* DROP: the queue and this frame, counted as
		 * drop_slow_closed; the client is cut with 1013. */
		w->c.drop_slow_closed += dropped;
		w->c.closed_slow++;
		log_info("conn=%s user=%s: slow client: closing 1013", c->id,
		    c->user);
		conn_close(c, 1013, "slow_client");
		return;
	}
	/* DROP: oldest frames, or this one; counted as drop_queue_full. */
	w->c.drop_queue_full += dropped;
	if (v == CONNQ_QUEUED)
		conn_mark(c); /* written after the loop pass (send.c) */
}

void
conn_deliver(struct conn *c, struct frame *f)
{
	conn_enqueue(c, f);
}

/* Queues a reply now (its turn has come); takes f's reference. */
static void
conn_reply_now(struct conn *c, struct frame *f)
{
	if (f == NULL) {
		log_warnx("conn=%s: reply dropped: out of memory", c->id);
		return;
	}
	c->w->c.replies++;
	conn_enqueue(c, f);
	frame_unref(f);
}

static void
conn_reply_free(struct conn *c, struct conn_reply *r)
{
	dlist_remove(&r->node);
	c->n_replies--;
	if (r->f != NULL)
		frame_unref(r->f);
	json_decref(r->ref);
	free(r);
}

/* Queues the replies whose turn has come: the known ones at the head of
 * the list, up to the first that still waits. */
static void
conn_replies_drain(struct conn *c)
{
	struct dlist_node *n;

	while ((n = dlist_first(&c->replies)) != NULL) {
		struct conn_reply *r = DLIST_ENTRY(n, struct conn_reply, node);

		if (!r->answered)
			return;
		conn_reply_now(c, r->f); /* NULL: logged as dropped */
		r->f = NULL;
		/* A channel's messages start with its `subscribed`; after a
		 * recovery, with the replayed ones. */
		if (r->m != NULL) {
			fanout_set_live(r->m);
			if (r->m->udata != NULL)
				recover_flush(c->w, r->m->udata);
		}
		conn_reply_free(c, r);
	}
}

/* Appends a reply to the list: f known (m: the subscription it
 * announces, or NULL), or f NULL: the `subscribe` of m, answered with a
 * copy of ref. Returns -1 (f released, c closing) past CONN_REPLIES_MAX
 * or without memory. */
static int
conn_reply_append(
    struct conn *c, struct frame *f, struct fan_member *m, const json_t *ref)
{
	struct conn_reply *r;

	if (c->close_code != 0) {
		/* Closing: dropped as every frame is now (counted). */
		if (f != NULL)
			conn_reply_now(c, f);
		return -1;
	}
	if (c->n_replies >= CONN_REPLIES_MAX) {
		if (f != NULL)
			frame_unref(f);
		c->w->c.closed_abuse++;
		log_info("conn=%s user=%s: %u requests wait for a reply: "
			 "closing 1008",
		    c->id, c->user, c->n_replies);
		conn_close_msg(c, 1008, "abuse", "too many requests waiting");
		return -1;
	}
	r = calloc(1, sizeof(*r));
	if (r == NULL ||
	    (ref != NULL && (r->ref = json_deep_copy(ref)) == NULL)) {
		free(r);
		if (f != NULL)
			frame_unref(f);
		log_warnx("conn=%s: out of memory for a reply: closing", c->id);
		conn_close(c, 1011, "error");
		return -1;
	}
	r->f = f;
	r->answered = f != NULL;
	r->m = m;
	dlist_insert_tail(&c->replies, &r->node);
	c->n_replies++;
	return 0;
}

void
conn_reply(struct conn *c, struct frame *f)
{
	if (dlist_empty(&c->replies))
		conn_reply_now(c, f);
	else if (f != NULL)
		conn_reply_append(c, f, NULL, NULL);
	else
		log_warnx("conn=%s: reply dropped: out of memory", c->id);
}

struct conn_reply *
conn_reply_later(struct conn *c, const json_t *ref)
{
	if (conn_reply_append(c, NULL, NULL, ref) == -1)
		return NULL;
	return DLIST_ENTRY(c->replies.head.prev, struct conn_reply, node);
}

const json_t *
conn_reply_ref(const struct conn_reply *r)
{
	return r->ref;
}

void
conn_reply_fill(struct conn *c, struct conn_reply *r, struct frame *f)
{
	r->f = f;
	r->answered = true;
	conn_replies_drain(c);
}

void
conn_error(
    struct conn *c, enum cmsg_err code, const char *msg, const json_t *ref)
{
	conn_reply(c, cmsg_error_frame(code, msg, ref));
}

static struct frame *
conn_subscribed_frame(const struct fan_member *m, const json_t *ref)
{
	return cmsg_reply_frame("subscribed",
	    m->entry->addr + CHANNEL_PREFIX_LEN,
	    m->entry->addrlen - CHANNEL_PREFIX_LEN, ref);
}

/* A `subscribed` reply for m can be given: m's channel is active and the
 * client has its welcome. */
static bool
conn_can_announce(const struct conn *c, const struct fan_member *m)
{
	return c->welcomed && m->ready && m->entry != NULL;
}

/*
 * Answers every `subscribe` waiting for m: with `subscribed` (failed
 * false), or with error `unavailable` (failed: the bridge refused the
 * channel). detach: m is going; replies keep no pointer to it.
 */
static void
conn_replies_answer(
    struct conn *c, struct fan_member *m, bool failed, bool detach)
{
	struct dlist_node *n;

	DLIST_FOREACH(n, &c->replies) {
		struct conn_reply *r = DLIST_ENTRY(n, struct conn_reply, node);

		if (r->m != m)
			continue;
		/* Recovering: answered when the range is (conn_recovered()),
		 * unless the subscription goes or failed first. */
		if (!r->answered && !failed && !detach && m->udata != NULL) {
			struct recover *rc = m->udata;

			if (rc->phase == RECOVER_WAITING)
				recover_start(c->w, rc, clock_mono_ms());
			if (rc->phase == RECOVER_READING)
				continue;
			if (rc->phase == RECOVER_ANSWERED) {
				r->f = cmsg_subscribed_frame(
				    m->entry->addr + CHANNEL_PREFIX_LEN,
				    m->entry->addrlen - CHANNEL_PREFIX_LEN,
				    r->ref, rc->recovered);
				r->answered = true;
				continue;
			}
		}
		if (!r->answered) {
			r->f = failed
				   ? cmsg_error_frame(CMSG_E_UNAVAILABLE,
					 "the node could not subscribe", r->ref)
				   : conn_subscribed_frame(m, r->ref);
			/* Out of memory: the reply is lost (logged when
			 * its turn comes), the order and the rest kept. */
			r->answered = true;
		}
		if (detach || failed)
			r->m = NULL;
	}
}

void
conn_close(struct conn *c, int code, const char *reason)
{
	conn_close_msg(c, code, reason, NULL);
}

void
conn_close_msg(struct conn *c, int code, const char *reason, const char *msg)
{
	if (c->close_code != 0)
		return;
	c->close_code = code;
	c->close_msg = msg;
	c->reason = reason;
	c->w->c.drop_closed += connq_clear(&c->q); /* DROP: cut with c */
	/* Its memberships go after this loop pass (conn_release()): not
	 * here, where a fan-out may be walking them. */
	conn_mark(c);
	keepalive_del(&c->ka); /* the backstop below bounds the close */
	lws_callback_on_writable(c->wsi);
	lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_REASON_BASE + 1,
	    CONN_CLOSE_BACKSTOP_S);
}

/*
 * Releases every membership of c: a connection being closed is no longer
 * a target, so messages published while its close completes (up to
 * CONN_CLOSE_BACKSTOP_S for a client that stopped reading) are neither
 * fanned out to it nor counted as its drops, and the node drops its
 * interest in addresses nobody else wants at once. Replies not queued yet
 * go too (never queued, so never counted).
 */
void
conn_release(struct conn *c)
{
	struct worker *w = c->w;
	struct dlist_node *n, *tmp;

	recover_conn_gone(w, c); /* its history reads: before the replies */
	DLIST_FOREACH_SAFE(n, tmp, &c->replies)
		conn_reply_free(c, DLIST_ENTRY(n, struct conn_reply, node));
	DLIST_FOREACH_SAFE(n, tmp, &c->members) {
		struct fan_member *m =
		    DLIST_ENTRY(n, struct fan_member, by_owner);

		if (m->udata != NULL) {
			recover_free(w, m->udata);
			m->udata = NULL;
		}
		fanout_leave(w->fan, m);
	}
	c->m_user = c->m_all = NULL;
	w->n_channel_subs -= c->n_channels;
	c->n_channels = 0;
	c->left = true;
}

static void
conn_try_welcome(struct conn *c)
{
	struct worker *w = c->w;
	struct dlist_node *n;
	const char *id, *node;

	struct recover *rc;
	int recovered = -1;

	if (c->welcomed || c->m_user == NULL || c->m_all == NULL ||
	    !c->m_user->ready || !c->m_all->ready)
		return;
	rc = c->m_user->udata;
	if (rc != NULL) {
		if (rc->phase == RECOVER_WAITING)
			recover_start(w, rc, clock_mono_ms());
		if (rc->phase == RECOVER_READING)
			return; /* welcomed with the answer */
		recovered = rc->recovered;
	}
	id = conn_id(c);
	if (id == NULL) {
		/* Unreachable in practice: an ACK carries the node id. */
		char buf[CONN_ID_MAX];

		snprintf(buf, sizeof(buf),
		    "unknown.%" PRIu32 ".%" PRIu32 ".%" PRIu64, w->slot, w->gen,
		    ++w->next_conn);
		id = conn_set_id(c, buf);
		if (id == NULL)
			id = "unknown";
	}
	node = worker_node(w);
	if (node == NULL)
		node = w->conf->node_id;
	/* Not a reply: it goes first, ahead of any waiting reply. */
	conn_reply_now(c, cmsg_welcome_recovered_frame(
			      c->user, node, w->slot, id, recovered));
	c->welcomed = true;
	fanout_set_live(c->m_user);
	fanout_set_live(c->m_all);
	if (rc != NULL)
		recover_flush(w, rc); /* the missed ones, then live */
	uptx_event(w->up, "connect", c->user, c->user_len, id, NULL);
	c->connect_sent = true;
	log_debug("conn=%s user=%s: welcome", id, c->user);
	/* Subscriptions made before the welcome whose channel is active. */
	DLIST_FOREACH(n, &c->members) {
		struct fan_member *m =
		    DLIST_ENTRY(n, struct fan_member, by_owner);

		if (m->tag == CONN_M_CHANNEL && m->ready)
			conn_replies_answer(c, m, false, false);
	}
	conn_replies_drain(c);
}

void
conn_member_ready(struct fan_member *m)
{
	struct conn *c = m->owner;

	if (m->tag != CONN_M_CHANNEL) {
		conn_try_welcome(c);
	} else if (c->welcomed) {
		conn_replies_answer(c, m, false, false);
		conn_replies_drain(c);
	}
}

void
conn_recovered(struct fan_member *m, int recovered)
{
	struct conn *c = m->owner;

	(void)recovered; /* in the recover struct */
	if (m->tag == CONN_M_USER) {
		conn_try_welcome(c);
	} else if (m->tag == CONN_M_CHANNEL && c->welcomed) {
		conn_replies_answer(c, m, false, false);
		conn_replies_drain(c);
	}
}

/* Ends m's recovery (m is going). */
static void
conn_recover_end(struct conn *c, struct fan_member *m)
{
	if (m->udata != NULL) {
		recover_free(c->w, m->udata);
		m->udata = NULL;
	}
}

void
conn_member_failed(struct fan_member *m)
{
	struct conn *c = m->owner;
	struct worker *w = c->w;

	if (m->tag != CONN_M_CHANNEL) {
		/* m stays in c->members until conn_free() releases it. */
		log_warnx("conn=%s user=%s: the bridge refused the user "
			  "address: closing",
		    c->id, c->user);
		conn_close(c, 1013, "unavailable");
		return;
	}
	conn_replies_answer(c, m, true, true);
	c->n_channels--;
	w->n_channel_subs--;
	conn_recover_end(c, m);
	fanout_leave(w->fan, m);
	conn_replies_drain(c);
}

struct conn *
conn_new(struct worker *w, struct lws *wsi)
{
	struct conn *c;
	uint64_t now = clock_mono_ms();

	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return NULL;
	c->w = w;
	c->wsi = wsi;
	c->user = c->id = conn_unset;
	dlist_node_init(&c->flush_node);
	dlist_init(&c->members);
	dlist_init(&c->replies);
	connq_init(&c->q, w->conf->max_queued_bytes);
	rate_init(
	    &c->rate, w->conf->rate_limit_per_s, w->conf->rate_burst, now);
	c->established_ms = now;
	keepalive_add(&w->ka, &c->ka, now);
	dlist_insert_tail(&w->conns, &c->node);
	w->n_conns++;
	(void)conn_id(c);
	return c;
}

int
conn_attach(struct conn *c, const char *user, size_t len, const char *since,
    size_t since_len)
{
	struct worker *w = c->w;
	char addr[ADDR_MAX + 1];
	uint64_t now = clock_mono_ms();

	if (c->attached || len > ADDR_ID_MAX)
		return -1;
	c->attached = true;
	c->user = malloc(len + 1);
	if (c->user == NULL) {
		c->user = conn_unset;
		return -1;
	}
	memcpy(c->user, user, len);
	c->user[len] = '\0';
	c->user_len = len;
	memcpy(addr, "user:", 5);
	memcpy(addr + 5, user, len);
	c->m_user = fanout_join(w->fan, addr, 5 + len, c, &c->members, now);
	if (c->m_user == NULL)
		return -1;
	c->m_user->tag = CONN_M_USER;
	/* The user's own address recovers from since (history on); the
	 * welcome then waits for the answer. */
	if (since != NULL && w->conf->history_size > 0 &&
	    (c->m_user->udata = recover_new(c->m_user, since, since_len)) ==
		NULL)
		return -1;
	c->m_all = fanout_join(w->fan, "all", 3, c, &c->members, now);
	if (c->m_all == NULL)
		return -1;
	c->m_all->tag = CONN_M_ALL;
	conn_try_welcome(c);
	return 0;
}

void
conn_free(struct conn *c)
{
	struct worker *w;

	if (c == NULL)
		return;
	w = c->w;
	conn_release(c);
	if (c->connect_sent)
		uptx_event(w->up, "disconnect", c->user, c->user_len, c->id,
		    c->reason != NULL ? c->reason : "error");
	log_debug("conn=%s user=%s: closed reason=%s", c->id, c->user,
	    c->reason != NULL ? c->reason : "error");
	w->c.drop_closed += c->q.count; /* DROP: never written */
	connq_fini(&c->q);
	dlist_remove(&c->flush_node);
	keepalive_del(&c->ka);
	free(c->rx);
	lws_sul_cancel(&c->auth_sul);
	jwtauth_claims_free(c->claims);
	if (c->user != conn_unset)
		free(c->user);
	if (c->id != conn_unset)
		free(c->id);
	dlist_remove(&c->node);
	w->n_conns--;
	free(c);
}

/* The membership of c for channel address addr, or NULL. */
static struct fan_member *
conn_find_channel(struct conn *c, const char *addr, size_t len)
{
	struct dlist_node *n;

	DLIST_FOREACH(n, &c->members) {
		struct fan_member *m =
		    DLIST_ENTRY(n, struct fan_member, by_owner);

		if (m->tag == CONN_M_CHANNEL && m->entry != NULL &&
		    m->entry->addrlen == len &&
		    memcmp(m->entry->addr, addr, len) == 0)
			return m;
	}
	return NULL;
}

static size_t
conn_channel_addr(char *buf, const char *name, size_t len)
{
	memcpy(buf, CHANNEL_PREFIX, CHANNEL_PREFIX_LEN);
	memcpy(buf + CHANNEL_PREFIX_LEN, name, len);
	return CHANNEL_PREFIX_LEN + len;
}

void
conn_subscribe(struct conn *c, const char *name, size_t len, const char *since,
    size_t since_len, const json_t *ref)
{
	struct worker *w = c->w;
	struct fan_member *m;
	char addr[ADDR_MAX];
	size_t alen;

	if (len > ADDR_ID_MAX) {
		conn_error(
		    c, CMSG_E_INVALID_CHANNEL, "channel name too long", ref);
		return;
	}
	alen = conn_channel_addr(addr, name, len);
	m = conn_find_channel(c, addr, alen);
	if (m != NULL && m->live) {
		conn_reply(c, cmsg_reply_frame("subscribed", name, len, ref));
		return;
	}
	if (m == NULL) {
		if (w->conf->max_subscriptions > 0 &&
		    c->n_channels >= w->conf->max_subscriptions) {
			conn_error(c, CMSG_E_TOO_MANY_SUBSCRIPTIONS,
			    "gateway.max_subscriptions reached", ref);
			return;
		}
		m = fanout_join(
		    w->fan, addr, alen, c, &c->members, clock_mono_ms());
		if (m == NULL) {
			conn_error(c, CMSG_E_INTERNAL, "out of memory", ref);
			return;
		}
		m->tag = CONN_M_CHANNEL;
		c->n_channels++;
		w->n_channel_subs++;
	}
	/* A recovery from since (history on); a second subscribe of a
	 * channel still being subscribed keeps the first one's. */
	if (since != NULL && w->conf->history_size > 0 && m->udata == NULL &&
	    !m->live)
		m->udata = recover_new(m, since, since_len);
	/* Answered once the channel is active, in its turn. */
	if (conn_reply_append(c, NULL, m, ref) == -1)
		return;
	if (conn_can_announce(c, m))
		conn_replies_answer(c, m, false, false);
	conn_replies_drain(c);
}

void
conn_unsubscribe(
    struct conn *c, const char *name, size_t len, const json_t *ref)
{
	struct worker *w = c->w;
	struct fan_member *m;
	char addr[ADDR_MAX];
	size_t alen;

	if (len > ADDR_ID_MAX) {
		conn_error(c, CMSG_E_NOT_SUBSCRIBED, "not subscribed", ref);
		return;
	}
	alen = conn_channel_addr(addr, name, len);
	m = conn_find_channel(c, addr, alen);
	if (m == NULL) {
		conn_error(c, CMSG_E_NOT_SUBSCRIBED, "not subscribed", ref);
		return;
	}
	/* A `subscribe` still waiting is answered first: it completed and
	 * this request undoes it. */
	conn_replies_answer(c, m, false, true);
	conn_recover_end(c, m);
	fanout_leave(w->fan, m);
	c->n_channels--;
	w->n_channel_subs--;
	conn_reply(c, cmsg_reply_frame("unsubscribed", name, len, ref));
	conn_replies_drain(c);
}
