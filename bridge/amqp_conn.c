/*
 * amqp_conn.c - the AMQP connection: connect, declare, consume, bind,
 * publish with confirms, all from the bridge loop.
 *
 * States: IDLE (backoff timer armed) -> SETUP (logged in; declarations
 * sent, replies awaited) -> UP (consuming) -> back to IDLE on any loss.
 * Every synchronous method we send pushes what its reply must be onto a
 * FIFO (`waits`); a reply frame pops the head and must match it. Frames
 * are read with amqp_simple_wait_frame_noblock() and a zero timeout until
 * it answers TIMEOUT: then rabbitmq-c's buffer is empty and nothing is
 * queued, so poll() on the socket is a correct sleep. A 1 s timer runs
 * the same read so rabbitmq-c sends its heartbeats and notices a silent
 * broker (it closes the socket after two missed heartbeats).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/sockios.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <amqp_tcp_socket.h>

#include "amqp_confirm.h"
#include "amqp_conn.h"
#include "amqp_rpcq.h"
#include "log.h"

#define CHAN 1
#define TICK_MS 1000
/* Longest wspush-to value we keep; longer is not an address anyway. */
#define TO_MAX 600

/* IDLE -> CONNECTING (TCP) -> LOGIN (AMQP handshake) -> SETUP -> UP */
enum cstate { CS_IDLE, CS_CONNECTING, CS_LOGIN, CS_SETUP, CS_UP };

enum wkind {
	W_SETUP,   /* part of the setup sequence */
	W_NODE_Q,  /* the node queue's declare-ok: carries its name */
	W_CONSUME, /* consume-ok: setup complete */
	W_BIND,
	W_UNBIND,
};

enum content { CT_NONE, CT_DELIVER, CT_RETURN };

struct amqp_conn {
	struct loop *loop;
	struct amqp_conn_cbs cbs;
	struct amqp_conn_stats st;

	/* configuration (owned copies) */
	char *url, *exchange, *fanout, *inbound, *events, *name;
	uint32_t queue_max_length, max_body;
	uint32_t coalesce_ms; /* input coalescing of the socket */
	uint64_t queue_max_bytes;
	struct amqp_connection_info ci; /* points into url_parsed */
	char *url_parsed;

	enum cstate state;
	bool stopping;
	amqp_connection_state_t conn;
	struct loop_fd *w;
	int fd; /* the socket until rabbitmq-c owns it, else -1 */
	uint64_t reconnect_timer, tick_timer, more_timer, attempt_timer;
	uint64_t backoff;
	char queue[256]; /* the broker-named node queue */
	char last_error[160];

	struct amqp_rpcq waits; /* replies owed, oldest first */
	struct amqp_confirm confirm;

	/* the content being assembled after basic.deliver / basic.return */
	enum content ct;
	bool ct_header; /* the header frame arrived */
	bool ct_skip;   /* oversize: read and discard */
	uint64_t ct_size, ct_got;
	char ct_exchange[256], ct_key[256];
	size_t ct_exchange_len, ct_key_len;
	enum amqp_msg_hdr ct_hdr;
	char ct_to[TO_MAX];
	size_t ct_to_len;
	char *body;
	size_t body_cap;
};

static void conn_lost(struct amqp_conn *c, const char *why);
static void read_frames(struct amqp_conn *c);

static char *
dup_str(const char *s)
{
	return strdup(s != NULL ? s : "");
}

static amqp_bytes_t
bytes(const char *s)
{
	return amqp_cstring_bytes(s);
}

/* ---- reply FIFO ---- */

static int
wait_push(struct amqp_conn *c, amqp_method_number_t expect, enum wkind kind,
    const char *what, const char *key, size_t keylen)
{
	if (amqp_rpcq_push(&c->waits, expect, kind, what, key, keylen) == -1)
		return -1;
	if (kind == W_BIND || kind == W_UNBIND)
		c->st.binds_inflight++;
	return 0;
}

static void
waits_clear(struct amqp_conn *c)
{
	amqp_rpcq_clear(&c->waits);
	c->st.binds_inflight = 0;
}

/* ---- sending ---- */

/* Sends a method on our channel and records the reply it expects.
 * Returns 0, or -1 after taking the connection down. */
static int
send_sync(struct amqp_conn *c, amqp_method_number_t m, void *decoded,
    amqp_method_number_t expect, enum wkind kind, const char *what,
    const char *key, size_t keylen)
{
	int rc;

	if (wait_push(c, expect, kind, what, key, keylen) == -1) {
		conn_lost(c, "out of memory");
		return -1;
	}
	rc = amqp_send_method(c->conn, CHAN, m, decoded);
	if (rc != AMQP_STATUS_OK) {
		char why[128];

		snprintf(why, sizeof(why), "send: %s", amqp_error_string2(rc));
		conn_lost(c, why);
		return -1;
	}
	return 0;
}

static int
declare_exchange(
    struct amqp_conn *c, const char *name, const char *type, const char *what)
{
	amqp_exchange_declare_t d = {
	    .exchange = bytes(name),
	    .type = bytes(type),
	    .durable = 1,
	    .arguments = amqp_empty_table,
	};

	return send_sync(c, AMQP_EXCHANGE_DECLARE_METHOD, &d,
	    AMQP_EXCHANGE_DECLARE_OK_METHOD, W_SETUP, what, NULL, 0);
}

