/*
 * resp_conn.c - a Redis connection with its own non-blocking socket on the
 * bridge loop; hiredis is used only for its reply reader and its command
 * formatter (see resp_conn.h for why, CLUSTER-NOTES.md for the RESP2 pub/sub
 * rules this follows).
 *
 * Reentrancy: callbacks may free the connection or issue commands. Every
 * entry from the loop (fd, timers) holds a depth count; resp_conn_free()
 * inside a callback tears the link down at once and only defers the
 * release of the struct, and every loop over callbacks stops when it sees
 * the connection freed.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "resp_conn.h"

#define RC_READ_CHUNK 16384
/* Up this long before a loss: the next attempt starts from the minimum
 * delay again. A server that drops every link right after the handshake
 * (a full client table, an ACL change) does not make us spin. */
#define RC_STABLE_MS 2000
#define RC_MAX_ARGS 1024

enum rc_state {
	RC_IDLE,       /* not started */
	RC_CONNECTING, /* TCP connect in progress */
	RC_HANDSHAKE,  /* connected, AUTH not answered yet */
	RC_UP,
	RC_WAITING, /* backoff timer armed */
};

/* What a pending command waits for. */
enum rc_kind {
	RC_PLAIN,     /* one reply */
	RC_SUBSCRIBE, /* one confirmation per channel, named like the cmd */
	RC_INTERNAL,  /* AUTH or the liveness PING: not the owner's */
};

struct rc_pending {
	struct rc_pending *next;
	resp_reply_fn *cb;
	void *arg;
	enum rc_kind kind;
	uint32_t confirms; /* RC_SUBSCRIBE: confirmations still due */
	char sub[16];      /* RC_SUBSCRIBE: "ssubscribe", lower case */
	void (*internal)(struct resp_conn *, const redisReply *);
};

struct resp_conn {
	struct loop *loop;
	char *name, *host, *user, *password;
	uint16_t port;
	bool pubsub;
	uint32_t coalesce_ms;
	uint32_t connect_timeout_ms, ping_interval_ms;
	uint32_t backoff_min_ms, backoff_max_ms;
	resp_push_fn *on_push;
	resp_state_fn *on_state;
	void *arg;

	enum rc_state state;
	int fd;
	struct loop_fd *w;
	redisReader *reader;
	char *wbuf; /* formatted commands not written yet */
	size_t wlen, woff, wcap;
	struct rc_pending *head, *tail;
	size_t npending;
	uint64_t connect_timer, retry_timer, ping_timer;
	bool ping_outstanding;
	uint32_t attempt;  /* failed attempts since the last stable link */
	uint64_t up_since; /* loop ms of the last link up */
	char last_error[256];
	uint64_t rng;
	unsigned depth; /* loop entries on the stack */
	bool freeing;
	struct resp_conn_stats stats;
};

