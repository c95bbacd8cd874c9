/*
 * ipc_listener.c - the nng#1518 self-check (see ipc_listener.h).
 *
 * The check connection is a plain unix socket: it writes the 8-byte SP
 * header of the peer protocol and watches for the pipe to be attached.
 * It stays open until judged: closing it before nng finished the handshake
 * would itself trigger the bug.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "ipc_listener.h"
#include "log.h"

struct ipc_listener {
	struct loop *loop;
	const char *what;
	char url[160];
	nng_socket sock;
	nng_listener l;
	bool started;
	bool sends;
	uint16_t peer_proto;
	uint64_t timer;
	int fd; /* the check connection, -1 if none */
	struct loop_fd *w;
	uint64_t deadline;
	atomic_uint adds;    /* {atomic} pipes attached to the socket */
	unsigned int adds0;  /* adds when the check started */
	uint64_t healthy_at; /* judged healthy; closing when quiet, 0 if not */
	uint64_t last_send;
	uint64_t restarts;
};

static int
ipc_listener_start(struct ipc_listener *il, char *err, size_t errlen)
{
	const char *call;
	int rv;

	if ((rv = nng_listener_create(&il->l, il->sock, il->url)) != 0) {
		call = "nng_listener_create";
		goto fail;
	}
	/* Must be set before start; without it the umask decides. */
	rv = nng_listener_set_int(il->l, NNG_OPT_IPC_PERMISSIONS, 0660);
	if (rv != 0) {
		call = "nng_listener_set_int(ipc:permissions)";
		nng_listener_close(il->l);
		goto fail;
	}
	if ((rv = nng_listener_start(il->l, 0)) != 0) {
		call = "nng_listener_start";
		nng_listener_close(il->l);
		goto fail;
	}
	il->started = true;
	return 0;
fail:
	snprintf(err, errlen, "%s(%s): %s", call, il->url, nng_strerror(rv));
	return -1;
}

static void
ipc_listener_check_end(struct ipc_listener *il)
{
	if (il->w != NULL)
		loop_fd_del(il->w);
	il->w = NULL;
	if (il->fd != -1)
		close(il->fd);
	il->fd = -1;
	il->healthy_at = 0;
}

void
ipc_listener_idle(struct ipc_listener *il, uint64_t now)
{
	if (il->healthy_at == 0)
		return;
	if (!il->sends || now - il->last_send >= IPC_LISTENER_QUIET_MS ||
	    now - il->healthy_at >= IPC_LISTENER_QUIET_MAX_MS)
		ipc_listener_check_end(il);
}

void
ipc_listener_sent(struct ipc_listener *il, uint64_t now_ms)
{
	il->last_send = now_ms;
}

static void
ipc_listener_restart(struct ipc_listener *il, const char *why)
{
	char err[256];

	ipc_listener_check_end(il);
	il->restarts++;
	log_warnx("%s: listener %s stopped answering (%s; nng 1.5.2 bug "
		  "#1518): recreating it",
	    il->what, il->url, why);
	if (il->started)
		nng_listener_close(il->l);
	il->started = false;
	if (ipc_listener_start(il, err, sizeof(err)) == -1)
		log_errx("%s: %s (retrying)", il->what, err);
}

/* Drains what the socket sends the check connection (a PUB sends). */
static void
ipc_listener_read_cb(struct loop *l, int fd, int revents, void *arg)
{
	struct ipc_listener *il = arg;
	char buf[4096];
	ssize_t n = read(fd, buf, sizeof(buf));

	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0 && il->healthy_at != 0)
		ipc_listener_check_end(il); /* already judged */
	else if (n <= 0)
		ipc_listener_restart(
		    il, n == 0 ? "closed by nng" : strerror(errno));
}

/* nng thread: a pipe was attached to the socket. */
static void
ipc_listener_add_cb(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	struct ipc_listener *il = arg;

	atomic_fetch_add(&il->adds, 1);
}

