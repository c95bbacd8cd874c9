/*
 * conn.c - per-connection state: identity, memberships, welcome and
 * subscription replies, the bounded queue and its slow-client policy (see
 * conn.h). The fan-out reaches conn_enqueue() once per receiving
 * connection with a shared frame; nothing here allocates per delivery
 * except when a queue ring has to grow.
 */
#include "conn.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "clock.h"
#include "fanout.h"
#include "link.h"
#include "log.h"
#include "worker.h"

enum conn_tag {
	CONN_M_USER = 1,
	CONN_M_ALL = 2,
	CONN_M_CHANNEL = 3,
	CONN_M_KIND = 0xff,
	CONN_M_REPLY = 0x100, /* `subscribed` is owed to the client */
};

#define CHANNEL_PREFIX "channel:"
#define CHANNEL_PREFIX_LEN (sizeof(CHANNEL_PREFIX) - 1)

/* A socket that never becomes writeable is cut this long after a close. */
#define CONN_CLOSE_BACKSTOP_S 3

static int
member_kind(const struct fan_member *m)
{
	return m->tag & CONN_M_KIND;
}

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
	node = link_node(w->link);
	if (node == NULL && strcmp(w->conf->node_id, "auto") != 0)
		node = w->conf->node_id;
	if (node == NULL)
		return NULL;
	snprintf(buf, sizeof(buf), "%s.%" PRIu32 ".%" PRIu32 ".%" PRIu64, node,
	    w->slot, w->gen, ++w->next_conn);
	return conn_set_id(c, buf);
}

void
conn_enqueue(struct conn *c, struct frame *f)
{
	struct worker *w = c->w;

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
	if (!connq_fits(&c->q, f->len)) {
		if (w->conf->slow_client == CONF_SLOW_CLOSE) {
			/* DROP: the queue and this frame, counted as
			 * drop_slow_closed; the client is cut with 1013. */
			w->c.drop_slow_closed += connq_clear(&c->q) + 1;
			w->c.closed_slow++;
			log_info("conn=%s user=%s: slow client, queue %" PRIu64
				 " bytes: closing 1013",
			    c->id, c->user, c->q.bytes);
			conn_close(c, 1013, "slow_client");
			return;
		}
		/* DROP: oldest frames until this one fits, counted as
		 * drop_queue_full. */
		while (!connq_fits(&c->q, f->len) && connq_drop_oldest(&c->q))
			w->c.drop_queue_full++;
		if (!connq_fits(&c->q, f->len)) {
			w->c.drop_queue_full++; /* DROP: larger than the bound
						 */
			return;
		}
	}
	if (connq_push(&c->q, f) == -1) {
		w->c.drop_queue_full++; /* DROP: out of memory */
		return;
	}
	if (c->q.bytes > w->c.queue_hwm)
		w->c.queue_hwm = c->q.bytes;
	/* Written once the loop pass is over (conn_flush_pending()). */
	if (!dlist_node_linked(&c->flush_node))
		dlist_insert_tail(&w->flush, &c->flush_node);
}

void
conn_send(struct conn *c, struct frame *f)
{
	if (f == NULL) {
		log_warnx("conn=%s: reply dropped: out of memory", c->id);
		return;
	}
	c->w->c.replies++;
	conn_enqueue(c, f);
	frame_unref(f);
}

void
conn_error(
    struct conn *c, enum cmsg_err code, const char *msg, const json_t *ref)
{
	conn_send(c, cmsg_error_frame(code, msg, ref));
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
	/* Its memberships go after this loop pass (conn_flush()): not here,
	 * where a fan-out may be walking them. */
	if (!dlist_node_linked(&c->flush_node))
		dlist_insert_tail(&c->w->flush, &c->flush_node);
	lws_callback_on_writable(c->wsi);
	lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_REASON_BASE + 1,
	    CONN_CLOSE_BACKSTOP_S);
}

static const char *
close_text(int code)
{
	switch (code) {
	case 1001:
		return "going away";
	case 1008:
		return "policy violation";
	case 1009:
		return "message too big";
	case 1013:
		return "try again later";
	case 4001:
		return "unauthorized";
	default:
		return "";
	}
}

/* Per-process buffer for coalesced sends (workers are single-threaded),
 * with lws' headroom in front. */
static unsigned char conn_tx[LWS_PRE + CONN_COALESCE_MAX];