static void rc_connect(struct resp_conn *rc);
static void rc_lost(struct resp_conn *rc, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static char *
dupstr(const char *s)
{
	return s == NULL ? NULL : strdup(s);
}

struct resp_conn *
resp_conn_new(struct loop *l, const struct resp_conn_opts *o)
{
	struct resp_conn *rc = calloc(1, sizeof(*rc));

	if (rc == NULL)
		return NULL;
	rc->loop = l;
	rc->fd = -1;
	rc->port = o->port;
	rc->pubsub = o->pubsub;
	rc->coalesce_ms = o->coalesce_ms;
	rc->connect_timeout_ms =
	    o->connect_timeout_ms ? o->connect_timeout_ms : 5000;
	rc->ping_interval_ms = o->ping_interval_ms;
	rc->backoff_min_ms = o->backoff_min_ms ? o->backoff_min_ms : 100;
	rc->backoff_max_ms = o->backoff_max_ms ? o->backoff_max_ms : 5000;
	if (rc->backoff_max_ms < rc->backoff_min_ms)
		rc->backoff_max_ms = rc->backoff_min_ms;
	rc->on_push = o->on_push;
	rc->on_state = o->on_state;
	rc->arg = o->arg;
	rc->name = dupstr(o->name != NULL ? o->name : "redis");
	rc->host = dupstr(o->host != NULL ? o->host : "127.0.0.1");
	rc->user = dupstr(o->user);
	rc->password = (o->password != NULL && o->password[0] != '\0')
			   ? dupstr(o->password)
			   : NULL;
	/* Jitter only has to decorrelate bridges that lost the same Redis at
	 * the same moment: time, pid and address differ between them. */
	rc->rng = ((uint64_t)time(NULL) << 20) ^ (uint64_t)getpid() ^
		  (uint64_t)(uintptr_t)rc;
	rc->rng |= 1;
	if (rc->name == NULL || rc->host == NULL ||
	    (o->user != NULL && rc->user == NULL) ||
	    (o->password != NULL && o->password[0] != '\0' &&
		rc->password == NULL)) {
		resp_conn_free(rc);
		return NULL;
	}
	return rc;
}

static void
pending_free_all(struct rc_pending *p)
{
	while (p != NULL) {
		struct rc_pending *next = p->next;

		free(p);
		p = next;
	}
}

/* Closes the socket and stops every timer; pending commands are kept. */
static void
rc_close(struct resp_conn *rc)
{
	if (rc->w != NULL) {
		loop_fd_del(rc->w);
		rc->w = NULL;
	}
	if (rc->fd != -1) {
		close(rc->fd);
		rc->fd = -1;
	}
	if (rc->connect_timer != 0)
		loop_timer_del(rc->loop, rc->connect_timer);
	if (rc->ping_timer != 0)
		loop_timer_del(rc->loop, rc->ping_timer);
	rc->connect_timer = rc->ping_timer = 0;
	rc->ping_outstanding = false;
	if (rc->reader != NULL) {
		redisReaderFree(rc->reader);
		rc->reader = NULL;
	}
	rc->wlen = rc->woff = 0;
}

static void
rc_destroy(struct resp_conn *rc)
{
	free(rc->wbuf);
	free(rc->name);
	free(rc->host);
	free(rc->user);
	if (rc->password != NULL) {
		explicit_bzero(rc->password, strlen(rc->password));
		free(rc->password);
	}
	free(rc);
}

void
resp_conn_free(struct resp_conn *rc)
{
	if (rc == NULL || rc->freeing)
		return;
	rc->freeing = true;
	rc_close(rc);
	if (rc->retry_timer != 0)
		loop_timer_del(rc->loop, rc->retry_timer);
	rc->retry_timer = 0;
	pending_free_all(rc->head);
	rc->head = rc->tail = NULL;
	rc->npending = 0;
	if (rc->depth == 0)
		rc_destroy(rc);
}

static void
rc_enter(struct resp_conn *rc)
{
	rc->depth++;
}

static void
rc_leave(struct resp_conn *rc)
{
	if (--rc->depth == 0 && rc->freeing)
		rc_destroy(rc);
}

bool
resp_conn_is_up(const struct resp_conn *rc)
{
	return rc->state == RC_UP;
}

size_t
resp_conn_pending(const struct resp_conn *rc)
{
	return rc->npending;
}

const struct resp_conn_stats *
resp_conn_stats(const struct resp_conn *rc)
{
	return &rc->stats;
}

const char *
resp_conn_host(const struct resp_conn *rc)
{
	return rc->host;
}

uint16_t
resp_conn_port(const struct resp_conn *rc)
{
	return rc->port;
}

const char *
resp_conn_last_error(const struct resp_conn *rc)
{
	return rc->last_error;
}

const char *
resp_conn_state_str(const struct resp_conn *rc)
{
	switch (rc->state) {
	case RC_IDLE:
		return "idle";
	case RC_CONNECTING:
		return "connecting";
	case RC_HANDSHAKE:
		return "handshake";
	case RC_UP:
		return "up";
	case RC_WAITING:
		return "backoff";
	}
	return "?";
}

/* xorshift64: a jitter source that touches no global state. */
static uint64_t
rc_rand(struct resp_conn *rc)
{
	rc->rng ^= rc->rng << 13;
	rc->rng ^= rc->rng >> 7;
	rc->rng ^= rc->rng << 17;
	return rc->rng;
}

/* The n-th retry waits a random time in [base/2, base], base doubling from
 * backoff_min_ms up to backoff_max_ms ("equal jitter"): never a tight
 * loop, and many bridges do not come back in lockstep. */
static uint64_t
rc_backoff(struct resp_conn *rc)
{
	uint64_t base = rc->backoff_min_ms;

	for (uint32_t i = 0; i < rc->attempt && base < rc->backoff_max_ms; i++)
		base *= 2;
	if (base > rc->backoff_max_ms)
		base = rc->backoff_max_ms;
	if (rc->attempt < UINT32_MAX)
		rc->attempt++;
	return base / 2 + rc_rand(rc) % (base / 2 + 1);
}

static void
retry_cb(struct loop *l, uint64_t id, void *arg)
{
	struct resp_conn *rc = arg;

	rc->retry_timer = 0;
	rc_enter(rc);
	rc_connect(rc);
	rc_leave(rc);
}

/*
 * The link failed or was lost: close it, fail every pending command with
 * NULL, report down, retry after the backoff. Callers hold a depth count.
 */
static void
rc_lost(struct resp_conn *rc, const char *fmt, ...)
{
	char why[256];
	va_list ap;
	struct rc_pending *p;
	bool was_up = rc->state == RC_UP;
	bool same;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	rc_close(rc);
	if (was_up)
		rc->stats.disconnects++;
	else
		rc->stats.failures++;
	if (was_up && loop_now(rc->loop) - rc->up_since >= RC_STABLE_MS)
		rc->attempt = 0;
	same = strcmp(rc->last_error, why) == 0;
	snprintf(rc->last_error, sizeof(rc->last_error), "%s", why);
	rc->state = RC_WAITING;
	uint64_t delay = rc_backoff(rc);
	rc->retry_timer = loop_timer_add(rc->loop, delay, 0, retry_cb, rc);
	if (rc->retry_timer == 0) {
		/* No memory for a timer: nothing would ever reconnect. Stay
		 * down; the owner sees why and the link stays counted down. */
		rc->state = RC_IDLE;
	}
	/* One line per change of cause, not one per attempt. */
	if (was_up)
		log_warnx("%s: link lost: %s; reconnecting in %llu ms",
		    rc->name, why, (unsigned long long)delay);
	else if (!same)
		log_warnx("%s: connect failed: %s; retrying with backoff",
		    rc->name, why);
	else
		log_debug("%s: connect failed: %s; retrying in %llu ms",
		    rc->name, why, (unsigned long long)delay);
	p = rc->head;
	rc->head = rc->tail = NULL;
	rc->npending = 0;
	while (p != NULL && !rc->freeing) {
		struct rc_pending *next = p->next;

		if (p->kind != RC_INTERNAL && p->cb != NULL)
			p->cb(rc, NULL, p->arg);
		free(p);
		p = next;
	}
	pending_free_all(p);
	if (!rc->freeing && rc->on_state != NULL)
		rc->on_state(rc, false, why, rc->arg);
}

void
resp_conn_reset(struct resp_conn *rc, const char *why)
{
	if (rc->state == RC_IDLE || rc->state == RC_WAITING || rc->freeing)
		return;
	rc_enter(rc);
	rc_lost(rc, "%s", why);
	rc_leave(rc);
}

static void
rc_want_write(struct resp_conn *rc)
{
	if (rc->w != NULL)
		loop_fd_set(
		    rc->w, POLLIN | (rc->wlen > rc->woff ? POLLOUT : 0));
}

static int
rc_append(struct resp_conn *rc, const char *buf, size_t len)
{
	if (rc->woff > 0 && rc->woff == rc->wlen)
		rc->woff = rc->wlen = 0;
	if (rc->wlen + len > rc->wcap) {
		size_t cap = rc->wcap ? rc->wcap : 4096;
		char *n;

		/* Compact first: written bytes are dead. */
		if (rc->woff > 0) {
			memmove(
			    rc->wbuf, rc->wbuf + rc->woff, rc->wlen - rc->woff);
			rc->wlen -= rc->woff;
			rc->woff = 0;
		}
		while (cap < rc->wlen + len)
			cap *= 2;
		if (cap != rc->wcap) {
			n = realloc(rc->wbuf, cap);
			if (n == NULL)
				return -1;
			rc->wbuf = n;
			rc->wcap = cap;
		}
	}
	memcpy(rc->wbuf + rc->wlen, buf, len);
	rc->wlen += len;
	return 0;
}

static struct rc_pending *
pending_push(
    struct resp_conn *rc, enum rc_kind kind, resp_reply_fn *cb, void *arg)
{
	struct rc_pending *p = calloc(1, sizeof(*p));

	if (p == NULL)
		return NULL;
	p->kind = kind;
	p->cb = cb;
	p->arg = arg;
	if (rc->tail != NULL)
		rc->tail->next = p;
	else
		rc->head = p;
	rc->tail = p;
	rc->npending++;
	return p;
}

/* Removes the last queued pending entry (its command could not be
 * queued). */
static void
pending_drop_tail(struct resp_conn *rc)
{
	struct rc_pending *p = rc->head, *prev = NULL;

	while (p != NULL && p != rc->tail) {
		prev = p;
		p = p->next;
	}
	if (p == NULL)
		return;
	if (prev != NULL)
		prev->next = NULL;
	else
		rc->head = NULL;
	rc->tail = prev;
	rc->npending--;
	free(p);
}

static struct rc_pending *
pending_pop(struct resp_conn *rc)
{
	struct rc_pending *p = rc->head;

	if (p != NULL) {
		rc->head = p->next;
		if (rc->head == NULL)
			rc->tail = NULL;
		rc->npending--;
	}
	return p;
}

/* Formats and queues one command with its pending entry. */
static struct rc_pending *
rc_send(struct resp_conn *rc, enum rc_kind kind, int argc,
    const char *const *argv, const size_t *lens, resp_reply_fn *cb, void *arg)
{
	char *cmd = NULL;
	int len;
	struct rc_pending *p;

	len = redisFormatCommandArgv(&cmd, argc, (const char **)argv, lens);
	if (len < 0)
		return NULL;
	p = pending_push(rc, kind, cb, arg);
	if (p == NULL || rc_append(rc, cmd, (size_t)len) == -1) {
		if (p != NULL)
			pending_drop_tail(rc);
		redisFreeCommand(cmd);
		return NULL;
	}
	redisFreeCommand(cmd);
	rc_want_write(rc);
	return p;
}

/* The (S|P)(UN)SUBSCRIBE name in lower case, or NULL. */
static const char *
sub_kind(const char *name, size_t len)
{
	static const char *const kinds[] = {"subscribe", "ssubscribe",
	    "psubscribe", "unsubscribe", "sunsubscribe", "punsubscribe"};

	for (size_t i = 0; i < sizeof(kinds) / sizeof(*kinds); i++)
		if (strlen(kinds[i]) == len &&
		    strncasecmp(kinds[i], name, len) == 0)
			return kinds[i];
	return NULL;
}

int
resp_conn_command(struct resp_conn *rc, int argc, const char *const *argv,
    const size_t *lens, resp_reply_fn *cb, void *arg)
{
	const char *sub = NULL;
	struct rc_pending *p;

	if (rc->state != RC_UP || rc->freeing || argc < 1 || argc > RC_MAX_ARGS)
		return -1;
	if (rc->pubsub) {
		sub = sub_kind(argv[0], lens ? lens[0] : strlen(argv[0]));
		/* The argument-less forms answer once per subscribed channel,
		 * a count nobody here knows: not supported. */
		if (sub != NULL && argc < 2)
			return -1;
	}
	p = rc_send(rc, sub != NULL ? RC_SUBSCRIBE : RC_PLAIN, argc, argv, lens,
	    cb, arg);
	if (p == NULL)
		return -1;
	if (sub != NULL) {
		p->confirms = (uint32_t)(argc - 1);
		snprintf(p->sub, sizeof(p->sub), "%s", sub);
	}
	return 0;
}

int
resp_conn_cmd(struct resp_conn *rc, resp_reply_fn *cb, void *arg, ...)
{
	const char *argv[RC_MAX_ARGS];
	int argc = 0;
	const char *s;
	va_list ap;

	va_start(ap, arg);
	while ((s = va_arg(ap, const char *)) != NULL) {
		if (argc == RC_MAX_ARGS) {
			va_end(ap);
			return -1;
		}
		argv[argc++] = s;
	}
	va_end(ap);
	return resp_conn_command(rc, argc, argv, NULL, cb, arg);
}

static void
ping_reply(struct resp_conn *rc, const redisReply *r)
{
	rc->ping_outstanding = false;
}

static void
ping_cb(struct loop *l, uint64_t id, void *arg)
{
	struct resp_conn *rc = arg;
	static const char *const argv[] = {"PING"};
	struct rc_pending *p;

	if (rc->state != RC_UP)
		return;
	rc_enter(rc);
	if (rc->ping_outstanding) {
		rc_lost(
		    rc, "no reply to PING within %u ms", rc->ping_interval_ms);
	} else {
		p = rc_send(rc, RC_INTERNAL, 1, argv, NULL, NULL, NULL);
		if (p != NULL) {
			p->internal = ping_reply;
			rc->ping_outstanding = true;
		}
	}
	rc_leave(rc);
}

static void
rc_up(struct resp_conn *rc)
{
	if (rc->connect_timer != 0)
		loop_timer_del(rc->loop, rc->connect_timer);
	rc->connect_timer = 0;
	rc->state = RC_UP;
	rc->up_since = loop_now(rc->loop);
	rc->stats.connects++;
	if (rc->ping_interval_ms > 0)
		rc->ping_timer = loop_timer_add(rc->loop, rc->ping_interval_ms,
		    rc->ping_interval_ms, ping_cb, rc);
	log_info("%s: connected to %s:%u", rc->name, rc->host, rc->port);
	if (rc->on_state != NULL)
		rc->on_state(rc, true, NULL, rc->arg);
}

static void
auth_reply(struct resp_conn *rc, const redisReply *r)
{
	if (r->type == REDIS_REPLY_ERROR) {
		rc_lost(rc, "AUTH: %s", r->str);
		return;
	}
	rc_up(rc);
}

/* TCP is up: authenticate, or go up directly. */
static void
rc_connected(struct resp_conn *rc)
{
	rc->reader = redisReaderCreate();
	if (rc->reader == NULL) {
		rc_lost(rc, "out of memory");
		return;
	}
	rc_want_write(rc); /* from POLLOUT (connecting) to POLLIN */
	if (rc->password == NULL) {
		rc_up(rc);
		return;
	}
	const char *argv[3] = {"AUTH"};
	int argc = 1;
	struct rc_pending *p;

	if (rc->user != NULL)
		argv[argc++] = rc->user;
	argv[argc++] = rc->password;
	rc->state = RC_HANDSHAKE;
	p = rc_send(rc, RC_INTERNAL, argc, argv, NULL, NULL, NULL);
	if (p == NULL) {
		rc_lost(rc, "out of memory");
		return;
	}
	p->internal = auth_reply;
}

static bool
is_push(const redisReply *r)
{
	const redisReply *k;

	if (r->type != REDIS_REPLY_ARRAY || r->elements < 2)
		return false;
	k = r->element[0];
	if (k->type != REDIS_REPLY_STRING)
		return false;
	if ((k->len == 7 && memcmp(k->str, "message", 7) == 0) ||
	    (k->len == 8 && (memcmp(k->str, "smessage", 8) == 0 ||
				memcmp(k->str, "pmessage", 8) == 0)))
		return true;
	return sub_kind(k->str, k->len) != NULL;
}

/* One complete reply from the server. */
static void
rc_dispatch(struct resp_conn *rc, redisReply *r)
{
	struct rc_pending *p = rc->head;

	if (rc->pubsub && is_push(r)) {
		const redisReply *k = r->element[0];
		bool confirms = p != NULL && p->kind == RC_SUBSCRIBE &&
				p->confirms > 0 && strlen(p->sub) == k->len &&
				memcmp(p->sub, k->str, k->len) == 0;

		rc->stats.pushes++;
		if (rc->on_push != NULL)
			rc->on_push(rc, r, rc->arg);
		if (rc->freeing || !confirms || rc->head != p)
			return;
		if (--p->confirms > 0)
			return;
	} else if (p == NULL) {
		rc_lost(rc, "a reply nobody asked for (type %d)", r->type);
		return;
	} else if (p->kind == RC_SUBSCRIBE && r->type != REDIS_REPLY_ERROR) {
		/* Only confirmations or an error may answer a subscription. */
		rc_lost(
		    rc, "unexpected reply (type %d) to %s", r->type, p->sub);
		return;
	}
	p = pending_pop(rc);
	if (p->kind == RC_INTERNAL) {
		if (p->internal != NULL)
			p->internal(rc, r);
	} else {
		rc->stats.replies++;
		if (p->cb != NULL)
			p->cb(rc, r, p->arg);
	}
	free(p);
}

static void
rc_read(struct resp_conn *rc)
{
	char buf[RC_READ_CHUNK];

	for (;;) {
		ssize_t n = read(rc->fd, buf, sizeof(buf));

		if (n == 0) {
			rc_lost(rc, "server closed the connection");
			return;
		}
		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			rc_lost(rc, "read: %s", strerror(errno));
			return;
		}
		if (redisReaderFeed(rc->reader, buf, (size_t)n) != REDIS_OK) {
			rc_lost(rc, "reader: %s", rc->reader->errstr);
			return;
		}
		for (;;) {
			void *reply = NULL;

			if (redisReaderGetReply(rc->reader, &reply) !=
			    REDIS_OK) {
				rc_lost(rc, "protocol error: %s",
				    rc->reader->errstr);
				return;
			}
			if (reply == NULL)
				break;
			rc_dispatch(rc, reply);
			freeReplyObject(reply);
			if (rc->freeing || rc->reader == NULL)
				return; /* freed, or the link was dropped */
		}
		if ((size_t)n < sizeof(buf))
			return; /* drained; poll() says when there is more */
	}
}