/*
 * The setup sequence, first half: channel, exchanges, the inbound queue
 * and the node queue. Everything is pipelined; the second half needs the
 * node queue's name and follows its declare-ok.
 */
static int
setup_begin(struct amqp_conn *c)
{
	amqp_channel_open_t o = {.out_of_band = amqp_empty_bytes};
	amqp_table_entry_t args[3];
	amqp_queue_declare_t q = {.arguments = amqp_empty_table};

	if (send_sync(c, AMQP_CHANNEL_OPEN_METHOD, &o,
		AMQP_CHANNEL_OPEN_OK_METHOD, W_SETUP, "channel", NULL, 0) == -1)
		return -1;
	if (declare_exchange(c, c->exchange, "direct", "[amqp] exchange") == -1)
		return -1;
	if (c->fanout[0] != '\0' && declare_exchange(c, c->fanout, "fanout",
					"[amqp] fanout_exchange") == -1)
		return -1;
	if (c->events[0] != '\0' && declare_exchange(c, c->events, "fanout",
					"[amqp] events_exchange") == -1)
		return -1;
	if (c->inbound[0] != '\0') {
		q.queue = bytes(c->inbound);
		q.durable = 1;
		if (send_sync(c, AMQP_QUEUE_DECLARE_METHOD, &q,
			AMQP_QUEUE_DECLARE_OK_METHOD, W_SETUP,
			"[amqp] inbound_queue", NULL, 0) == -1)
			return -1;
	}
	/*
	 * The node queue: named by the broker, gone with the connection.
	 * Consumed without acks, so the broker bounds it: past
	 * queue_max_length messages or queue_max_bytes of bodies it drops
	 * the oldest (a bridge that cannot
	 * keep up loses the stalest messages, not its memory).
	 */
	args[0].key = bytes("x-max-length");
	args[0].value.kind = AMQP_FIELD_KIND_I64;
	args[0].value.value.i64 = (int64_t)c->queue_max_length;
	args[1].key = bytes("x-overflow");
	args[1].value.kind = AMQP_FIELD_KIND_UTF8;
	args[1].value.value.bytes = bytes("drop-head");
	args[2].key = bytes("x-max-length-bytes");
	args[2].value.kind = AMQP_FIELD_KIND_I64;
	args[2].value.value.i64 = (int64_t)c->queue_max_bytes;
	memset(&q, 0, sizeof(q));
	q.queue = amqp_empty_bytes;
	q.exclusive = 1;
	q.auto_delete = 1;
	q.arguments.num_entries = 3;
	q.arguments.entries = args;
	return send_sync(c, AMQP_QUEUE_DECLARE_METHOD, &q,
	    AMQP_QUEUE_DECLARE_OK_METHOD, W_NODE_Q, "node queue", NULL, 0);
}

/* Second half: fanout binding, confirm mode, consume. */
static int
setup_finish(struct amqp_conn *c)
{
	amqp_confirm_select_t s = {.nowait = 0};
	amqp_basic_consume_t bc = {
	    .queue = bytes(c->queue),
	    .consumer_tag = amqp_empty_bytes,
	    .no_ack = 1,
	    .exclusive = 1,
	    .arguments = amqp_empty_table,
	};

	if (c->fanout[0] != '\0') {
		amqp_queue_bind_t b = {
		    .queue = bytes(c->queue),
		    .exchange = bytes(c->fanout),
		    .routing_key = amqp_empty_bytes,
		    .arguments = amqp_empty_table,
		};

		if (send_sync(c, AMQP_QUEUE_BIND_METHOD, &b,
			AMQP_QUEUE_BIND_OK_METHOD, W_SETUP,
			"[amqp] fanout_exchange binding", NULL, 0) == -1)
			return -1;
	}
	if (send_sync(c, AMQP_CONFIRM_SELECT_METHOD, &s,
		AMQP_CONFIRM_SELECT_OK_METHOD, W_SETUP, "confirm.select", NULL,
		0) == -1)
		return -1;
	return send_sync(c, AMQP_BASIC_CONSUME_METHOD, &bc,
	    AMQP_BASIC_CONSUME_OK_METHOD, W_CONSUME, "basic.consume", NULL, 0);
}

/* ---- connecting ---- */

static void connect_ready(struct amqp_conn *c);

static void
io_cb(struct loop *l, int fd, int revents, void *arg)
{
	struct amqp_conn *c = arg;

	if (c->state == CS_CONNECTING)
		connect_ready(c);
	else
		read_frames(c);
}

static void
more_cb(struct loop *l, uint64_t id, void *arg)
{
	struct amqp_conn *c = arg;

	c->more_timer = 0;
	read_frames(c);
}

static void
tick_cb(struct loop *l, uint64_t id, void *arg)
{
	struct amqp_conn *c = arg;

	if (c->state != CS_IDLE && c->state != CS_CONNECTING)
		read_frames(c);
}