/* Writes the unmasked server frame header for a payload of len bytes at
 * p; returns its size (2, 4 or 10 bytes). */
static size_t
ws_header(unsigned char *p, uint64_t len, bool binary)
{
	int i;

	p[0] = 0x80 | (binary ? 0x2 : 0x1); /* FIN, text or binary */
	if (len < 126) {
		p[1] = (unsigned char)len;
		return 2;
	}
	if (len < 65536) {
		p[1] = 126;
		p[2] = (unsigned char)(len >> 8);
		p[3] = (unsigned char)len;
		return 4;
	}
	p[1] = 127;
	for (i = 0; i < 8; i++)
		p[2 + i] = (unsigned char)(len >> (56 - 8 * i));
	return 10;
}

static size_t
ws_header_len(uint64_t len)
{
	return len < 126 ? 2 : len < 65536 ? 4 : 10;
}

/*
 * Sends p[0..len) (whole frames, already framed) on c's socket while lws
 * holds no output of its own for it: straight to send(), the common case,
 * without lws' per-write work. What the socket does not take is handed to
 * lws_write(), which tries once more, keeps the rest in the wsi's buflist
 * (in order, before anything written later) and asks for POLLOUT. Returns
 * 0, or -1 when the socket failed.
 */
static int
conn_send_bytes(struct conn *c, unsigned char *p, size_t len)
{
	ssize_t r = send(lws_get_socket_fd(c->wsi), p, len, MSG_NOSIGNAL);

	if (r == (ssize_t)len)
		return 0;
	if (r < 0) {
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			return -1;
		r = 0;
	}
	return lws_write(c->wsi, p + r, len - (size_t)r, LWS_WRITE_RAW) <
		       (int)(len - (size_t)r)
		   ? -1
		   : 0;
}

/*
 * Writes up to CONN_WRITE_BATCH queued frames, several per send when they
 * fit CONN_COALESCE_MAX together, and stops early once lws holds output
 * back (the socket took less than offered). lws_write() never needs a
 * retry: a short send()'s tail goes to the wsi's buflist. Returns 0, or -1
 * after a failed send.
 */
static int
conn_write_queue(struct conn *c)
{
	struct worker *w = c->w;
	struct frame *f;
	uint32_t k = 0, n, i;
	size_t total, off, hl;
	uint64_t bytes;

	while (!connq_empty(&c->q) && k < CONN_WRITE_BATCH) {
		if (lws_partial_buffered(c->wsi))
			break; /* lws still holds output: it calls back */
		/* How many frames go into this send. */
		total = 0;
		bytes = 0;
		for (n = 0; n < c->q.count && k + n < CONN_WRITE_BATCH; n++) {
			f = connq_at(&c->q, n);
			if (total + ws_header_len(f->len) + f->len >
			    CONN_COALESCE_MAX)
				break;
			total += ws_header_len(f->len) + f->len;
			bytes += f->len;
		}
		if (n <= 1) {
			/* One frame, or one too large to copy: framed in
			 * place in its headroom (the header is the same for
			 * every connection that shares the frame). */
			f = connq_peek(&c->q);
			n = 1;
			bytes = f->len;
			hl = ws_header_len(f->len);
			ws_header(frame_data(f) - hl, f->len, f->binary);
			if (conn_send_bytes(
				c, frame_data(f) - hl, hl + f->len) == -1)
				return -1;
		} else {
			off = LWS_PRE;
			for (i = 0; i < n; i++) {
				f = connq_at(&c->q, i);
				off +=
				    ws_header(conn_tx + off, f->len, f->binary);
				memcpy(conn_tx + off, frame_data(f), f->len);
				off += f->len;
			}
			if (conn_send_bytes(c, conn_tx + LWS_PRE, total) == -1)
				return -1;
		}
		for (i = 0; i < n; i++)
			frame_unref(connq_pop(&c->q));
		k += n;
		w->c.frames_out += n;
		w->c.bytes_out += bytes;
	}
	return 0;
}

int
conn_write(struct conn *c)
{
	if (c->close_code != 0) {
		const char *t = c->close_msg != NULL
				    ? c->close_msg
				    : close_text(c->close_code);

		lws_close_reason(c->wsi, (enum lws_close_status)c->close_code,
		    (unsigned char *)(uintptr_t)t, strlen(t));
		return -1;
	}
	if (conn_write_queue(c) == -1) {
		c->reason = "error";
		return -1;
	}
	if (!connq_empty(&c->q))
		lws_callback_on_writable(c->wsi);
	return 0;
}

