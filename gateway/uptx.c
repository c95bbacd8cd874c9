/*
 * uptx.c - the worker's PUSH socket to the bridge and its bounded queue
 * (see uptx.h).
 *
 * Threads: nng runs its own threads; the only code of ours they run is
 * uptx_pipe_cb(), which sets an atomic flag and wakes the lws loop. All
 * other code runs in the worker loop.
 */
#include "uptx.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <libwebsockets.h>
#include <nng/protocol/pipeline0/push.h>

#include "clock.h"
#include "fanout.h"
#include "log.h"
#include "worker.h"

/* Queue bounds: envelopes beyond them are dropped and counted. */
#define UPTX_Q_SLOTS 4096
#define UPTX_Q_MAX_BYTES (8u * 1024 * 1024)
/* Queued envelopes are packed into nng messages of up to this size. */
#define UPTX_BATCH_BYTES (64u * 1024)
/* PUSH socket buffer (messages) before our own queue takes over. */
#define UPTX_PUSH_SENDBUF 1024
#define UPTX_RECONN_MIN_MS 100
#define UPTX_RECONN_MAX_MS 1000

struct uptx_item {
	nng_msg *m;
	uint32_t n_env;
};

struct uptx {
	struct worker *w;
	nng_socket push;
	bool push_open;
	nng_dialer dialer;
	uint64_t dialed_ms;   /* when dialer was created */
	atomic_bool up_added; /* set by an nng thread: the PUSH pipe is up */
	/* The id of the newest PUSH pipe while it is open, else 0 (nng
	 * threads keep it). Not a count: nng also reports the removal of
	 * pipes it never reported added (refused before ADD_POST). */
	atomic_uint live_pipe;
	uint64_t no_pipe_since; /* loop: when the last pipe went, or 0 */
	/* The loop to wake from nng threads; NULL once the loop is gone. */
	_Atomic(struct lws_context *) wake_ctx;

	struct up_worker me;
	msgpack_sbuffer sb;  /* the envelope being sent */
	struct uptx_item *q; /* ring of UPTX_Q_SLOTS */
	size_t q_head, q_count, q_bytes;
	lws_sorted_usec_list_t retry_sul;
	struct log_limit drop_log;
};

/* nng thread: the PUSH pipe to the bridge was added. */
static void
uptx_pipe_cb(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	struct uptx *u = arg;
	struct lws_context *ctx;

	unsigned id = (unsigned)nng_pipe_id(p);

	if (ev == NNG_PIPE_EV_REM_POST) {
		/* Only the newest pipe's end leaves us without one. */
		atomic_compare_exchange_strong(&u->live_pipe, &id, 0);
		return;
	}
	if (ev != NNG_PIPE_EV_ADD_POST)
		return;
	atomic_store(&u->live_pipe, id);
	atomic_store(&u->up_added, true);
	ctx = atomic_load(&u->wake_ctx);
	if (ctx != NULL)
		lws_cancel_service(ctx); /* thread-safe by contract */
}

int
uptx_dial(nng_socket s, const char *url, nng_dialer *d)
{
	int rv;

	nng_socket_set_ms(s, NNG_OPT_RECONNMINT, UPTX_RECONN_MIN_MS);
	nng_socket_set_ms(s, NNG_OPT_RECONNMAXT, UPTX_RECONN_MAX_MS);
	rv = nng_dial(s, url, d, NNG_FLAG_NONBLOCK);
	if (rv != 0) {
		log_errx("nng_dial(%s): %s", url, nng_strerror(rv));
		return -1;
	}
	return 0;
}