/* The attempt did not reach up in time (TCP connect, handshake, setup). */
static void
attempt_timeout_cb(struct loop *l, uint64_t id, void *arg)
{
	struct amqp_conn *c = arg;
	char why[96];

	c->attempt_timer = 0;
	if (c->state == CS_UP || c->state == CS_IDLE)
		return;
	snprintf(why, sizeof(why), "%s:%d: no %s within %d ms", c->ci.host,
	    c->ci.port,
	    c->state == CS_CONNECTING ? "TCP connection"
	    : c->state == CS_LOGIN    ? "AMQP handshake"
				      : "setup",
	    AMQP_CONN_ATTEMPT_MS);
	conn_lost(c, why);
}

static void reconnect_cb(struct loop *l, uint64_t id, void *arg);

static void
schedule_reconnect(struct amqp_conn *c)
{
	uint64_t base = c->backoff, delay;

	if (c->stopping || c->reconnect_timer != 0)
		return;
	delay = base * 3 / 4 + (uint64_t)random() % (base / 2 + 1);
	c->backoff = base * 2 > AMQP_CONN_BACKOFF_MAX_MS
			 ? AMQP_CONN_BACKOFF_MAX_MS
			 : base * 2;
	c->reconnect_timer = loop_timer_add(c->loop, delay, 0, reconnect_cb, c);
}

/* Drops the connection object (closes the socket). */
static void
conn_close(struct amqp_conn *c)
{
	if (c->more_timer != 0) {
		loop_timer_del(c->loop, c->more_timer);
		c->more_timer = 0;
	}
	if (c->attempt_timer != 0) {
		loop_timer_del(c->loop, c->attempt_timer);
		c->attempt_timer = 0;
	}
	if (c->w != NULL) {
		loop_fd_del(c->w);
		c->w = NULL;
	}
	if (c->fd != -1) { /* still ours: not handed to rabbitmq-c yet */
		close(c->fd);
		c->fd = -1;
	}
	if (c->conn != NULL) {
		amqp_destroy_connection(c->conn);
		c->conn = NULL;
	}
	waits_clear(c);
	c->ct = CT_NONE;
	c->queue[0] = '\0';
	c->st.blocked = false;
}

/* Any loss: close, count, tell the owner, retry after the backoff. */
static void
conn_lost(struct amqp_conn *c, const char *why)
{
	bool was_up = c->state == CS_UP;

	if (c->state == CS_IDLE)
		return;
	if (why != c->last_error)
		snprintf(c->last_error, sizeof(c->last_error), "%s", why);
	conn_close(c);
	c->state = CS_IDLE;
	c->st.up = false;
	c->st.lost += amqp_confirm_lose(&c->confirm);
	if (was_up) {
		c->st.outages++;
		log_warnx("amqp: connection lost: %s", c->last_error);
		c->cbs.down(c->cbs.arg);
	} else {
		c->st.connect_failures++;
		log_warnx("amqp: connect failed: %s", c->last_error);
	}
	schedule_reconnect(c);
}

/*
 * Starts an attempt: a non-blocking TCP connect watched by the loop. The
 * host is resolved here (getaddrinfo() blocks on DNS; an IP address or
 * /etc/hosts name does not).
 */
static void
connect_attempt(struct amqp_conn *c)
{
	struct addrinfo hints = {
	    .ai_family = AF_UNSPEC,
	    .ai_socktype = SOCK_STREAM,
	    .ai_flags = AI_NUMERICSERV,
	};
	struct addrinfo *ai = NULL;
	char port[16];
	int rc, one = 1;

	c->state = CS_CONNECTING;
	c->conn = amqp_new_connection();
	if (c->conn == NULL || amqp_tcp_socket_new(c->conn) == NULL) {
		conn_lost(c, "out of memory");
		return;
	}
	snprintf(port, sizeof(port), "%d", c->ci.port);
	rc = getaddrinfo(c->ci.host, port, &hints, &ai);
	if (rc != 0) {
		snprintf(c->last_error, sizeof(c->last_error), "%s: %s",
		    c->ci.host, gai_strerror(rc));
		conn_lost(c, c->last_error);
		return;
	}
	c->fd = socket(
	    ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd == -1 || (connect(c->fd, ai->ai_addr, ai->ai_addrlen) == -1 &&
			       errno != EINPROGRESS)) {
		snprintf(c->last_error, sizeof(c->last_error),
		    "connect %s:%d: %s", c->ci.host, c->ci.port,
		    strerror(errno));
		freeaddrinfo(ai);
		conn_lost(c, c->last_error);
		return;
	}
	freeaddrinfo(ai);
	(void)setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->w = loop_fd_add(c->loop, c->fd, POLLOUT, io_cb, c);
	if (c->w != NULL)
		loop_fd_coalesce(c->w, c->coalesce_ms);
	c->attempt_timer = loop_timer_add(
	    c->loop, AMQP_CONN_ATTEMPT_MS, 0, attempt_timeout_cb, c);
	if (c->w == NULL || c->attempt_timer == 0)
		conn_lost(c, "out of memory");
}

