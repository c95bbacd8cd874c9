/*
 * hub.c - nng PUB (bus) and PULL (upstream) sockets of the bridge.
 *
 * The loop watches the PULL socket's RECVFD (an eventfd nng raises while
 * messages are queued; never read or closed here) and a private eventfd
 * that nng's pipe-notify thread writes after recording a removed pipe.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/pipeline0/pull.h>
#include <nng/protocol/pubsub0/pub.h>

#include "clock.h"
#include "hub.h"
#include "log.h"

/* SP protocol numbers of our peers (nng_sub0, nng_push0). */
#define HUB_PROTO_SUB 0x21
#define HUB_PROTO_PUSH 0x50

/*
 * One ipc listener and its self-check. nng 1.5.2 stops accepting on a
 * listener for good once a peer disconnects during the SP handshake
 * (nanomsg/nng#1518, fixed after 1.5.2): a plain connect()+close() to the
 * socket, or a second bridge probing a stale path, is enough. So every
 * HUB_CHECK_MS the hub connects to its own socket, does the handshake as a
 * peer would, and recreates the listener if the connection is not
 * attached to the socket (NNG_PIPE_EV_ADD_POST) within
 * HUB_CHECK_TIMEOUT_MS: with the bug the transport still answers the
 * handshake, but the pipe never reaches the socket. Recreating closes the
 * listener's pipes: workers redial and resynchronise as after a bridge restart.
 */
struct hub_lsn {
	struct hub *hub;
	const char *what; /* "bus", "up" */
	char url[160];
	nng_socket sock;
	nng_listener l;
	bool started;
	uint16_t peer_proto; /* the SP protocol a peer of ours speaks */
	int fd;              /* the check connection, -1 if none */
	struct loop_fd *w;
	uint64_t deadline;
	atomic_uint adds;    /* {atomic} pipes attached to the socket */
	unsigned int adds0;  /* adds when the check started */
	uint64_t healthy_at; /* judged healthy; closing when quiet, 0 if not */
};

struct hub {
	struct loop *loop;
	struct hub_cbs cbs;
	nng_socket pub, pull;
	bool pub_open, pull_open;
	struct hub_lsn lsn_bus, lsn_up;
	uint64_t check_timer;
	uint64_t last_send;       /* monotonic ms of the last bus nng_sendmsg */
	uint64_t last_bad_log_ms; /* rate limit of bad-envelope warnings */
	struct loop_fd *w_up, *w_ev;
	int evfd;
	msgpack_sbuffer batch; /* pending bus envelopes */
	uint32_t batch_n;
	struct hub_stats stats;

	/* Written by nng's pipe-notify thread. */
	pthread_mutex_t mtx;
	uint32_t *gone; /* {mtx} removed pipe ids */
	size_t n_gone, cap_gone;
	bool gone_lost; /* {mtx} allocation failed: ids were lost */
};

static void
hub_err(char *err, size_t errlen, const char *call, const char *url, int rv)
{
	snprintf(err, errlen, "%s(%s): %s", call, url, nng_strerror(rv));
}

static int
lsn_start(struct hub_lsn *ls, char *err, size_t errlen)
{
	int rv;

	if ((rv = nng_listener_create(&ls->l, ls->sock, ls->url)) != 0) {
		hub_err(err, errlen, "nng_listener_create", ls->url, rv);
		return -1;
	}
	/* Must be set before start; without it the umask decides. */
	rv = nng_listener_set_int(ls->l, NNG_OPT_IPC_PERMISSIONS, 0660);
	if (rv != 0) {
		hub_err(err, errlen, "nng_listener_set_int(ipc:permissions)",
		    ls->url, rv);
		nng_listener_close(ls->l);
		return -1;
	}
	if ((rv = nng_listener_start(ls->l, 0)) != 0) {
		hub_err(err, errlen, "nng_listener_start", ls->url, rv);
		nng_listener_close(ls->l);
		return -1;
	}
	ls->started = true;
	return 0;
}