struct uptx *
uptx_new(struct worker *w)
{
	struct uptx *u = calloc(1, sizeof(*u));
	char url[CONF_RUNTIME_DIR_MAX + 32];
	int rv;

	if (u == NULL)
		return NULL;
	u->w = w;
	u->me.slot = w->slot;
	u->me.gen = w->gen;
	u->me.pid = (uint32_t)w->pid;
	atomic_init(&u->up_added, false);
	atomic_init(&u->live_pipe, 0);
	atomic_init(&u->wake_ctx, w->ctx);
	msgpack_sbuffer_init(&u->sb);
	u->q = calloc(UPTX_Q_SLOTS, sizeof(*u->q));
	if (u->q == NULL)
		goto fail;
	if ((rv = nng_push0_open(&u->push)) != 0) {
		log_errx("nng_push0_open: %s", nng_strerror(rv));
		goto fail;
	}
	u->push_open = true;
	if ((rv = nng_socket_set_int(
		 u->push, NNG_OPT_SENDBUF, UPTX_PUSH_SENDBUF)) != 0 ||
	    (rv = nng_pipe_notify(
		 u->push, NNG_PIPE_EV_ADD_POST, uptx_pipe_cb, u)) != 0 ||
	    (rv = nng_pipe_notify(
		 u->push, NNG_PIPE_EV_REM_POST, uptx_pipe_cb, u)) != 0) {
		log_errx("nng_socket_set(push): %s", nng_strerror(rv));
		goto fail;
	}
	conf_up_url(w->conf, url, sizeof(url));
	if (uptx_dial(u->push, url, &u->dialer) == -1)
		goto fail;
	u->dialed_ms = clock_mono_ms();
	return u;
fail:
	uptx_free(u);
	return NULL;
}

void
uptx_detach(struct uptx *u)
{
	if (u == NULL)
		return;
	if (u->push_open) {
		nng_pipe_notify(u->push, NNG_PIPE_EV_ADD_POST, NULL, NULL);
		nng_pipe_notify(u->push, NNG_PIPE_EV_REM_POST, NULL, NULL);
	}
	atomic_store(&u->wake_ctx, NULL);
}

void
uptx_free(struct uptx *u)
{
	size_t i;

	if (u == NULL)
		return;
	if (u->push_open)
		nng_close(u->push);
	if (u->q != NULL) {
		for (i = 0; i < u->q_count; i++)
			nng_msg_free(u->q[(u->q_head + i) % UPTX_Q_SLOTS].m);
		free(u->q);
	}
	msgpack_sbuffer_destroy(&u->sb);
	free(u);
}

bool
uptx_pipeless(struct uptx *u, uint64_t now_ms, uint64_t for_ms)
{
	if (atomic_load(&u->live_pipe) != 0) {
		u->no_pipe_since = 0;
		return false;
	}
	if (u->no_pipe_since == 0)
		u->no_pipe_since = now_ms;
	return now_ms - u->no_pipe_since >= for_ms;
}

bool
uptx_pipe_added(struct uptx *u)
{
	if (u == NULL || !atomic_exchange(&u->up_added, false))
		return false;
	log_info("upstream pipe to the bridge connected");
	return true;
}

/*
 * The upstream twin of the bus watchdog (busrx_tick()): the bridge's
 * heartbeat flows, so the bridge is alive, but it does not hear us: the
 * PUSH dialer is dead or sits on a dead connection. Redial it, at most
 * once per FANOUT_ACK_TIMEOUT_MS; the new pipe brings a full INTEREST_SYNC.
 */
void
uptx_redial(struct uptx *u, uint64_t now_ms, const char *why)
{
	char url[CONF_RUNTIME_DIR_MAX + 32];
	nng_dialer d;

	if (now_ms - u->dialed_ms < FANOUT_ACK_TIMEOUT_MS)
		return;
	log_warnx(
	    "upstream: %s while the bridge is up: redialling upstream", why);
	conf_up_url(u->w->conf, url, sizeof(url));
	nng_dialer_close(u->dialer);
	if (uptx_dial(u->push, url, &d) == 0)
		u->dialer = d;
	u->dialed_ms = now_ms;
}

/* ---- the queue ---- */

static void
uptx_count_drop(struct uptx *u, uint64_t n, const char *why)
{
	uint64_t held;

	u->w->c.drop_up_queue += n;
	if (log_limit_pass(&u->drop_log, clock_mono_ms(), 1000, &held))
		log_warnx(
		    "upstream envelope dropped: %s (drop_up_queue=%" PRIu64
		    ", %" PRIu64 " such lines held back)",
		    why, u->w->c.drop_up_queue, held);
}