static void
rc_write(struct resp_conn *rc)
{
	while (rc->woff < rc->wlen) {
		ssize_t n =
		    write(rc->fd, rc->wbuf + rc->woff, rc->wlen - rc->woff);

		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			rc_lost(rc, "write: %s", strerror(errno));
			return;
		}
		rc->woff += (size_t)n;
	}
	if (rc->woff == rc->wlen)
		rc->woff = rc->wlen = 0;
	rc_want_write(rc);
}

static void
fd_cb(struct loop *l, int fd, int revents, void *arg)
{
	struct resp_conn *rc = arg;

	rc_enter(rc);
	if (rc->state == RC_CONNECTING) {
		int err = 0;
		socklen_t elen = sizeof(err);

		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) == -1)
			err = errno;
		if (err != 0)
			rc_lost(rc, "connect to %s:%u: %s", rc->host, rc->port,
			    strerror(err));
		else
			rc_connected(rc);
	} else {
		if (revents & (POLLIN | POLLERR | POLLHUP))
			rc_read(rc);
		if (!rc->freeing && rc->fd == fd && (revents & POLLOUT))
			rc_write(rc);
	}
	rc_leave(rc);
}

static void
connect_timeout_cb(struct loop *l, uint64_t id, void *arg)
{
	struct resp_conn *rc = arg;

	rc->connect_timer = 0;
	rc_enter(rc);
	rc_lost(rc, "no connection to %s:%u within %u ms", rc->host, rc->port,
	    rc->connect_timeout_ms);
	rc_leave(rc);
}