/* The TCP connect finished: hand the socket to rabbitmq-c, say hello. */
static void
connect_ready(struct amqp_conn *c)
{
	int err = 0, rc;
	socklen_t len = sizeof(err);

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
		err = errno;
	if (err != 0) {
		snprintf(c->last_error, sizeof(c->last_error),
		    "connect %s:%d: %s", c->ci.host, c->ci.port, strerror(err));
		conn_lost(c, c->last_error);
		return;
	}
	amqp_tcp_socket_set_sockfd(amqp_get_socket(c->conn), c->fd);
	c->fd = -1; /* rabbitmq-c closes it from now on */
	loop_fd_set(c->w, POLLIN);
	c->state = CS_LOGIN;
	/* 8 bytes on a fresh socket: the kernel takes them at once. */
	rc = amqp_send_header(c->conn);
	if (rc != AMQP_STATUS_OK) {
		char why[128];

		snprintf(why, sizeof(why), "protocol header: %s",
		    amqp_error_string2(rc));
		conn_lost(c, why);
	}
}

static amqp_table_entry_t
tbool(const char *k)
{
	amqp_table_entry_t e;

	e.key = bytes(k);
	e.value.kind = AMQP_FIELD_KIND_BOOLEAN;
	e.value.value.boolean = 1;
	return e;
}

static amqp_table_entry_t
tstr(const char *k, const char *v)
{
	amqp_table_entry_t e;

	e.key = bytes(k);
	e.value.kind = AMQP_FIELD_KIND_UTF8;
	e.value.value.bytes = bytes(v);
	return e;
}

/* connection.start: answer with our properties and PLAIN credentials. */
static void
on_start(struct amqp_conn *c, const amqp_connection_start_t *s)
{
	/*
	 * Capabilities: connection.blocked (the broker says when a resource
	 * alarm would make publishes block), publisher_confirms,
	 * consumer_cancel_notify (our queue deleted under us), and
	 * authentication_failure_close (bad credentials come back as a
	 * connection.close with a reason, not a bare TCP close).
	 */
	amqp_table_entry_t caps[4] = {tbool("connection.blocked"),
	    tbool("publisher_confirms"), tbool("consumer_cancel_notify"),
	    tbool("authentication_failure_close")};
	amqp_table_entry_t props[4] = {tstr("product", "wspush"),
	    tstr("version", WSPUSH_VERSION), tstr("connection_name", c->name),
	    {.key = bytes("capabilities")}};
	size_t ul = strlen(c->ci.user), pl = strlen(c->ci.password);
	char *resp = malloc(ul + pl + 2);
	amqp_connection_start_ok_t ok;
	int rc;

	if (s->version_major != 0 || s->version_minor != 9) {
		conn_lost(c, "the broker does not speak AMQP 0-9-1");
		return;
	}
	if (resp == NULL) {
		conn_lost(c, "out of memory");
		return;
	}
	props[3].value.kind = AMQP_FIELD_KIND_TABLE;
	props[3].value.value.table.num_entries = 4;
	props[3].value.value.table.entries = caps;
	/* SASL PLAIN: "\0user\0password". */
	resp[0] = '\0';
	memcpy(resp + 1, c->ci.user, ul);
	resp[1 + ul] = '\0';
	memcpy(resp + 2 + ul, c->ci.password, pl);
	ok.client_properties.num_entries = 4;
	ok.client_properties.entries = props;
	ok.mechanism = bytes("PLAIN");
	ok.response.bytes = resp;
	ok.response.len = ul + pl + 2;
	ok.locale = bytes("en_US");
	rc = amqp_send_method(c->conn, 0, AMQP_CONNECTION_START_OK_METHOD, &ok);
	explicit_bzero(resp, ul + pl + 2);
	free(resp);
	if (rc != AMQP_STATUS_OK)
		conn_lost(c, "start-ok: send failed");
}

/* connection.tune: agree on limits and heartbeat, then open the vhost. */
static void
on_tune(struct amqp_conn *c, const amqp_connection_tune_t *t)
{
	int channel_max = t->channel_max;
	int frame_max = AMQP_CONN_FRAME_MAX;
	int heartbeat = AMQP_CONN_HEARTBEAT_S;
	amqp_connection_tune_ok_t ok;
	amqp_connection_open_t o = {
	    .virtual_host = bytes(c->ci.vhost),
	    .capabilities = amqp_empty_bytes,
	};

	if (t->frame_max != 0 && (int)t->frame_max < frame_max)
		frame_max = (int)t->frame_max;
	if (t->heartbeat != 0 && t->heartbeat < heartbeat)
		heartbeat = t->heartbeat;
	/* The frame that carried the tune was complete: rabbitmq-c's reader
	 * is between frames, as amqp_tune_connection() requires. */
	if (amqp_tune_connection(c->conn, channel_max, frame_max, heartbeat) !=
	    AMQP_STATUS_OK) {
		conn_lost(c, "tune: out of memory");
		return;
	}
	ok.channel_max = (uint16_t)channel_max;
	ok.frame_max = (uint32_t)frame_max;
	ok.heartbeat = (uint16_t)heartbeat;
	if (amqp_send_method(c->conn, 0, AMQP_CONNECTION_TUNE_OK_METHOD, &ok) !=
		AMQP_STATUS_OK ||
	    amqp_send_method(c->conn, 0, AMQP_CONNECTION_OPEN_METHOD, &o) !=
		AMQP_STATUS_OK)
		conn_lost(c, "tune-ok/open: send failed");
}

/* connection.open-ok: logged in; declare everything. */
static void
on_open_ok(struct amqp_conn *c)
{
	c->state = CS_SETUP;
	log_info("amqp: connected to %s:%d vhost=%s heartbeat=%ds", c->ci.host,
	    c->ci.port, c->ci.vhost, amqp_get_heartbeat(c->conn));
	(void)setup_begin(c);
}

