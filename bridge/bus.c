/*
 * bus.c - nng PUB (bus) and PULL (upstream) sockets of the bridge.
 *
 * The loop watches the PULL socket's RECVFD (an eventfd nng raises while
 * messages are queued; never read or closed here) and a private eventfd
 * that nng's pipe-notify thread writes after recording a removed pipe.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/pipeline0/pull.h>
#include <nng/protocol/pubsub0/pub.h>

#include "bus.h"
#include "clock.h"
#include "ipc_listener.h"
#include "log.h"

struct bus {
	struct loop *loop;
	struct bus_cbs cbs;
	nng_socket pub, pull;
	bool pub_open, pull_open;
	struct ipc_listener *lsn_bus, *lsn_up;
	struct log_limit bad_log; /* upstream envelopes dropped */
	struct loop_fd *w_up, *w_ev;
	int evfd;
	msgpack_sbuffer batch; /* pending bus envelopes */
	uint32_t batch_n;
	struct bus_stats stats;

	/* Written by nng's pipe-notify thread. */
	pthread_mutex_t mtx;
	uint32_t *gone; /* {mtx} removed pipe ids */
	size_t n_gone, cap_gone;
	bool gone_lost; /* {mtx} allocation failed: ids were lost */
};

static void
bus_err(char *err, size_t errlen, const char *call, const char *url, int rv)
{
	snprintf(err, errlen, "%s(%s): %s", call, url, nng_strerror(rv));
}

/* nng thread: record the pipe and wake the loop. */
static void
bus_pipe_cb(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	struct bus *b = arg;
	uint64_t one = 1;
	int id = nng_pipe_id(p);

	if (ev != NNG_PIPE_EV_REM_POST || id < 0)
		return;
	pthread_mutex_lock(&b->mtx);
	if (b->n_gone == b->cap_gone) {
		size_t cap = b->cap_gone == 0 ? 16 : b->cap_gone * 2;
		uint32_t *g = realloc(b->gone, cap * sizeof(*g));

		if (g == NULL) {
			b->gone_lost = true;
			pthread_mutex_unlock(&b->mtx);
			return;
		}
		b->gone = g;
		b->cap_gone = cap;
	}
	b->gone[b->n_gone++] = (uint32_t)id;
	pthread_mutex_unlock(&b->mtx);
	/* A full counter (EAGAIN) means the loop is already woken. */
	ssize_t n = write(b->evfd, &one, sizeof(one));
	(void)n;
}

static void
bus_ev_cb(struct loop *l, int fd, int revents, void *arg)
{
	struct bus *b = arg;
	uint64_t v;
	uint32_t *gone;
	size_t n;
	bool lost;

	ssize_t rn = read(fd, &v, sizeof(v)); /* resets the counter */

	(void)rn;
	pthread_mutex_lock(&b->mtx);
	gone = b->gone;
	n = b->n_gone;
	lost = b->gone_lost;
	b->gone = NULL;
	b->n_gone = b->cap_gone = 0;
	b->gone_lost = false;
	pthread_mutex_unlock(&b->mtx);
	if (lost)
		log_warnx("bus: pipe removals lost (out of memory); workers "
			  "will time out instead");
	for (size_t i = 0; i < n; i++)
		b->cbs.pipe_removed(b->cbs.arg, gone[i]);
	free(gone);
}

static void
bus_up_one(struct bus *b, nng_msg *m)
{
	struct env_reader r;
	struct up_env env;
	int pid = nng_pipe_id(nng_msg_get_pipe(m));
	uint64_t suppressed;
	int rc;

	b->stats.up_messages++;
	env_reader_init(&r, nng_msg_body(m), nng_msg_len(m));
	while ((rc = up_reader_next(&r, &env)) != ENV_END) {
		if (rc != ENV_OK) {
			/* A worker of another version, or a stranger on the
			 * socket: worth a warning, but at most one a second. */
			if (log_limit_pass(&b->bad_log, clock_mono_ms(), 1000,
				&suppressed))
				log_warnx("bus: upstream envelope dropped "
					  "pipe=%d err=%s suppressed=%llu",
				    pid, env_strerror(rc),
				    (unsigned long long)suppressed);
			else
				log_debug("bus: upstream envelope dropped "
					  "pipe=%d err=%s",
				    pid, env_strerror(rc));
			b->cbs.drop(b->cbs.arg, "bad_upstream");
			continue;
		}
		b->stats.up_envelopes++;
		b->cbs.recv(b->cbs.arg, pid < 0 ? 0 : (uint32_t)pid, &env);
	}
	env_reader_fini(&r);
}