static void
rc_connect(struct resp_conn *rc)
{
	struct addrinfo hints = {0}, *res = NULL;
	char port[8];
	int fd, rv, one = 1;

	rc->state = RC_CONNECTING;
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	snprintf(port, sizeof(port), "%u", rc->port);
	/* Blocking for a name; the URL or the cluster's map normally gives
	 * an address. Only the first address is tried. */
	rv = getaddrinfo(rc->host, port, &hints, &res);
	if (rv != 0) {
		rc_lost(rc, "resolve %s: %s", rc->host, gai_strerror(rv));
		return;
	}
	fd = socket(res->ai_family,
	    res->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, res->ai_protocol);
	if (fd == -1) {
		freeaddrinfo(res);
		rc_lost(rc, "socket: %s", strerror(errno));
		return;
	}
	rc->fd = fd;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	(void)setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	rv = connect(fd, res->ai_addr, res->ai_addrlen);
	freeaddrinfo(res);
	if (rv == -1 && errno != EINPROGRESS) {
		rc_lost(rc, "connect to %s:%u: %s", rc->host, rc->port,
		    strerror(errno));
		return;
	}
	rc->w = loop_fd_add(rc->loop, fd, POLLOUT, fd_cb, rc);
	if (rc->w != NULL)
		loop_fd_coalesce(rc->w, rc->coalesce_ms);
	rc->connect_timer = loop_timer_add(
	    rc->loop, rc->connect_timeout_ms, 0, connect_timeout_cb, rc);
	if (rc->w == NULL || rc->connect_timer == 0) {
		rc_lost(rc, "out of memory");
		return;
	}
}

void
resp_conn_start(struct resp_conn *rc)
{
	if (rc->state != RC_IDLE || rc->freeing)
		return;
	/* Through a timer: a connect that fails at once must not call the
	 * owner back from inside this call. */
	rc->state = RC_WAITING;
	rc->retry_timer = loop_timer_add(rc->loop, 0, 0, retry_cb, rc);
	if (rc->retry_timer == 0)
		rc->state = RC_IDLE;
}