static void
reconnect_cb(struct loop *l, uint64_t id, void *arg)
{
	struct amqp_conn *c = arg;

	c->reconnect_timer = 0;
	if (c->state == CS_IDLE && !c->stopping)
		connect_attempt(c);
}

/* ---- the frame dispatcher ---- */

static bool
is_reply(amqp_method_number_t id)
{
	switch (id) {
	case AMQP_CHANNEL_OPEN_OK_METHOD:
	case AMQP_EXCHANGE_DECLARE_OK_METHOD:
	case AMQP_QUEUE_DECLARE_OK_METHOD:
	case AMQP_QUEUE_BIND_OK_METHOD:
	case AMQP_QUEUE_UNBIND_OK_METHOD:
	case AMQP_BASIC_QOS_OK_METHOD:
	case AMQP_BASIC_CONSUME_OK_METHOD:
	case AMQP_CONFIRM_SELECT_OK_METHOD:
		return true;
	default:
		return false;
	}
}

static void
on_reply(struct amqp_conn *c, const amqp_method_t *m)
{
	const struct amqp_rpcq_entry *head = amqp_rpcq_head(&c->waits);
	struct amqp_rpcq_entry *w = amqp_rpcq_pop(&c->waits, m->id);

	if (w == NULL) {
		char why[160];

		snprintf(why, sizeof(why),
		    "reply %s does not match the request (%s expected)",
		    amqp_method_name(m->id),
		    head != NULL ? amqp_method_name(head->expect) : "none");
		conn_lost(c, why);
		return;
	}
	switch ((enum wkind)w->kind) {
	case W_SETUP:
		break;
	case W_NODE_Q: {
		amqp_queue_declare_ok_t *ok = m->decoded;
		size_t len = ok->queue.len < sizeof(c->queue) - 1
				 ? ok->queue.len
				 : sizeof(c->queue) - 1;

		memcpy(c->queue, ok->queue.bytes, len);
		c->queue[len] = '\0';
		free(w);
		(void)setup_finish(c);
		return;
	}
	case W_CONSUME:
		if (c->attempt_timer != 0) {
			loop_timer_del(c->loop, c->attempt_timer);
			c->attempt_timer = 0;
		}
		c->state = CS_UP;
		c->st.up = true;
		c->st.connects++;
		c->backoff = AMQP_CONN_BACKOFF_MIN_MS;
		amqp_confirm_reset(&c->confirm);
		log_notice("amqp: up queue=%s", c->queue);
		free(w);
		c->cbs.up(c->cbs.arg);
		return;
	case W_BIND:
	case W_UNBIND:
		c->st.binds_inflight--;
		c->cbs.bound(c->cbs.arg, w->kind == W_BIND, w->key, w->keylen);
		break;
	}
	free(w);
}

/* channel.close from the broker: a refused declaration during setup, or
 * something fatal to the channel (a deleted queue, a bad publish). */
static void
on_channel_close(struct amqp_conn *c, const amqp_channel_close_t *m)
{
	const struct amqp_rpcq_entry *head = amqp_rpcq_head(&c->waits);
	const char *what = NULL;
	char msg[512];

	if (head != NULL && c->state == CS_SETUP)
		what = head->what;
	snprintf(msg, sizeof(msg), "%s%s%.*s (code %u)", what ? what : "",
	    what ? ": " : "channel closed by the broker: ",
	    (int)m->reply_text.len, (const char *)m->reply_text.bytes,
	    (unsigned)m->reply_code);
	/* Polite, not required: we drop the connection anyway. */
	(void)amqp_send_method(c->conn, CHAN, AMQP_CHANNEL_CLOSE_OK_METHOD,
	    &(amqp_channel_close_ok_t){0});
	if (what != NULL && m->reply_code == AMQP_PRECONDITION_FAILED &&
	    c->cbs.refused != NULL)
		c->cbs.refused(c->cbs.arg, msg);
	conn_lost(c, msg);
}

static void
content_begin(struct amqp_conn *c, enum content ct, amqp_bytes_t exchange,
    amqp_bytes_t key)
{
	c->ct = ct;
	c->ct_header = false;
	c->ct_skip = false;
	c->ct_size = c->ct_got = 0;
	c->ct_hdr = AMQP_MSG_HDR_ABSENT;
	c->ct_to_len = 0;
	c->ct_exchange_len = exchange.len < 255 ? exchange.len : 255;
	memcpy(c->ct_exchange, exchange.bytes, c->ct_exchange_len);
	c->ct_key_len = key.len < 255 ? key.len : 255;
	memcpy(c->ct_key, key.bytes, c->ct_key_len);
}