static void
uptx_retry_cb(lws_sorted_usec_list_t *sul)
{
	struct uptx *u = lws_container_of(sul, struct uptx, retry_sul);

	uptx_flush(u);
}

static void
uptx_arm_retry(struct uptx *u)
{
	if (u->q_count > 0 && u->w->ctx != NULL)
		lws_sul_schedule(u->w->ctx, 0, &u->retry_sul, uptx_retry_cb,
		    UPTX_RETRY_MS * LWS_US_PER_MS);
}

size_t
uptx_flush(struct uptx *u)
{
	int rv;

	while (u->q_count > 0) {
		struct uptx_item *it = &u->q[u->q_head];
		size_t len = nng_msg_len(it->m);

		rv = nng_sendmsg(u->push, it->m, NNG_FLAG_NONBLOCK);
		if (rv == NNG_EAGAIN)
			break;
		if (rv != 0) {
			/* DROP: counted as drop_up_queue */
			nng_msg_free(it->m);
			uptx_count_drop(u, it->n_env, nng_strerror(rv));
		}
		/* On success nng owns the message. */
		it->m = NULL;
		u->q_head = (u->q_head + 1) % UPTX_Q_SLOTS;
		u->q_count--;
		u->q_bytes -= len;
	}
	if (u->q_count > 0)
		uptx_arm_retry(u);
	return u->q_count;
}

/* Sends the envelope in u->sb now, or queues it. Clears u->sb. */
static void
uptx_submit(struct uptx *u)
{
	const char *data = u->sb.data;
	size_t len = u->sb.size;
	struct uptx_item *tail;
	nng_msg *m;
	int rv;

	if (u->q_count > 0) {
		tail = &u->q[(u->q_head + u->q_count - 1) % UPTX_Q_SLOTS];
		if (u->q_bytes + len > UPTX_Q_MAX_BYTES) {
			uptx_count_drop(u, 1, "queue full"); /* DROP */
			goto out;
		}
		if (nng_msg_len(tail->m) + len <= UPTX_BATCH_BYTES &&
		    nng_msg_append(tail->m, data, len) == 0) {
			tail->n_env++;
			u->q_bytes += len;
			goto out;
		}
		if (u->q_count == UPTX_Q_SLOTS) {
			uptx_count_drop(u, 1, "queue full"); /* DROP */
			goto out;
		}
	}
	if (nng_msg_alloc(&m, 0) != 0 || nng_msg_append(m, data, len) != 0) {
		uptx_count_drop(u, 1, "out of memory"); /* DROP */
		goto out;
	}
	if (u->q_count == 0) {
		rv = nng_sendmsg(u->push, m, NNG_FLAG_NONBLOCK);
		if (rv == 0)
			goto out;
		if (rv != NNG_EAGAIN) {
			nng_msg_free(m);
			uptx_count_drop(u, 1, nng_strerror(rv)); /* DROP */
			goto out;
		}
	}
	tail = &u->q[(u->q_head + u->q_count) % UPTX_Q_SLOTS];
	tail->m = m;
	tail->n_env = 1;
	u->q_count++;
	u->q_bytes += len;
	uptx_arm_retry(u);
out:
	msgpack_sbuffer_clear(&u->sb);
}

static struct env_str
uptx_estr(const char *p, size_t len)
{
	struct env_str s = {p, (uint32_t)len};

	return s;
}

void
uptx_interest(struct uptx *u, enum up_kind kind, uint64_t req_id,
    const char *addr, size_t len)
{
	struct up_interest i = {req_id, uptx_estr(addr, len)};

	if (up_encode_interest(&u->sb, &u->me, kind, &i) == -1) {
		uptx_count_drop(u, 1, "interest not encodable");
		return;
	}
	uptx_submit(u);
}

void
uptx_range(struct uptx *u, uint64_t req_id, const char *addr, size_t addr_len,
    const char *since, size_t since_len, uint32_t limit)
{
	struct up_range r = {req_id, uptx_estr(addr, addr_len),
	    uptx_estr(since, since_len), limit};

	if (up_encode_range(&u->sb, &u->me, &r) == -1) {
		uptx_count_drop(u, 1, "range request not encodable");
		return;
	}
	uptx_submit(u);
}