static void
bus_up_cb(struct loop *l, int fd, int revents, void *arg)
{
	struct bus *b = arg;

	/* Bounded: the fd stays readable if more is queued. */
	for (int i = 0; i < BUS_DRAIN_MAX; i++) {
		nng_msg *m;
		int rv = nng_recvmsg(b->pull, &m, NNG_FLAG_NONBLOCK);

		if (rv == NNG_EAGAIN)
			break;
		if (rv != 0) {
			log_warnx("bus: nng_recvmsg(up): %s", nng_strerror(rv));
			break;
		}
		bus_up_one(b, m);
		nng_msg_free(m);
	}
}

static void
bus_flush_hook(struct loop *l, void *arg)
{
	struct bus *b = arg;

	bus_flush(b);
	ipc_listener_idle(b->lsn_bus, loop_now(l));
}

/* The PUB socket towards the workers and its listener. */
static int
bus_open_pub(struct bus *b, const char *url, char *err, size_t errlen)
{
	int rv;

	if ((rv = nng_pub0_open(&b->pub)) != 0) {
		bus_err(err, errlen, "nng_pub0_open", url, rv);
		return -1;
	}
	b->pub_open = true;
	if ((rv = nng_socket_set_int(b->pub, NNG_OPT_SENDBUF, BUS_SENDBUF)) !=
	    0) {
		bus_err(
		    err, errlen, "nng_socket_set_int(send-buffer)", url, rv);
		return -1;
	}
	b->lsn_bus = ipc_listener_new(b->loop, b->pub, url,
	    IPC_LISTENER_PEER_SUB, true, "bus", err, errlen);
	return b->lsn_bus != NULL ? 0 : -1;
}

