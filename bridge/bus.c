/*
 * bus.c - nng PUB (one bus stream per worker slot) and PULL (upstream)
 * sockets of the bridge.
 *
 * Streams are kept in an array indexed by slot and on a list of open
 * ones; a stream with a pending batch is also on the dirty list, so the
 * per-iteration flush touches only streams that have something to send.
 *
 * The loop watches the PULL socket's RECVFD (an eventfd nng raises while
 * messages are queued; never read or closed here) and a private eventfd
 * that nng's pipe-notify thread writes after recording a removed pipe.
 */
#include <errno.h>
#include <inttypes.h>
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

/* One slot's stream: its socket, listener, batch and MSG sequence. */
struct bus_stream {
	uint32_t slot;
	nng_socket pub;
	bool pub_open;
	struct ipc_listener *lsn;
	msgpack_sbuffer batch; /* pending envelopes */
	uint32_t batch_n;
	uint64_t last_seq;
	bool dirty;                    /* on b->dirty */
	struct bus_stream *next_dirty; /* {dirty} */
};

struct bus {
	struct loop *loop;
	struct bus_cbs cbs;
	char bus_url[256]; /* the node's bus.ipc URL; streams derive theirs */
	struct bus_stream *slots[BUS_SLOTS_MAX + 1]; /* [0] unused */
	uint32_t open[BUS_SLOTS_MAX]; /* slots with a stream, in open order */
	uint32_t n_open;
	struct bus_stream *dirty; /* streams with a pending batch */
	nng_socket pull;
	bool pull_open;
	struct ipc_listener *lsn_up;
	struct log_limit bad_log;  /* upstream envelopes dropped */
	struct log_limit open_log; /* slot streams that failed to open */
	struct loop_fd *w_up, *w_ev;
	int evfd;
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

	uint64_t now = loop_now(l);

	bus_flush(b);
	for (uint32_t i = 0; i < b->n_open; i++)
		ipc_listener_idle(b->slots[b->open[i]]->lsn, now);
}

static void
bus_stream_free(struct bus_stream *st)
{
	if (st == NULL)
		return;
	/* The listener's pipe callback must be gone before it is freed. */
	if (st->pub_open)
		nng_close(st->pub);
	ipc_listener_free(st->lsn);
	msgpack_sbuffer_destroy(&st->batch);
	free(st);
}