static void
content_done(struct amqp_conn *c)
{
	enum content ct = c->ct;
	struct amqp_delivery d;

	c->ct = CT_NONE;
	if (ct == CT_RETURN)
		return; /* counted at basic.return */
	if (c->ct_skip) {
		c->st.oversize++;
		log_debug(
		    "amqp: delivery skipped reason=oversize bytes=%" PRIu64
		    " key=%.*s",
		    c->ct_size, (int)c->ct_key_len, c->ct_key);
		return;
	}
	c->st.deliveries++;
	d.exchange.bytes = c->ct_exchange;
	d.exchange.len = c->ct_exchange_len;
	d.key.bytes = c->ct_key;
	d.key.len = c->ct_key_len;
	d.from_fanout =
	    c->fanout[0] != '\0' && c->ct_exchange_len == strlen(c->fanout) &&
	    memcmp(c->ct_exchange, c->fanout, c->ct_exchange_len) == 0;
	d.hdr = c->ct_hdr;
	d.to.bytes = c->ct_to;
	d.to.len = c->ct_to_len;
	d.body = c->body;
	d.len = (size_t)c->ct_size;
	c->cbs.delivery(c->cbs.arg, &d);
}

static void
on_header(struct amqp_conn *c, const amqp_frame_t *f)
{
	const amqp_basic_properties_t *p = f->payload.properties.decoded;
	amqp_bytes_t v;

	if (c->ct == CT_NONE || c->ct_header) {
		conn_lost(c, "content header out of sequence");
		return;
	}
	c->ct_header = true;
	c->ct_size = f->payload.properties.body_size;
	if (c->ct == CT_DELIVER) {
		if (p != NULL && (p->_flags & AMQP_BASIC_HEADERS_FLAG)) {
			c->ct_hdr = amqp_msg_header(
			    &p->headers, AMQP_MSG_TO_HEADER, &v);
			if (c->ct_hdr == AMQP_MSG_HDR_STRING) {
				if (v.len > TO_MAX) {
					c->ct_hdr = AMQP_MSG_HDR_BAD;
				} else {
					memcpy(c->ct_to, v.bytes, v.len);
					c->ct_to_len = v.len;
				}
			}
		}
		if (c->ct_size > c->max_body) {
			c->ct_skip = true;
		} else if (c->ct_size > c->body_cap) {
			char *nb = realloc(c->body, (size_t)c->ct_size);

			if (nb == NULL) {
				c->ct_skip = true;
			} else {
				c->body = nb;
				c->body_cap = (size_t)c->ct_size;
			}
		}
	}
	if (c->ct_size == 0)
		content_done(c);
}

static void
on_body(struct amqp_conn *c, const amqp_frame_t *f)
{
	amqp_bytes_t b = f->payload.body_fragment;

	if (c->ct == CT_NONE || !c->ct_header ||
	    c->ct_got + b.len > c->ct_size) {
		conn_lost(c, "content body out of sequence");
		return;
	}
	if (c->ct == CT_DELIVER && !c->ct_skip)
		memcpy(c->body + c->ct_got, b.bytes, b.len);
	c->ct_got += b.len;
	if (c->ct_got == c->ct_size)
		content_done(c);
}

static void
on_method(struct amqp_conn *c, const amqp_frame_t *f)
{
	const amqp_method_t *m = &f->payload.method;

	if (c->ct != CT_NONE) {
		conn_lost(c, "method inside a content");
		return;
	}
	if (f->channel == 0) {
		switch (m->id) {
		case AMQP_CONNECTION_START_METHOD:
			if (c->state == CS_LOGIN)
				on_start(c, m->decoded);
			return;
		case AMQP_CONNECTION_TUNE_METHOD:
			if (c->state == CS_LOGIN)
				on_tune(c, m->decoded);
			return;
		case AMQP_CONNECTION_OPEN_OK_METHOD:
			if (c->state == CS_LOGIN)
				on_open_ok(c);
			return;
		case AMQP_CONNECTION_CLOSE_METHOD: {
			amqp_connection_close_t *cl = m->decoded;
			char why[300];

			snprintf(why, sizeof(why),
			    "connection closed by the broker: %.*s",
			    (int)cl->reply_text.len,
			    (const char *)cl->reply_text.bytes);
			(void)amqp_send_method(c->conn, 0,
			    AMQP_CONNECTION_CLOSE_OK_METHOD,
			    &(amqp_connection_close_ok_t){0});
			conn_lost(c, why);
			return;
		}
		case AMQP_CONNECTION_BLOCKED_METHOD:
			c->st.blocked = true;
			log_warnx("amqp: broker blocked publishing (resource "
				  "alarm)");
			return;
		case AMQP_CONNECTION_UNBLOCKED_METHOD:
			c->st.blocked = false;
			log_notice("amqp: broker unblocked publishing");
			return;
		default:
			return;
		}
	}
	if (is_reply(m->id)) {
		on_reply(c, m);
		return;
	}
	switch (m->id) {
	case AMQP_BASIC_DELIVER_METHOD: {
		amqp_basic_deliver_t *d = m->decoded;

		content_begin(c, CT_DELIVER, d->exchange, d->routing_key);
		break;
	}
	case AMQP_BASIC_RETURN_METHOD: {
		amqp_basic_return_t *r = m->decoded;

		c->st.returned++;
		log_debug("amqp: message returned exchange=%.*s key=%.*s: %.*s",
		    (int)r->exchange.len, (const char *)r->exchange.bytes,
		    (int)r->routing_key.len, (const char *)r->routing_key.bytes,
		    (int)r->reply_text.len, (const char *)r->reply_text.bytes);
		content_begin(c, CT_RETURN, r->exchange, r->routing_key);
		break;
	}
	case AMQP_BASIC_ACK_METHOD: {
		amqp_basic_ack_t *a = m->decoded;

		(void)amqp_confirm_settle(
		    &c->confirm, a->delivery_tag, a->multiple, false);
		break;
	}
	case AMQP_BASIC_NACK_METHOD: {
		amqp_basic_nack_t *a = m->decoded;

		(void)amqp_confirm_settle(
		    &c->confirm, a->delivery_tag, a->multiple, true);
		break;
	}
	case AMQP_CHANNEL_CLOSE_METHOD:
		on_channel_close(c, m->decoded);
		break;
	case AMQP_BASIC_CANCEL_METHOD:
		/* Our queue was deleted under us: start over. */
		conn_lost(c, "consumer cancelled by the broker");
		break;
	default:
		log_debug("amqp: ignored method %s", amqp_method_name(m->id));
		break;
	}
}