static void
lsn_check_end(struct hub_lsn *ls)
{
	if (ls->w != NULL)
		loop_fd_del(ls->w);
	ls->w = NULL;
	if (ls->fd != -1)
		close(ls->fd);
	ls->fd = -1;
	ls->healthy_at = 0;
}

/*
 * A healthy check connection is closed when the bus has been quiet for
 * HUB_QUIET_MS (or after HUB_QUIET_MAX_MS regardless): nng 1.5.2 loses
 * (leaks) a message that PUB hands to a pipe closing at that very moment,
 * and all bus sends start in this thread, so a quiet moment has none in
 * flight. The up socket (PULL) never sends: closed at once.
 */
static void
lsn_close_when_quiet(struct hub_lsn *ls, uint64_t now)
{
	if (ls->healthy_at == 0)
		return;
	if (ls->peer_proto != HUB_PROTO_SUB ||
	    now - ls->hub->last_send >= HUB_QUIET_MS ||
	    now - ls->healthy_at >= HUB_QUIET_MAX_MS)
		lsn_check_end(ls);
}

static void
lsn_restart(struct hub_lsn *ls, const char *why)
{
	char err[256];

	lsn_check_end(ls);
	ls->hub->stats.listener_restarts++;
	log_warnx("hub: %s listener %s stopped answering (%s; nng 1.5.2 "
		  "bug #1518): recreating it",
	    ls->what, ls->url, why);
	if (ls->started)
		nng_listener_close(ls->l);
	ls->started = false;
	if (lsn_start(ls, err, sizeof(err)) == -1)
		log_errx("hub: %s (retrying)", err);
}

/* Drains what the socket sends the check connection (a PUB sends). The
 * connection stays open until judged: closing it before nng finished the
 * handshake would itself trigger the bug. */
static void
lsn_read_cb(struct loop *l, int fd, int revents, void *arg)
{
	struct hub_lsn *ls = arg;
	char buf[4096];
	ssize_t n = read(fd, buf, sizeof(buf));

	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0 && ls->healthy_at != 0)
		lsn_check_end(ls); /* already judged */
	else if (n <= 0)
		lsn_restart(ls, n == 0 ? "closed by nng" : strerror(errno));
}

/* nng thread: a pipe was attached to the socket. */
static void
lsn_add_cb(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	struct hub_lsn *ls = arg;

	atomic_fetch_add(&ls->adds, 1);
}

/* Starts a check of one listener, or judges the one in flight. */
static void
lsn_check(struct hub_lsn *ls, uint64_t now)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	const char *path = ls->url + strlen("ipc://");
	unsigned char hdr[8] = {0, 'S', 'P', 0,
	    (unsigned char)(ls->peer_proto >> 8),
	    (unsigned char)(ls->peer_proto & 0xff), 0, 0};

	if (ls->fd != -1) {
		if (ls->healthy_at != 0)
			return; /* waiting for a quiet moment to close */
		if (atomic_load(&ls->adds) != ls->adds0) {
			ls->healthy_at = now;
			lsn_close_when_quiet(ls, now);
		} else if (now >= ls->deadline)
			lsn_restart(ls, "connection not attached");
		return;
	}
	if (!ls->started) {
		lsn_restart(ls, "not listening");
		return;
	}
	if (strlen(path) >= sizeof(sa.sun_path))
		return;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	ls->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (ls->fd == -1)
		return; /* out of descriptors: try next time */
	if (connect(ls->fd, (struct sockaddr *)&sa, sizeof(sa)) == -1) {
		int e = errno;

		if (e == EAGAIN) { /* backlog full: busy, not dead */
			log_debug("hub: check %s: backlog full", ls->what);
			lsn_check_end(ls);
			return;
		}
		lsn_restart(ls, strerror(e));
		return;
	}
	ls->adds0 = atomic_load(&ls->adds);
	/* 8 bytes always fit an empty unix socket buffer. */
	if (write(ls->fd, hdr, sizeof(hdr)) != (ssize_t)sizeof(hdr)) {
		log_debug(
		    "hub: check %s: write: %s", ls->what, strerror(errno));
		lsn_check_end(ls);
		return;
	}
	ls->deadline = now + HUB_CHECK_TIMEOUT_MS;
	ls->w = loop_fd_add(ls->hub->loop, ls->fd, POLLIN, lsn_read_cb, ls);
	if (ls->w == NULL)
		lsn_check_end(ls);
}