/*
 * Releases every membership of c: a connection being closed is no longer
 * a target, so messages published while its close completes (up to
 * CONN_CLOSE_BACKSTOP_S for a client that stopped reading) are neither
 * fanned out to it nor counted as its drops, and the node drops its
 * interest in addresses nobody else wants at once.
 */
static void
conn_leave_all(struct conn *c)
{
	struct worker *w = c->w;
	struct dlist_node *n, *tmp;

	DLIST_FOREACH_SAFE(n, tmp, &c->members) {
		struct fan_member *m =
		    DLIST_ENTRY(n, struct fan_member, by_owner);

		json_decref(m->udata);
		m->udata = NULL;
		fanout_leave(w->fan, m);
	}
	c->m_user = c->m_all = NULL;
	w->n_channel_subs -= c->n_channels;
	c->n_channels = 0;
	c->left = true;
}

/* Writes c's queue from outside its callbacks (see conn_flush_pending()). */
static void
conn_flush(struct conn *c)
{
	if (c->close_code != 0 && !c->left)
		conn_leave_all(c);
	if (connq_empty(&c->q) || c->dead)
		return;
	/*
	 * Closing by us (the writeable callback sends the close frame) or
	 * by the peer, or lws still holds output (the writeable callback
	 * goes on once that is sent). Not checked, to keep the wsi's ws
	 * part out of the hot path (lws_get_close_length(), a cache miss
	 * per delivery): lws closing after a client's protocol error (bad
	 * UTF-8, bad opcode); frames written between its close frame and
	 * the client's close echo are ignored by the client.
	 */
	if (c->close_code != 0 || c->peer_closed ||
	    lws_partial_buffered(c->wsi)) {
		lws_callback_on_writable(c->wsi);
		return;
	}
	if (conn_write_queue(c) == -1) {
		/* The socket failed; the frames left go with it (counted
		 * by conn_free()). */
		c->dead = true;
		c->reason = "error";
		lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_REASON_BASE + 2,
		    LWS_TO_KILL_ASYNC);
		return;
	}
	if (!connq_empty(&c->q))
		lws_callback_on_writable(c->wsi);
}

void
conn_flush_pending(struct worker *w)
{
	struct dlist_node *n;

	while ((n = dlist_first(&w->flush)) != NULL) {
		dlist_remove(n);
		conn_flush(DLIST_ENTRY(n, struct conn, flush_node));
	}
}

/* Sends `subscribed` for a channel membership whose entry is active and
 * starts passing its messages. */
static void
announce_channel(struct conn *c, struct fan_member *m)
{
	json_t *ref = m->udata;

	if (m->tag & CONN_M_REPLY) {
		conn_send(c, cmsg_reply_frame("subscribed",
				 m->entry->addr + CHANNEL_PREFIX_LEN,
				 m->entry->addrlen - CHANNEL_PREFIX_LEN, ref));
		m->tag &= ~CONN_M_REPLY;
	}
	json_decref(ref);
	m->udata = NULL;
	fanout_set_live(m);
}

static void
conn_try_welcome(struct conn *c)
{
	struct worker *w = c->w;
	struct dlist_node *n;
	const char *id, *node;

	if (c->welcomed || c->m_user == NULL || c->m_all == NULL ||
	    !c->m_user->ready || !c->m_all->ready)
		return;
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
	node = link_node(w->link);
	if (node == NULL)
		node = w->conf->node_id;
	conn_send(c, cmsg_welcome_frame(c->user, node, w->slot, id));
	c->welcomed = true;
	fanout_set_live(c->m_user);
	fanout_set_live(c->m_all);
	link_event(w->link, "connect", c->user, c->user_len, id, NULL);
	c->connect_sent = true;
	log_debug("conn=%s user=%s: welcome", id, c->user);
	DLIST_FOREACH(n, &c->members) {
		struct fan_member *m =
		    DLIST_ENTRY(n, struct fan_member, by_owner);

		if (member_kind(m) == CONN_M_CHANNEL && m->ready)
			announce_channel(c, m);
	}
}

void
conn_member_ready(struct fan_member *m)
{
	struct conn *c = m->owner;

	if (member_kind(m) != CONN_M_CHANNEL)
		conn_try_welcome(c);
	else if (c->welcomed)
		announce_channel(c, m);
}