static void
dispatch(struct amqp_conn *c, const amqp_frame_t *f)
{
	switch (f->frame_type) {
	case AMQP_FRAME_METHOD:
		on_method(c, f);
		break;
	case AMQP_FRAME_HEADER:
		on_header(c, f);
		break;
	case AMQP_FRAME_BODY:
		on_body(c, f);
		break;
	default:
		break; /* heartbeats are eaten by rabbitmq-c */
	}
}

static void
read_frames(struct amqp_conn *c)
{
	struct timeval zero = {0, 0};

	for (int i = 0; i < AMQP_CONN_FRAMES_PER_PASS; i++) {
		amqp_frame_t f;
		int rc;

		if (c->state == CS_IDLE)
			return;
		rc = amqp_simple_wait_frame_noblock(c->conn, &f, &zero);
		if (rc == AMQP_STATUS_TIMEOUT)
			return; /* drained: poll() may sleep */
		if (rc != AMQP_STATUS_OK) {
			if (rc == AMQP_STATUS_HEARTBEAT_TIMEOUT)
				c->st.heartbeat_timeouts++;
			conn_lost(c, amqp_error_string2(rc));
			return;
		}
		dispatch(c, &f);
		if (c->state != CS_IDLE)
			amqp_maybe_release_buffers(c->conn);
	}
	/* Budget spent: what rabbitmq-c already buffered would not wake
	 * poll(), so come back right after this loop pass. */
	if (c->state != CS_IDLE && c->more_timer == 0)
		c->more_timer = loop_timer_add(c->loop, 0, 0, more_cb, c);
}

/* ---- public ---- */