/* Slot's PUB socket and its listener. */
static struct bus_stream *
bus_stream_new(struct bus *b, uint32_t slot, char *err, size_t errlen)
{
	struct bus_stream *st = calloc(1, sizeof(*st));
	char url[sizeof(b->bus_url) + 16];
	int rv;

	if (st == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	st->slot = slot;
	msgpack_sbuffer_init(&st->batch);
	if (bus_slot_url(b->bus_url, slot, url, sizeof(url)) == -1) {
		snprintf(err, errlen, "bus url %s: cannot derive slot %" PRIu32,
		    b->bus_url, slot);
		goto fail;
	}
	if ((rv = nng_pub0_open(&st->pub)) != 0) {
		bus_err(err, errlen, "nng_pub0_open", url, rv);
		goto fail;
	}
	st->pub_open = true;
	if ((rv = nng_socket_set_int(st->pub, NNG_OPT_SENDBUF, BUS_SENDBUF)) !=
	    0) {
		bus_err(
		    err, errlen, "nng_socket_set_int(send-buffer)", url, rv);
		goto fail;
	}
	st->lsn = ipc_listener_new(b->loop, st->pub, url, IPC_LISTENER_PEER_SUB,
	    true, "bus", err, errlen);
	if (st->lsn == NULL)
		goto fail;
	return st;
fail:
	bus_stream_free(st);
	return NULL;
}

static int
bus_stream_open(struct bus *b, uint32_t slot, char *err, size_t errlen)
{
	struct bus_stream *st;

	if (slot == 0 || slot > BUS_SLOTS_MAX) {
		snprintf(err, errlen, "slot %" PRIu32 " out of range 1..%d",
		    slot, BUS_SLOTS_MAX);
		return -1;
	}
	if (b->slots[slot] != NULL)
		return 0;
	if ((st = bus_stream_new(b, slot, err, errlen)) == NULL)
		return -1;
	b->slots[slot] = st;
	b->open[b->n_open++] = slot;
	return 0;
}

int
bus_slot_open(struct bus *b, uint32_t slot)
{
	char err[512];

	if (slot >= 1 && slot <= BUS_SLOTS_MAX && b->slots[slot] != NULL)
		return 0;
	if (bus_stream_open(b, slot, err, sizeof(err)) == -1) {
		uint64_t suppressed;

		/* Tried again at the worker's next envelope: say it once a
		 * minute at most. */
		if (log_limit_pass(
			&b->open_log, clock_mono_ms(), 60000, &suppressed))
			log_warnx("bus: stream of slot %" PRIu32
				  " not opened: %s suppressed=%llu",
			    slot, err, (unsigned long long)suppressed);
		return -1;
	}
	log_info("bus: stream of slot %" PRIu32 " opened", slot);
	return 0;
}

bool
bus_slot_is_open(const struct bus *b, uint32_t slot)
{
	return slot >= 1 && slot <= BUS_SLOTS_MAX && b->slots[slot] != NULL;
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
    uint32_t slots, const struct bus_cbs *cbs, char *err, size_t errlen)
{
	struct bus *b = calloc(1, sizeof(*b));

	if (b == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	b->loop = loop;
	b->cbs = *cbs;
	pthread_mutex_init(&b->mtx, NULL);
	b->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (b->evfd == -1) {
		snprintf(err, errlen, "eventfd: %s", strerror(errno));
		goto fail;
	}
	if (snprintf(b->bus_url, sizeof(b->bus_url), "%s", bus_url) >=
	    (int)sizeof(b->bus_url)) {
		snprintf(err, errlen, "bus url too long: %s", bus_url);
		goto fail;
	}
	if (slots > BUS_SLOTS_MAX)
		slots = BUS_SLOTS_MAX;
	for (uint32_t s = 1; s <= slots; s++)
		if (bus_stream_open(b, s, err, errlen) == -1)
			goto fail;
	if (bus_open_pull(b, up_url, err, errlen) == -1)
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
	for (uint32_t i = 0; i < b->n_open; i++)
		bus_stream_free(b->slots[b->open[i]]);
	ipc_listener_free(b->lsn_up);
	if (b->evfd != -1)
		close(b->evfd);
	pthread_mutex_destroy(&b->mtx);
	free(b->gone);
	free(b);
}

/* Sends st's pending batch as one nng message. */
static void
bus_stream_flush(struct bus *b, struct bus_stream *st)
{
	nng_msg *m;
	int rv;

	if (st->batch_n == 0)
		return;
	rv = nng_msg_alloc(&m, st->batch.size);
	if (rv == 0) {
		memcpy(nng_msg_body(m), st->batch.data, st->batch.size);
		rv = nng_sendmsg(st->pub, m, NNG_FLAG_NONBLOCK);
		ipc_listener_sent(st->lsn, clock_mono_ms());
		if (rv != 0)
			nng_msg_free(m); /* nng owns it only on success */
	}
	if (rv != 0) {
		/* DROP: the whole batch; the slot's workers see a bus gap. */
		b->stats.bus_send_errors++;
		log_warnx("bus: nng_sendmsg(bus slot %" PRIu32
			  "): %s envelopes=%u",
		    st->slot, nng_strerror(rv), st->batch_n);
	} else {
		b->stats.bus_messages++;
	}
	msgpack_sbuffer_clear(&st->batch);
	st->batch_n = 0;
}

void
bus_flush(struct bus *b)
{
	struct bus_stream *st;

	while ((st = b->dirty) != NULL) {
		b->dirty = st->next_dirty;
		st->next_dirty = NULL;
		st->dirty = false;
		bus_stream_flush(b, st);
	}
}

static struct bus_stream *
bus_stream(const struct bus *b, uint32_t slot)
{
	return slot >= 1 && slot <= BUS_SLOTS_MAX ? b->slots[slot] : NULL;
}

static int
bus_appended(struct bus *b, struct bus_stream *st, size_t before, int rc)
{
	if (rc != 0) {
		st->batch.size = before; /* undo a partial envelope */
		return -1;
	}
	st->batch_n++;
	b->stats.bus_envelopes++;
	if (st->batch_n >= BUS_BATCH_MAX || st->batch.size >= BUS_BATCH_BYTES) {
		bus_stream_flush(b, st); /* stays on the dirty list: harmless */
	} else if (!st->dirty) {
		st->dirty = true;
		st->next_dirty = b->dirty;
		b->dirty = st;
	}
	return 0;
}

static int
bus_stream_msg(struct bus *b, struct bus_stream *st, struct bus_msg *m)
{
	size_t before = st->batch.size;

	m->seq = st->last_seq + 1;
	if (bus_appended(b, st, before, bus_encode_msg(&st->batch, m)) == -1)
		return -1;
	st->last_seq = m->seq;
	return 0;
}

int
bus_send_msg(struct bus *b, uint32_t slot, struct bus_msg *m)
{
	struct bus_stream *st = bus_stream(b, slot);

	return st != NULL ? bus_stream_msg(b, st, m) : -1;
}

int
bus_send_msg_all(struct bus *b, struct bus_msg *m)
{
	int n = 0;
	bool failed = false;

	for (uint32_t i = 0; i < b->n_open; i++) {
		if (bus_stream_msg(b, b->slots[b->open[i]], m) == 0)
			n++;
		else
			failed = true;
	}
	return failed ? -1 : n;
}

int
bus_send_ack(struct bus *b, const struct bus_ack *a)
{
	struct bus_stream *st = bus_stream(b, a->slot);
	size_t before;

	if (st == NULL)
		return -1;
	before = st->batch.size;
	return bus_appended(b, st, before, bus_encode_ack(&st->batch, a));
}

int
bus_send_heartbeat(struct bus *b, struct bus_heartbeat *hb)
{
	int n = 0;

	for (uint32_t i = 0; i < b->n_open; i++) {
		struct bus_stream *st = b->slots[b->open[i]];
		size_t before = st->batch.size;

		hb->last_seq = st->last_seq;
		if (bus_appended(b, st, before,
			bus_encode_heartbeat(&st->batch, hb)) == 0)
			n++;
	}
	return n;
}

int
bus_send_worker(
    struct bus *b, uint32_t slot, bus_encode_fn *enc, const void *env)
{
	struct bus_stream *st = bus_stream(b, slot);
	size_t before;

	if (st == NULL)
		return -1;
	before = st->batch.size;
	return bus_appended(b, st, before, enc(&st->batch, env));
}

uint64_t
bus_slot_last_seq(const struct bus *b, uint32_t slot)
{
	struct bus_stream *st = bus_stream(b, slot);

	return st != NULL ? st->last_seq : 0;
}

static int
bus_encode_range_fn(msgpack_sbuffer *out, const void *env)
{
	return bus_encode_range(out, env);
}

int
bus_send_range(struct bus *b, const struct bus_range *r)
{
	return bus_send_worker(b, r->slot, bus_encode_range_fn, r);
}

void
bus_stats(const struct bus *b, struct bus_stats *out)
{
	*out = b->stats;
	out->listener_restarts = ipc_listener_restarts(b->lsn_up);
	out->msg_seqs = 0;
	for (uint32_t i = 0; i < b->n_open; i++) {
		struct bus_stream *st = b->slots[b->open[i]];

		out->listener_restarts += ipc_listener_restarts(st->lsn);
		out->msg_seqs += st->last_seq;
	}
	out->streams = b->n_open;
}