static void
check_cb(struct loop *l, uint64_t id, void *arg)
{
	struct hub *h = arg;

	lsn_check(&h->lsn_bus, loop_now(l));
	lsn_check(&h->lsn_up, loop_now(l));
}

/* nng thread: record the pipe and wake the loop. */
static void
pipe_cb(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	struct hub *h = arg;
	uint64_t one = 1;
	int id = nng_pipe_id(p);

	if (ev != NNG_PIPE_EV_REM_POST || id < 0)
		return;
	pthread_mutex_lock(&h->mtx);
	if (h->n_gone == h->cap_gone) {
		size_t cap = h->cap_gone == 0 ? 16 : h->cap_gone * 2;
		uint32_t *g = realloc(h->gone, cap * sizeof(*g));

		if (g == NULL) {
			h->gone_lost = true;
			pthread_mutex_unlock(&h->mtx);
			return;
		}
		h->gone = g;
		h->cap_gone = cap;
	}
	h->gone[h->n_gone++] = (uint32_t)id;
	pthread_mutex_unlock(&h->mtx);
	/* A full counter (EAGAIN) means the loop is already woken. */
	ssize_t n = write(h->evfd, &one, sizeof(one));
	(void)n;
}

static void
ev_cb(struct loop *l, int fd, int revents, void *arg)
{
	struct hub *h = arg;
	uint64_t v;
	uint32_t *gone;
	size_t n;
	bool lost;

	ssize_t rn = read(fd, &v, sizeof(v)); /* resets the counter */

	(void)rn;
	pthread_mutex_lock(&h->mtx);
	gone = h->gone;
	n = h->n_gone;
	lost = h->gone_lost;
	h->gone = NULL;
	h->n_gone = h->cap_gone = 0;
	h->gone_lost = false;
	pthread_mutex_unlock(&h->mtx);
	if (lost)
		log_warnx("hub: pipe removals lost (out of memory); workers "
			  "will time out instead");
	for (size_t i = 0; i < n; i++)
		h->cbs.pipe_removed(h->cbs.arg, gone[i]);
	free(gone);
}

static void
up_one(struct hub *h, nng_msg *m)
{
	struct env_reader r;
	struct up_env env;
	int pid = nng_pipe_id(nng_msg_get_pipe(m));
	int rc;

	h->stats.up_messages++;
	env_reader_init(&r, nng_msg_body(m), nng_msg_len(m));
	while ((rc = up_reader_next(&r, &env)) != ENV_END) {
		if (rc != ENV_OK) {
			/* A worker of another version, or a stranger on the
			 * socket: worth a warning, but at most one a second. */
			uint64_t now = clock_mono_ms();

			if (now - h->last_bad_log_ms >= 1000) {
				h->last_bad_log_ms = now;
				log_warnx("hub: upstream envelope dropped "
					  "pipe=%d err=%s",
				    pid, env_strerror(rc));
			} else {
				log_debug("hub: upstream envelope dropped "
					  "pipe=%d err=%s",
				    pid, env_strerror(rc));
			}
			h->cbs.drop(h->cbs.arg, "bad_upstream");
			continue;
		}
		h->stats.up_envelopes++;
		h->cbs.recv(h->cbs.arg, pid < 0 ? 0 : (uint32_t)pid, &env);
	}
	env_reader_fini(&r);
}

static void
up_cb(struct loop *l, int fd, int revents, void *arg)
{
	struct hub *h = arg;

	/* Bounded: the fd stays readable if more is queued. */
	for (int i = 0; i < HUB_DRAIN_MAX; i++) {
		nng_msg *m;
		int rv = nng_recvmsg(h->pull, &m, NNG_FLAG_NONBLOCK);

		if (rv == NNG_EAGAIN)
			break;
		if (rv != 0) {
			log_warnx("hub: nng_recvmsg(up): %s", nng_strerror(rv));
			break;
		}
		up_one(h, m);
		nng_msg_free(m);
	}
}