struct amqp_conn *
amqp_conn_new(struct loop *loop, const struct amqp_conn_conf *cf,
    const struct amqp_conn_cbs *cbs, char *err, size_t errlen)
{
	struct amqp_conn *c = calloc(1, sizeof(*c));

	if (c == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	c->loop = loop;
	c->cbs = *cbs;
	amqp_rpcq_init(&c->waits);
	c->fd = -1;
	amqp_confirm_init(&c->confirm);
	c->backoff = AMQP_CONN_BACKOFF_MIN_MS;
	c->queue_max_length = cf->queue_max_length;
	c->queue_max_bytes = cf->queue_max_bytes;
	c->max_body = cf->max_body;
	c->coalesce_ms = cf->coalesce_ms;
	c->url = dup_str(cf->url);
	c->url_parsed = dup_str(cf->url);
	c->exchange = dup_str(cf->exchange);
	c->fanout = dup_str(cf->fanout_exchange);
	c->inbound = dup_str(cf->inbound_queue);
	c->events = dup_str(cf->events_exchange);
	c->name = dup_str(cf->name);
	if (c->url == NULL || c->url_parsed == NULL || c->exchange == NULL ||
	    c->fanout == NULL || c->inbound == NULL || c->events == NULL ||
	    c->name == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	amqp_default_connection_info(&c->ci);
	if (amqp_parse_url(c->url_parsed, &c->ci) != AMQP_STATUS_OK) {
		snprintf(err, errlen,
		    "[amqp] url: not amqp://user:password@host:port/vhost");
		goto fail;
	}
	if (c->ci.ssl) {
		snprintf(err, errlen, "[amqp] url: amqps:// is not supported");
		goto fail;
	}
	return c;
fail:
	amqp_conn_free(c);
	return NULL;
}

void
amqp_conn_start(struct amqp_conn *c)
{
	if (c->tick_timer == 0)
		c->tick_timer =
		    loop_timer_add(c->loop, TICK_MS, TICK_MS, tick_cb, c);
	if (c->state == CS_IDLE && c->reconnect_timer == 0)
		connect_attempt(c);
}

void
amqp_conn_free(struct amqp_conn *c)
{
	if (c == NULL)
		return;
	c->stopping = true;
	if (c->reconnect_timer != 0)
		loop_timer_del(c->loop, c->reconnect_timer);
	if (c->tick_timer != 0)
		loop_timer_del(c->loop, c->tick_timer);
	if (c->conn != NULL && (c->state == CS_SETUP || c->state == CS_UP)) {
		/* A clean close, bounded: the broker then drops the exclusive
		 * queue at once rather than after a missed heartbeat. */
		(void)amqp_send_method(c->conn, 0, AMQP_CONNECTION_CLOSE_METHOD,
		    &(amqp_connection_close_t){.reply_code = AMQP_REPLY_SUCCESS,
			.reply_text = bytes("bridge stopping")});
	}
	conn_close(c);
	free(c->url);
	free(c->url_parsed);
	free(c->exchange);
	free(c->fanout);
	free(c->inbound);
	free(c->events);
	free(c->name);
	free(c->body);
	free(c);
}

bool
amqp_conn_is_up(const struct amqp_conn *c)
{
	return c->state == CS_UP;
}

const char *
amqp_conn_last_error(const struct amqp_conn *c)
{
	return c->last_error;
}

const char *
amqp_conn_queue(const struct amqp_conn *c)
{
	return c->queue;
}

int
amqp_conn_bind(struct amqp_conn *c, bool bind, const char *key, size_t len)
{
	amqp_bytes_t k = {len, (void *)(uintptr_t)key};

	if (c->state != CS_UP)
		return -1;
	if (bind) {
		amqp_queue_bind_t b = {
		    .queue = bytes(c->queue),
		    .exchange = bytes(c->exchange),
		    .routing_key = k,
		    .arguments = amqp_empty_table,
		};

		return send_sync(c, AMQP_QUEUE_BIND_METHOD, &b,
		    AMQP_QUEUE_BIND_OK_METHOD, W_BIND, "bind", key, len);
	} else {
		amqp_queue_unbind_t u = {
		    .queue = bytes(c->queue),
		    .exchange = bytes(c->exchange),
		    .routing_key = k,
		    .arguments = amqp_empty_table,
		};

		return send_sync(c, AMQP_QUEUE_UNBIND_METHOD, &u,
		    AMQP_QUEUE_UNBIND_OK_METHOD, W_UNBIND, "unbind", key, len);
	}
}

/*
 * True if len more bytes fit in the socket without a blocking write.
 * rabbitmq-c writes with no deadline: on a full socket buffer (a broker
 * that stopped reading) it would wait in poll() inside our loop. Data
 * the kernel still holds unacknowledged (SIOCOUTQ) grows once the
 * broker's receive buffer is full; while it is zero everything sent so far
 * was taken. Linux reports SO_SNDBUF doubled for its bookkeeping, so half
 * of it is payload room, and we keep a margin for the frame headers.
 */
static bool
sock_room(const struct amqp_conn *c, size_t len)
{
	int fd = amqp_get_sockfd(c->conn), outq = 0, sndbuf = 0;
	socklen_t sl = sizeof(sndbuf);

	if (fd == -1 || ioctl(fd, SIOCOUTQ, &outq) == -1 ||
	    getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, &sl) == -1)
		return true; /* cannot tell: behave as rabbitmq-c alone */
	if (outq == 0)
		return true;
	return (size_t)outq + len + 512 <= (size_t)sndbuf / 2;
}

bool
amqp_conn_can_publish(const struct amqp_conn *c, size_t len)
{
	return c->state == CS_UP && !c->st.blocked &&
	       amqp_confirm_room(&c->confirm) && sock_room(c, len);
}

#define PUB_HEADERS_MAX 8

int
amqp_conn_publish(struct amqp_conn *c, const struct amqp_pub *p)
{
	amqp_basic_properties_t props = {0};
	amqp_table_entry_t h[PUB_HEADERS_MAX];
	int rc;

	if (!amqp_conn_can_publish(c, p->body.len + p->key.len) ||
	    p->n_headers > PUB_HEADERS_MAX)
		return -1;
	props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG;
	props.delivery_mode = p->persistent ? 2 : 1;
	if (p->type != NULL) {
		props._flags |= AMQP_BASIC_TYPE_FLAG;
		props.type = bytes(p->type);
	}
	props._flags |= AMQP_BASIC_APP_ID_FLAG;
	props.app_id = bytes("wspush");
	if (p->n_headers > 0) {
		for (size_t i = 0; i < p->n_headers; i++) {
			h[i].key = bytes(p->hnames[i]);
			h[i].value.kind = AMQP_FIELD_KIND_UTF8;
			h[i].value.value.bytes = p->hvalues[i];
		}
		props._flags |= AMQP_BASIC_HEADERS_FLAG;
		props.headers.num_entries = (int)p->n_headers;
		props.headers.entries = h;
	}
	rc = amqp_basic_publish(c->conn, CHAN, bytes(p->exchange), p->key,
	    p->mandatory, 0, &props, p->body);
	if (rc != AMQP_STATUS_OK) {
		char why[128];

		snprintf(
		    why, sizeof(why), "publish: %s", amqp_error_string2(rc));
		conn_lost(c, why);
		return -1;
	}
	(void)amqp_confirm_sent(&c->confirm);
	c->st.publishes++;
	/* rabbitmq-c reads inside a publish when the broker was silent for
	 * a while; what it queued then would not wake poll(). */
	if ((amqp_frames_enqueued(c->conn) || amqp_data_in_buffer(c->conn)) &&
	    c->more_timer == 0)
		c->more_timer = loop_timer_add(c->loop, 0, 0, more_cb, c);
	return 0;
}

void
amqp_conn_stats(const struct amqp_conn *c, struct amqp_conn_stats *out)
{
	*out = c->st;
	out->acked = c->confirm.acked;
	out->nacked = c->confirm.nacked;
	out->lost = c->st.lost;
	out->unconfirmed = amqp_confirm_open(&c->confirm);
}