void
conn_member_failed(struct fan_member *m)
{
	struct conn *c = m->owner;
	struct worker *w = c->w;

	if (member_kind(m) != CONN_M_CHANNEL) {
		/* m stays in c->members until conn_free() releases it. */
		log_warnx("conn=%s user=%s: the bridge refused the user "
			  "address: closing",
		    c->id, c->user);
		conn_close(c, 1013, "unavailable");
		return;
	}
	conn_error(
	    c, CMSG_E_UNAVAILABLE, "the node could not subscribe", m->udata);
	json_decref(m->udata);
	m->udata = NULL;
	c->n_channels--;
	w->n_channel_subs--;
	fanout_leave(w->fan, m);
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
	connq_init(&c->q, w->conf->max_queued_bytes);
	rate_init(
	    &c->rate, w->conf->rate_limit_per_s, w->conf->rate_burst, now);
	c->established_ms = c->last_valid_ms = now;
	dlist_insert_tail(&w->conns, &c->node);
	w->n_conns++;
	(void)conn_id(c);
	return c;
}

int
conn_attach(struct conn *c, const char *user, size_t len)
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
	conn_leave_all(c);
	if (c->connect_sent)
		link_event(w->link, "disconnect", c->user, c->user_len, c->id,
		    c->reason != NULL ? c->reason : "error");
	log_debug("conn=%s user=%s: closed reason=%s", c->id, c->user,
	    c->reason != NULL ? c->reason : "error");
	w->c.drop_closed += c->q.count; /* DROP: never written */
	connq_fini(&c->q);
	dlist_remove(&c->flush_node);
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

/* The membership of c for channel name, or NULL. */
static struct fan_member *
find_channel(struct conn *c, const char *addr, size_t len)
{
	struct dlist_node *n;

	DLIST_FOREACH(n, &c->members) {
		struct fan_member *m =
		    DLIST_ENTRY(n, struct fan_member, by_owner);

		if (member_kind(m) == CONN_M_CHANNEL && m->entry != NULL &&
		    m->entry->addrlen == len &&
		    memcmp(m->entry->addr, addr, len) == 0)
			return m;
	}
	return NULL;
}

static size_t
channel_addr(char *buf, const char *name, size_t len)
{
	memcpy(buf, CHANNEL_PREFIX, CHANNEL_PREFIX_LEN);
	memcpy(buf + CHANNEL_PREFIX_LEN, name, len);
	return CHANNEL_PREFIX_LEN + len;
}

void
conn_subscribe(struct conn *c, const char *name, size_t len, const json_t *ref)
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
	alen = channel_addr(addr, name, len);
	m = find_channel(c, addr, alen);
	if (m != NULL) {
		if (m->live) {
			conn_send(
			    c, cmsg_reply_frame("subscribed", name, len, ref));
		} else {
			/* Still pending: the reply goes with the latest ref. */
			json_decref(m->udata);
			m->udata = ref != NULL ? json_deep_copy(ref) : NULL;
			m->tag |= CONN_M_REPLY;
		}
		return;
	}
	if (w->conf->max_subscriptions > 0 &&
	    c->n_channels >= w->conf->max_subscriptions) {
		conn_error(c, CMSG_E_TOO_MANY_SUBSCRIPTIONS,
		    "gateway.max_subscriptions reached", ref);
		return;
	}
	m = fanout_join(w->fan, addr, alen, c, &c->members, clock_mono_ms());
	if (m == NULL) {
		conn_error(c, CMSG_E_INTERNAL, "out of memory", ref);
		return;
	}
	m->tag = CONN_M_CHANNEL | CONN_M_REPLY;
	m->udata = ref != NULL ? json_deep_copy(ref) : NULL;
	c->n_channels++;
	w->n_channel_subs++;
	if (m->ready && c->welcomed)
		announce_channel(c, m);
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
	alen = channel_addr(addr, name, len);
	m = find_channel(c, addr, alen);
	if (m == NULL) {
		conn_error(c, CMSG_E_NOT_SUBSCRIBED, "not subscribed", ref);
		return;
	}
	json_decref(m->udata);
	m->udata = NULL;
	fanout_leave(w->fan, m);
	c->n_channels--;
	w->n_channel_subs--;
	conn_send(c, cmsg_reply_frame("unsubscribed", name, len, ref));
}