static void
flush_hook(struct loop *l, void *arg)
{
	struct hub *h = arg;

	hub_flush(h);
	lsn_close_when_quiet(&h->lsn_bus, loop_now(l));
}

struct hub *
hub_open(struct loop *loop, const char *bus_url, const char *up_url,
    const struct hub_cbs *cbs, char *err, size_t errlen)
{
	struct hub *h = calloc(1, sizeof(*h));
	int rv, recvfd;

	if (h == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	h->loop = loop;
	h->cbs = *cbs;
	h->evfd = -1;
	/* h is zeroed (calloc): the atomics start at 0. */
	h->lsn_bus.hub = h->lsn_up.hub = h;
	h->lsn_bus.what = "bus";
	h->lsn_up.what = "up";
	h->lsn_bus.fd = h->lsn_up.fd = -1;
	h->lsn_bus.peer_proto = HUB_PROTO_SUB;
	h->lsn_up.peer_proto = HUB_PROTO_PUSH;
	if (strlen(bus_url) >= sizeof(h->lsn_bus.url) ||
	    strlen(up_url) >= sizeof(h->lsn_up.url) ||
	    strncmp(bus_url, "ipc://", 6) != 0 ||
	    strncmp(up_url, "ipc://", 6) != 0) {
		snprintf(err, errlen, "%s, %s: expected ipc:// URLs", bus_url,
		    up_url);
		free(h);
		return NULL;
	}
	snprintf(h->lsn_bus.url, sizeof(h->lsn_bus.url), "%s", bus_url);
	snprintf(h->lsn_up.url, sizeof(h->lsn_up.url), "%s", up_url);
	msgpack_sbuffer_init(&h->batch);
	pthread_mutex_init(&h->mtx, NULL);
	h->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (h->evfd == -1) {
		snprintf(err, errlen, "eventfd: %s", strerror(errno));
		goto fail;
	}

	if ((rv = nng_pub0_open(&h->pub)) != 0) {
		hub_err(err, errlen, "nng_pub0_open", bus_url, rv);
		goto fail;
	}
	h->pub_open = true;
	if ((rv = nng_socket_set_int(h->pub, NNG_OPT_SENDBUF, HUB_SENDBUF)) !=
	    0) {
		hub_err(err, errlen, "nng_socket_set_int(send-buffer)", bus_url,
		    rv);
		goto fail;
	}
	h->lsn_bus.sock = h->pub;
	rv = nng_pipe_notify(
	    h->pub, NNG_PIPE_EV_ADD_POST, lsn_add_cb, &h->lsn_bus);
	if (rv != 0) {
		hub_err(err, errlen, "nng_pipe_notify", bus_url, rv);
		goto fail;
	}
	if (lsn_start(&h->lsn_bus, err, errlen) == -1)
		goto fail;

	if ((rv = nng_pull0_open(&h->pull)) != 0) {
		hub_err(err, errlen, "nng_pull0_open", up_url, rv);
		goto fail;
	}
	h->pull_open = true;
	/* An oversize message closes the pipe; the worker redials. */
	rv = nng_socket_set_size(h->pull, NNG_OPT_RECVMAXSZ, HUB_RECVMAXSZ);
	if (rv != 0) {
		hub_err(err, errlen, "nng_socket_set_size(recv-size-max)",
		    up_url, rv);
		goto fail;
	}
	rv = nng_pipe_notify(h->pull, NNG_PIPE_EV_REM_POST, pipe_cb, h);
	if (rv != 0) {
		hub_err(err, errlen, "nng_pipe_notify", up_url, rv);
		goto fail;
	}
	h->lsn_up.sock = h->pull;
	rv = nng_pipe_notify(
	    h->pull, NNG_PIPE_EV_ADD_POST, lsn_add_cb, &h->lsn_up);
	if (rv != 0) {
		hub_err(err, errlen, "nng_pipe_notify", up_url, rv);
		goto fail;
	}
	if (lsn_start(&h->lsn_up, err, errlen) == -1)
		goto fail;
	if ((rv = nng_socket_get_int(h->pull, NNG_OPT_RECVFD, &recvfd)) != 0) {
		hub_err(err, errlen, "nng_socket_get_int(recv-fd)", up_url, rv);
		goto fail;
	}
	h->w_up = loop_fd_add(loop, recvfd, POLLIN, up_cb, h);
	h->w_ev = loop_fd_add(loop, h->evfd, POLLIN, ev_cb, h);
	h->check_timer =
	    loop_timer_add(loop, HUB_CHECK_MS, HUB_CHECK_MS, check_cb, h);
	if (h->w_up == NULL || h->w_ev == NULL || h->check_timer == 0 ||
	    loop_hook_add(loop, flush_hook, h) == -1) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	return h;
fail:
	hub_close(h);
	return NULL;
}

void
hub_close(struct hub *h)
{
	if (h == NULL)
		return;
	if (h->pub_open)
		hub_flush(h);
	if (h->w_up != NULL)
		loop_fd_del(h->w_up);
	if (h->w_ev != NULL)
		loop_fd_del(h->w_ev);
	loop_hook_del(h->loop, flush_hook, h);
	if (h->check_timer != 0)
		loop_timer_del(h->loop, h->check_timer);
	lsn_check_end(&h->lsn_bus);
	lsn_check_end(&h->lsn_up);
	/* nng_close waits for the pipe callbacks; the mutex and the eventfd
	 * must outlive it. */
	if (h->pull_open)
		nng_close(h->pull);
	if (h->pub_open)
		nng_close(h->pub);
	if (h->evfd != -1)
		close(h->evfd);
	pthread_mutex_destroy(&h->mtx);
	free(h->gone);
	msgpack_sbuffer_destroy(&h->batch);
	free(h);
}

void
hub_flush(struct hub *h)
{
	nng_msg *m;
	int rv;

	if (h->batch_n == 0)
		return;
	rv = nng_msg_alloc(&m, h->batch.size);
	if (rv == 0) {
		memcpy(nng_msg_body(m), h->batch.data, h->batch.size);
		rv = nng_sendmsg(h->pub, m, NNG_FLAG_NONBLOCK);
		h->last_send = clock_mono_ms();
		if (rv != 0)
			nng_msg_free(m); /* nng owns it only on success */
	}
	if (rv != 0) {
		/* DROP: the whole batch; workers see it as a bus gap. */
		h->stats.bus_send_errors++;
		log_warnx("hub: nng_sendmsg(bus): %s envelopes=%u",
		    nng_strerror(rv), h->batch_n);
	} else {
		h->stats.bus_messages++;
	}
	msgpack_sbuffer_clear(&h->batch);
	h->batch_n = 0;
}

static int
appended(struct hub *h, size_t before, int rc)
{
	if (rc != 0) {
		h->batch.size = before; /* undo a partial envelope */
		return -1;
	}
	h->batch_n++;
	h->stats.bus_envelopes++;
	if (h->batch_n >= HUB_BATCH_MAX || h->batch.size >= HUB_BATCH_BYTES)
		hub_flush(h);
	return 0;
}

int
hub_bus_msg(struct hub *h, const struct bus_msg *m)
{
	size_t before = h->batch.size;

	return appended(h, before, bus_encode_msg(&h->batch, m));
}

int
hub_bus_ack(struct hub *h, const struct bus_ack *a)
{
	size_t before = h->batch.size;

	return appended(h, before, bus_encode_ack(&h->batch, a));
}

int
hub_bus_heartbeat(struct hub *h, const struct bus_heartbeat *hb)
{
	size_t before = h->batch.size;

	return appended(h, before, bus_encode_heartbeat(&h->batch, hb));
}

const struct hub_stats *
hub_stats(const struct hub *h)
{
	return &h->stats;
}