void
uptx_publish(struct uptx *u, const char *to, size_t to_len, const char *from,
    size_t from_len, const char *data, size_t data_len)
{
	struct up_publish p;

	memset(&p, 0, sizeof(p));
	p.to = uptx_estr(to, to_len);
	p.from = uptx_estr(from, from_len);
	p.data = uptx_estr(data, data_len);
	if (up_encode_publish(&u->sb, &u->me, &p) == -1) {
		uptx_count_drop(u, 1, "publish not encodable");
		return;
	}
	uptx_submit(u);
}

void
uptx_send(struct uptx *u, const char *user, size_t user_len, const char *conn,
    const char *data, size_t data_len)
{
	struct up_send s;

	s.user = uptx_estr(user, user_len);
	s.conn = uptx_estr(conn, strlen(conn));
	s.data = uptx_estr(data, data_len);
	if (up_encode_send(&u->sb, &u->me, &s) == -1) {
		uptx_count_drop(u, 1, "send not encodable");
		return;
	}
	uptx_submit(u);
}

void
uptx_event(struct uptx *u, const char *type, const char *user, size_t user_len,
    const char *conn, const char *reason)
{
	struct up_event e;

	e.type = uptx_estr(type, strlen(type));
	e.user = uptx_estr(user, user_len);
	e.conn = uptx_estr(conn, strlen(conn));
	e.reason = reason != NULL ? uptx_estr(reason, strlen(reason))
				  : uptx_estr(NULL, 0);
	if (up_encode_event(&u->sb, &u->me, &e) == -1) {
		uptx_count_drop(u, 1, "event not encodable");
		return;
	}
	uptx_submit(u);
}

void
uptx_bye(struct uptx *u)
{
	if (up_encode_bye(&u->sb, &u->me) == -1)
		return;
	uptx_submit(u);
}

void
uptx_counters(struct uptx *u, const struct up_counters *uc)
{
	if (up_encode_counters(&u->sb, &u->me, uc) == -1)
		return;
	uptx_submit(u);
}

/* ---- INTEREST_SYNC ---- */

struct uptx_sync_build {
	struct env_str *addrs;
	struct up_counter *users;
	uint32_t n_addrs, n_users;
};

static void
uptx_sync_collect(void *arg, struct fan_entry *e)
{
	struct uptx_sync_build *b = arg;

	if (e->state != FAN_ACTIVE)
		return;
	b->addrs[b->n_addrs++] = uptx_estr(e->addr, e->addrlen);
	if (e->live > 0 && e->addrlen > 5 && memcmp(e->addr, "user:", 5) == 0) {
		b->users[b->n_users].name =
		    uptx_estr(e->addr + 5, e->addrlen - 5);
		b->users[b->n_users].value = e->live;
		b->n_users++;
	}
}

void
uptx_sync(struct uptx *u, struct fanout *fan, uint64_t epoch)
{
	size_t n = fanout_count(fan);
	struct uptx_sync_build b;
	struct up_sync s;

	memset(&b, 0, sizeof(b));
	b.addrs = calloc(n + 1, sizeof(*b.addrs));
	b.users = calloc(n + 1, sizeof(*b.users));
	if (b.addrs == NULL || b.users == NULL) {
		log_warnx("INTEREST_SYNC: out of memory");
		goto out;
	}
	fanout_foreach(fan, uptx_sync_collect, &b);
	memset(&s, 0, sizeof(s));
	s.epoch = epoch;
	s.n_addrs = b.n_addrs;
	s.addrs = b.addrs;
	s.n_users = b.n_users;
	s.users = b.users;
	if (up_encode_sync(&u->sb, &u->me, &s) == -1) {
		uptx_count_drop(u, 1, "sync not encodable");
		goto out;
	}
	uptx_submit(u);
	log_info("INTEREST_SYNC epoch=%" PRIx64 " addrs=%" PRIu32
		 " users=%" PRIu32 " pending=%zu",
	    epoch, b.n_addrs, b.n_users, fanout_pending_count(fan));
	fanout_resend_pending(fan, clock_mono_ms());
	uptx_flush(u);
out:
	free(b.addrs);
	free(b.users);
}