/* Judges the check in flight; true if one is (still) in flight. */
static bool
ipc_listener_judge(struct ipc_listener *il, uint64_t now)
{
	if (il->fd == -1)
		return false;
	if (il->healthy_at != 0)
		return true; /* waiting for a quiet moment to close */
	if (atomic_load(&il->adds) != il->adds0) {
		il->healthy_at = now;
		ipc_listener_idle(il, now);
	} else if (now >= il->deadline) {
		ipc_listener_restart(il, "connection not attached");
	}
	return true;
}

/* Starts a check of the listener, or judges the one in flight. */
static void
ipc_listener_check(struct ipc_listener *il, uint64_t now)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	const char *path = il->url + strlen("ipc://");
	unsigned char hdr[8] = {0, 'S', 'P', 0,
	    (unsigned char)(il->peer_proto >> 8),
	    (unsigned char)(il->peer_proto & 0xff), 0, 0};

	if (ipc_listener_judge(il, now))
		return;
	if (!il->started) {
		ipc_listener_restart(il, "not listening");
		return;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1); /* length checked */
	il->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (il->fd == -1)
		return; /* out of descriptors: try next time */
	if (connect(il->fd, (struct sockaddr *)&sa, sizeof(sa)) == -1) {
		int e = errno;

		if (e == EAGAIN) { /* backlog full: busy, not dead */
			log_debug("%s: check: backlog full", il->what);
			ipc_listener_check_end(il);
			return;
		}
		ipc_listener_restart(il, strerror(e));
		return;
	}
	il->adds0 = atomic_load(&il->adds);
	/* 8 bytes always fit an empty unix socket buffer. */
	if (write(il->fd, hdr, sizeof(hdr)) != (ssize_t)sizeof(hdr)) {
		log_debug("%s: check: write: %s", il->what, strerror(errno));
		ipc_listener_check_end(il);
		return;
	}
	il->deadline = now + IPC_LISTENER_CHECK_TIMEOUT_MS;
	il->w = loop_fd_add(il->loop, il->fd, POLLIN, ipc_listener_read_cb, il);
	if (il->w == NULL)
		ipc_listener_check_end(il);
}

static void
ipc_listener_timer_cb(struct loop *l, uint64_t id, void *arg)
{
	ipc_listener_check(arg, loop_now(l));
}

struct ipc_listener *
ipc_listener_new(struct loop *loop, nng_socket sock, const char *url,
    uint16_t peer_proto, bool sends, const char *what, char *err, size_t errlen)
{
	struct ipc_listener *il;
	struct sockaddr_un sa;
	int rv;

	if (strncmp(url, "ipc://", 6) != 0 ||
	    strlen(url) - 6 >= sizeof(sa.sun_path)) {
		snprintf(err, errlen,
		    "%s: expected an ipc:// URL of at most "
		    "%zu bytes",
		    url, sizeof(sa.sun_path) - 1 + 6);
		return NULL;
	}
	if ((il = calloc(1, sizeof(*il))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	/* il is zeroed (calloc): the atomic starts at 0. */
	il->loop = loop;
	il->sock = sock;
	il->what = what;
	il->sends = sends;
	il->peer_proto = peer_proto;
	il->fd = -1;
	snprintf(il->url, sizeof(il->url), "%s", url);
	rv = nng_pipe_notify(
	    sock, NNG_PIPE_EV_ADD_POST, ipc_listener_add_cb, il);
	if (rv != 0) {
		snprintf(err, errlen, "nng_pipe_notify(%s): %s", url,
		    nng_strerror(rv));
		goto fail;
	}
	if (ipc_listener_start(il, err, errlen) == -1)
		goto fail;
	il->timer = loop_timer_add(loop, IPC_LISTENER_CHECK_MS,
	    IPC_LISTENER_CHECK_MS, ipc_listener_timer_cb, il);
	if (il->timer == 0) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	return il;
fail:
	(void)nng_pipe_notify(sock, NNG_PIPE_EV_ADD_POST, NULL, NULL);
	if (il->started)
		nng_listener_close(il->l);
	free(il);
	return NULL;
}

void
ipc_listener_free(struct ipc_listener *il)
{
	if (il == NULL)
		return;
	if (il->timer != 0)
		loop_timer_del(il->loop, il->timer);
	ipc_listener_check_end(il);
	free(il);
}

uint64_t
ipc_listener_restarts(const struct ipc_listener *il)
{
	return il->restarts;
}