/* The PULL socket from the workers, its listener and its watchers. */
static int
bus_open_pull(struct bus *b, const char *url, char *err, size_t errlen)
{
	int rv, recvfd;

	if ((rv = nng_pull0_open(&b->pull)) != 0) {
		bus_err(err, errlen, "nng_pull0_open", url, rv);
		return -1;
	}
	b->pull_open = true;
	/* An oversize message closes the pipe; the worker redials. */
	rv = nng_socket_set_size(b->pull, NNG_OPT_RECVMAXSZ, BUS_RECVMAXSZ);
	if (rv != 0) {
		bus_err(
		    err, errlen, "nng_socket_set_size(recv-size-max)", url, rv);
		return -1;
	}
	rv = nng_pipe_notify(b->pull, NNG_PIPE_EV_REM_POST, bus_pipe_cb, b);
	if (rv != 0) {
		bus_err(err, errlen, "nng_pipe_notify", url, rv);
		return -1;
	}
	b->lsn_up = ipc_listener_new(b->loop, b->pull, url,
	    IPC_LISTENER_PEER_PUSH, false, "up", err, errlen);
	if (b->lsn_up == NULL)
		return -1;
	if ((rv = nng_socket_get_int(b->pull, NNG_OPT_RECVFD, &recvfd)) != 0) {
		bus_err(err, errlen, "nng_socket_get_int(recv-fd)", url, rv);
		return -1;
	}
	b->w_up = loop_fd_add(b->loop, recvfd, POLLIN, bus_up_cb, b);
	if (b->w_up == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

struct bus *
bus_open(struct loop *loop, const char *bus_url, const char *up_url,
    const struct bus_cbs *cbs, char *err, size_t errlen)
{
	struct bus *b = calloc(1, sizeof(*b));

	if (b == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	b->loop = loop;
	b->cbs = *cbs;
	msgpack_sbuffer_init(&b->batch);
	pthread_mutex_init(&b->mtx, NULL);
	b->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (b->evfd == -1) {
		snprintf(err, errlen, "eventfd: %s", strerror(errno));
		goto fail;
	}
	if (bus_open_pub(b, bus_url, err, errlen) == -1 ||
	    bus_open_pull(b, up_url, err, errlen) == -1)
		goto fail;
	b->w_ev = loop_fd_add(loop, b->evfd, POLLIN, bus_ev_cb, b);
	if (b->w_ev == NULL || loop_hook_add(loop, bus_flush_hook, b) == -1) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	return b;
fail:
	bus_close(b);
	return NULL;
}

void
bus_close(struct bus *b)
{
	if (b == NULL)
		return;
	if (b->pub_open)
		bus_flush(b);
	if (b->w_up != NULL)
		loop_fd_del(b->w_up);
	if (b->w_ev != NULL)
		loop_fd_del(b->w_ev);
	loop_hook_del(b->loop, bus_flush_hook, b);
	/* nng_close waits for the pipe callbacks; the mutex, the eventfd and
	 * the listeners' counters must outlive it. */
	if (b->pull_open)
		nng_close(b->pull);
	if (b->pub_open)
		nng_close(b->pub);
	ipc_listener_free(b->lsn_bus);
	ipc_listener_free(b->lsn_up);
	if (b->evfd != -1)
		close(b->evfd);
	pthread_mutex_destroy(&b->mtx);
	free(b->gone);
	msgpack_sbuffer_destroy(&b->batch);
	free(b);
}

void
bus_flush(struct bus *b)
{
	nng_msg *m;
	int rv;

	if (b->batch_n == 0)
		return;
	rv = nng_msg_alloc(&m, b->batch.size);
	if (rv == 0) {
		memcpy(nng_msg_body(m), b->batch.data, b->batch.size);
		rv = nng_sendmsg(b->pub, m, NNG_FLAG_NONBLOCK);
		ipc_listener_sent(b->lsn_bus, clock_mono_ms());
		if (rv != 0)
			nng_msg_free(m); /* nng owns it only on success */
	}
	if (rv != 0) {
		/* DROP: the whole batch; workers see it as a bus gap. */
		b->stats.bus_send_errors++;
		log_warnx("bus: nng_sendmsg(bus): %s envelopes=%u",
		    nng_strerror(rv), b->batch_n);
	} else {
		b->stats.bus_messages++;
	}
	msgpack_sbuffer_clear(&b->batch);
	b->batch_n = 0;
}

static int
bus_appended(struct bus *b, size_t before, int rc)
{
	if (rc != 0) {
		b->batch.size = before; /* undo a partial envelope */
		return -1;
	}
	b->batch_n++;
	b->stats.bus_envelopes++;
	if (b->batch_n >= BUS_BATCH_MAX || b->batch.size >= BUS_BATCH_BYTES)
		bus_flush(b);
	return 0;
}

int
bus_send_msg(struct bus *b, const struct bus_msg *m)
{
	size_t before = b->batch.size;

	return bus_appended(b, before, bus_encode_msg(&b->batch, m));
}

int
bus_send_ack(struct bus *b, const struct bus_ack *a)
{
	size_t before = b->batch.size;

	return bus_appended(b, before, bus_encode_ack(&b->batch, a));
}

int
bus_send_heartbeat(struct bus *b, const struct bus_heartbeat *hb)
{
	size_t before = b->batch.size;

	return bus_appended(b, before, bus_encode_heartbeat(&b->batch, hb));
}

int
bus_send_range(struct bus *b, const struct bus_range *r)
{
	size_t before = b->batch.size;

	return bus_appended(b, before, bus_encode_range(&b->batch, r));
}

void
bus_stats(const struct bus *b, struct bus_stats *out)
{
	*out = b->stats;
	out->listener_restarts = ipc_listener_restarts(b->lsn_bus) +
				 ipc_listener_restarts(b->lsn_up);
}
