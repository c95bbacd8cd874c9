/*
 * link.c - the worker's nng sockets to the bridge (see link.h).
 *
 * Threads: nng runs its own threads; the only code of ours they run is
 * link_pipe_cb(), which sets an atomic flag and wakes the lws loop. All
 * other code runs in the worker loop.
 */
#include "link.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libwebsockets.h>
#include <nng/nng.h>
#include <nng/protocol/pipeline0/push.h>
#include <nng/protocol/pubsub0/sub.h>

#include "addr.h"
#include "clock.h"
#include "conn.h"
#include "fanout.h"
#include "frame.h"
#include "hsgate.h"
#include "log.h"
#include "mfig.h"
#include "worker.h"

/* Upstream queue bounds: envelopes beyond them are dropped and counted. */
#define LINK_UPQ_SLOTS 4096
#define LINK_UPQ_MAX_BYTES (8u * 1024 * 1024)
/* Queued envelopes are packed into nng messages of up to this size. */
#define LINK_BATCH_BYTES (64u * 1024)
/* PUSH socket buffer (messages) before our own queue takes over. */
#define LINK_PUSH_SENDBUF 1024
#define LINK_SUB_RECVBUF 8192
#define LINK_RECONN_MIN_MS 100
#define LINK_RECONN_MAX_MS 1000
/* Heartbeats the bus may miss before its dialer is recreated. */
#define LINK_BUS_SILENT_HBS 3

struct upq_item {
	nng_msg *m;
	uint32_t n_env;
};

struct link {
	struct worker *w;
	nng_socket sub, push;
	bool sub_open, push_open;
	nng_dialer sub_dialer, push_dialer;
	uint64_t sub_dialed_ms;  /* when sub_dialer was created */
	uint64_t push_dialed_ms; /* when push_dialer was created */
	bool bus_silent;         /* the silence was logged */
	atomic_bool up_added;    /* set by an nng thread: the PUSH pipe is up */
	/* The loop to wake from nng threads; NULL once the loop is gone. */
	_Atomic(struct lws_context *) wake_ctx;

	/* down */
	struct env_reader rd;
	nng_msg *rx_msg; /* being read by rd; kept across wakeups */
	lws_sorted_usec_list_t rx_sul;
	uint64_t epoch;    /* 0: none seen yet */
	uint64_t last_seq; /* valid when seq_known */
	bool seq_known;
	uint64_t last_hb_ms;
	bool redis_up;
	bool node_known;
	char node[CONF_NODE_ID_MAX];

	/* up */
	struct up_worker me;
	msgpack_sbuffer sb; /* the envelope being sent */
	struct upq_item *q; /* ring of LINK_UPQ_SLOTS */
	size_t q_head, q_count, q_bytes;
	lws_sorted_usec_list_t retry_sul;
	uint64_t last_drop_log_ms;
};

static void link_resync(struct link *l);

/* nng thread: the PUSH pipe to the bridge was added. */
static void
link_pipe_cb(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	struct link *l = arg;
	struct lws_context *ctx;

	(void)p;
	if (ev != NNG_PIPE_EV_ADD_POST)
		return;
	atomic_store(&l->up_added, true);
	ctx = atomic_load(&l->wake_ctx);
	if (ctx != NULL)
		lws_cancel_service(ctx); /* thread-safe by contract */
}

static int
link_dial(nng_socket s, const char *url, nng_dialer *d)
{
	int rv;

	nng_socket_set_ms(s, NNG_OPT_RECONNMINT, LINK_RECONN_MIN_MS);
	nng_socket_set_ms(s, NNG_OPT_RECONNMAXT, LINK_RECONN_MAX_MS);
	rv = nng_dial(s, url, d, NNG_FLAG_NONBLOCK);
	if (rv != 0) {
		log_errx("nng_dial(%s): %s", url, nng_strerror(rv));
		return -1;
	}
	return 0;
}

struct link *
link_new(struct worker *w)
{
	struct link *l = calloc(1, sizeof(*l));
	char url[CONF_RUNTIME_DIR_MAX + 32];
	int rv;

	if (l == NULL)
		return NULL;
	l->w = w;
	l->me.slot = w->slot;
	l->me.gen = w->gen;
	l->me.pid = (uint32_t)w->pid;
	atomic_init(&l->up_added, false);
	atomic_init(&l->wake_ctx, w->ctx);
	msgpack_sbuffer_init(&l->sb);
	env_reader_init(&l->rd, NULL, 0);
	l->q = calloc(LINK_UPQ_SLOTS, sizeof(*l->q));
	if (l->q == NULL)
		goto fail;

	if ((rv = nng_sub0_open(&l->sub)) != 0) {
		log_errx("nng_sub0_open: %s", nng_strerror(rv));
		goto fail;
	}
	l->sub_open = true;
	if ((rv = nng_socket_set(l->sub, NNG_OPT_SUB_SUBSCRIBE, "", 0)) != 0 ||
	    (rv = nng_socket_set_int(
		 l->sub, NNG_OPT_RECVBUF, LINK_SUB_RECVBUF)) != 0) {
		log_errx("nng_socket_set(sub): %s", nng_strerror(rv));
		goto fail;
	}
	conf_bus_url(w->conf, url, sizeof(url));
	if (link_dial(l->sub, url, &l->sub_dialer) == -1)
		goto fail;
	l->sub_dialed_ms = clock_mono_ms();

	if ((rv = nng_push0_open(&l->push)) != 0) {
		log_errx("nng_push0_open: %s", nng_strerror(rv));
		goto fail;
	}
	l->push_open = true;
	if ((rv = nng_socket_set_int(
		 l->push, NNG_OPT_SENDBUF, LINK_PUSH_SENDBUF)) != 0 ||
	    (rv = nng_pipe_notify(
		 l->push, NNG_PIPE_EV_ADD_POST, link_pipe_cb, l)) != 0) {
		log_errx("nng_socket_set(push): %s", nng_strerror(rv));
		goto fail;
	}
	conf_up_url(w->conf, url, sizeof(url));
	if (link_dial(l->push, url, &l->push_dialer) == -1)
		goto fail;
	l->push_dialed_ms = clock_mono_ms();
	return l;
fail:
	link_free(l);
	return NULL;
}

int
link_adopt(struct link *l)
{
	lws_adopt_desc_t ad;
	int fd, rv;

	rv = nng_socket_get_int(l->sub, NNG_OPT_RECVFD, &fd);
	if (rv != 0) {
		log_errx(
		    "nng_socket_get_int(NNG_OPT_RECVFD): %s", nng_strerror(rv));
		return -1;
	}
	/* lws closes what it adopts: give it a copy of nng's eventfd. */
	fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (fd == -1) {
		log_err("dup(nng recvfd)");
		return -1;
	}
	memset(&ad, 0, sizeof(ad));
	ad.vh = l->w->vh;
	ad.type = LWS_ADOPT_RAW_FILE_DESC;
	ad.fd.filefd = fd;
	ad.vh_prot_name = WORKER_RAW_PROTOCOL;
	ad.opaque = (void *)(uintptr_t)WORKER_RAW_BUS;
	if (lws_adopt_descriptor_vhost_via_info(&ad) == NULL) {
		log_errx("lws_adopt_descriptor_vhost(nng recvfd) failed");
		close(fd);
		return -1;
	}
	return 0;
}

void
link_detach(struct link *l)
{
	if (l == NULL)
		return;
	if (l->push_open)
		nng_pipe_notify(l->push, NNG_PIPE_EV_ADD_POST, NULL, NULL);
	atomic_store(&l->wake_ctx, NULL);
}

void
link_free(struct link *l)
{
	size_t i;

	if (l == NULL)
		return;
	if (l->sub_open)
		nng_close(l->sub);
	if (l->push_open)
		nng_close(l->push);
	if (l->q != NULL) {
		for (i = 0; i < l->q_count; i++)
			nng_msg_free(l->q[(l->q_head + i) % LINK_UPQ_SLOTS].m);
		free(l->q);
	}
	if (l->rx_msg != NULL)
		nng_msg_free(l->rx_msg);
	env_reader_fini(&l->rd);
	msgpack_sbuffer_destroy(&l->sb);
	free(l);
}

/* ---- upstream ---- */

static void
link_count_drop(struct link *l, uint64_t n, const char *why)
{
	uint64_t now = clock_mono_ms();

	l->w->c.drop_up_queue += n;
	if (now - l->last_drop_log_ms >= 1000) {
		l->last_drop_log_ms = now;
		log_warnx(
		    "upstream envelope dropped: %s (drop_up_queue=%" PRIu64 ")",
		    why, l->w->c.drop_up_queue);
	}
}

static void
link_retry_cb(lws_sorted_usec_list_t *sul)
{
	struct link *l = lws_container_of(sul, struct link, retry_sul);

	link_flush(l);
}

static void
link_arm_retry(struct link *l)
{
	if (l->q_count > 0 && l->w->ctx != NULL)
		lws_sul_schedule(l->w->ctx, 0, &l->retry_sul, link_retry_cb,
		    LINK_RETRY_MS * LWS_US_PER_MS);
}

size_t
link_flush(struct link *l)
{
	int rv;

	while (l->q_count > 0) {
		struct upq_item *it = &l->q[l->q_head];
		size_t len = nng_msg_len(it->m);

		rv = nng_sendmsg(l->push, it->m, NNG_FLAG_NONBLOCK);
		if (rv == NNG_EAGAIN)
			break;
		if (rv != 0) {
			/* DROP: counted as drop_up_queue */
			nng_msg_free(it->m);
			link_count_drop(l, it->n_env, nng_strerror(rv));
		}
		/* On success nng owns the message. */
		it->m = NULL;
		l->q_head = (l->q_head + 1) % LINK_UPQ_SLOTS;
		l->q_count--;
		l->q_bytes -= len;
	}
	if (l->q_count > 0)
		link_arm_retry(l);
	return l->q_count;
}

/* Sends the envelope in l->sb now, or queues it. Clears l->sb. */
static void
link_submit(struct link *l)
{
	const char *data = l->sb.data;
	size_t len = l->sb.size;
	struct upq_item *tail;
	nng_msg *m;
	int rv;

	if (l->q_count > 0) {
		tail = &l->q[(l->q_head + l->q_count - 1) % LINK_UPQ_SLOTS];
		if (l->q_bytes + len > LINK_UPQ_MAX_BYTES) {
			link_count_drop(l, 1, "queue full"); /* DROP */
			goto out;
		}
		if (nng_msg_len(tail->m) + len <= LINK_BATCH_BYTES &&
		    nng_msg_append(tail->m, data, len) == 0) {
			tail->n_env++;
			l->q_bytes += len;
			goto out;
		}
		if (l->q_count == LINK_UPQ_SLOTS) {
			link_count_drop(l, 1, "queue full"); /* DROP */
			goto out;
		}
	}
	if (nng_msg_alloc(&m, 0) != 0 || nng_msg_append(m, data, len) != 0) {
		link_count_drop(l, 1, "out of memory"); /* DROP */
		goto out;
	}
	if (l->q_count == 0) {
		rv = nng_sendmsg(l->push, m, NNG_FLAG_NONBLOCK);
		if (rv == 0)
			goto out;
		if (rv != NNG_EAGAIN) {
			nng_msg_free(m);
			link_count_drop(l, 1, nng_strerror(rv)); /* DROP */
			goto out;
		}
	}
	tail = &l->q[(l->q_head + l->q_count) % LINK_UPQ_SLOTS];
	tail->m = m;
	tail->n_env = 1;
	l->q_count++;
	l->q_bytes += len;
	link_arm_retry(l);
out:
	msgpack_sbuffer_clear(&l->sb);
}

static struct env_str
estr(const char *p, size_t len)
{
	struct env_str s = {p, (uint32_t)len};

	return s;
}

void
link_interest(struct link *l, enum up_kind kind, uint64_t req_id,
    const char *addr, size_t len)
{
	struct up_interest i = {req_id, estr(addr, len)};

	if (up_encode_interest(&l->sb, &l->me, kind, &i) == -1) {
		link_count_drop(l, 1, "interest not encodable");
		return;
	}
	link_submit(l);
}

void
link_publish(struct link *l, const char *to, size_t to_len, const char *from,
    size_t from_len, const char *data, size_t data_len)
{
	struct up_publish p;

	memset(&p, 0, sizeof(p));
	p.to = estr(to, to_len);
	p.from = estr(from, from_len);
	p.data = estr(data, data_len);
	if (up_encode_publish(&l->sb, &l->me, &p) == -1) {
		link_count_drop(l, 1, "publish not encodable");
		return;
	}
	link_submit(l);
}

void
link_send(struct link *l, const char *user, size_t user_len, const char *conn,
    const char *data, size_t data_len)
{
	struct up_send s;

	s.user = estr(user, user_len);
	s.conn = estr(conn, strlen(conn));
	s.data = estr(data, data_len);
	if (up_encode_send(&l->sb, &l->me, &s) == -1) {
		link_count_drop(l, 1, "send not encodable");
		return;
	}
	link_submit(l);
}

void
link_event(struct link *l, const char *type, const char *user, size_t user_len,
    const char *conn, const char *reason)
{
	struct up_event e;

	e.type = estr(type, strlen(type));
	e.user = estr(user, user_len);
	e.conn = estr(conn, strlen(conn));
	e.reason =
	    reason != NULL ? estr(reason, strlen(reason)) : estr(NULL, 0);
	if (up_encode_event(&l->sb, &l->me, &e) == -1) {
		link_count_drop(l, 1, "event not encodable");
		return;
	}
	link_submit(l);
}

void
link_bye(struct link *l)
{
	if (up_encode_bye(&l->sb, &l->me) == -1)
		return;
	link_submit(l);
}

/* ---- INTEREST_SYNC ---- */

struct sync_build {
	struct env_str *addrs;
	struct up_counter *users;
	uint32_t n_addrs, n_users;
};

static void
sync_collect(void *arg, struct fan_entry *e)
{
	struct sync_build *b = arg;

	if (e->state != FAN_ACTIVE)
		return;
	b->addrs[b->n_addrs++] = estr(e->addr, e->addrlen);
	if (e->live > 0 && e->addrlen > 5 && memcmp(e->addr, "user:", 5) == 0) {
		b->users[b->n_users].name = estr(e->addr + 5, e->addrlen - 5);
		b->users[b->n_users].value = e->live;
		b->n_users++;
	}
}

/* The bridge lost (or never had) our state: send all of it. */
static void
link_resync(struct link *l)
{
	struct worker *w = l->w;
	size_t n = fanout_count(w->fan);
	struct sync_build b;
	struct up_sync s;

	memset(&b, 0, sizeof(b));
	b.addrs = calloc(n + 1, sizeof(*b.addrs));
	b.users = calloc(n + 1, sizeof(*b.users));
	if (b.addrs == NULL || b.users == NULL) {
		log_warnx("INTEREST_SYNC: out of memory");
		goto out;
	}
	fanout_foreach(w->fan, sync_collect, &b);
	memset(&s, 0, sizeof(s));
	s.epoch = l->epoch;
	s.n_addrs = b.n_addrs;
	s.addrs = b.addrs;
	s.n_users = b.n_users;
	s.users = b.users;
	if (up_encode_sync(&l->sb, &l->me, &s) == -1) {
		link_count_drop(l, 1, "sync not encodable");
		goto out;
	}
	link_submit(l);
	log_info("INTEREST_SYNC epoch=%" PRIx64 " addrs=%" PRIu32
		 " users=%" PRIu32 " pending=%zu",
	    l->epoch, b.n_addrs, b.n_users, fanout_pending_count(w->fan));
	fanout_resend_pending(w->fan, clock_mono_ms());
out:
	free(b.addrs);
	free(b.users);
}

void
link_wakeup(struct link *l)
{
	if (atomic_exchange(&l->up_added, false)) {
		log_info("upstream pipe to the bridge connected");
		link_resync(l);
		link_flush(l);
	}
}

/* ---- down ---- */

static void
link_set_node(struct link *l, const struct env_str *node)
{
	if (node->p == NULL || node->len == 0 || node->len >= sizeof(l->node) ||
	    !utf8_valid(node->p, node->len))
		return;
	if (l->node_known && strlen(l->node) == node->len &&
	    memcmp(l->node, node->p, node->len) == 0)
		return;
	memcpy(l->node, node->p, node->len);
	l->node[node->len] = '\0';
	l->node_known = true;
	log_info("bridge node id: %s", l->node);
}

/* Returns true if epoch is a new bridge (the state is then reset). */
static bool
link_epoch(struct link *l, uint64_t epoch)
{
	if (epoch == l->epoch)
		return false;
	if (l->epoch != 0)
		log_notice("bridge restarted: epoch %" PRIx64 " -> %" PRIx64,
		    l->epoch, epoch);
	else
		log_info("bridge epoch %" PRIx64, epoch);
	l->epoch = epoch;
	l->seq_known = false;
	return true;
}

/* Counts messages the bus lost before seq (exclusive of baselines). */
static void
link_seq(struct link *l, uint64_t seq, bool is_msg)
{
	if (!l->seq_known) {
		l->last_seq = seq;
		l->seq_known = true;
		return;
	}
	if (seq > l->last_seq) {
		uint64_t lost = seq - l->last_seq - (is_msg ? 1 : 0);

		if (lost > 0) {
			/* DROP: bus gap, counted as drop_bus_gap */
			l->w->c.drop_bus_gap += lost;
			log_warnx("bus gap: %" PRIu64
				  " messages lost (seq %" PRIu64
				  " after %" PRIu64 ")",
			    lost, seq, l->last_seq);
		}
		l->last_seq = seq;
	}
}

static void
link_msg(struct link *l, const struct bus_msg *m)
{
	struct worker *w = l->w;
	struct fan_entry *e;
	struct frame *f;
	bool newep = link_epoch(l, m->epoch);

	w->c.msgs_in++;
	link_seq(l, m->seq, true);
	if (newep)
		link_resync(l);
	e = fanout_find(w->fan, m->to.p, m->to.len);
	if (e == NULL || e->live == 0)
		return;
	w->c.bus_targets += e->live;
	if (m->data.len > w->conf->max_message_bytes) {
		/* DROP: oversize, counted per recipient as drop_too_large */
		w->c.drop_too_large += e->live;
		return;
	}
	f = frame_build_msg(m, w->conf->delivery == CONF_DELIVERY_RAW);
	if (f == NULL) {
		log_warnx("message to %.*s dropped: out of memory",
		    (int)m->to.len, m->to.p);
		w->c.drop_queue_full += e->live; /* DROP: no memory */
		return;
	}
	fanout_deliver(w->fan, e, f);
	frame_unref(f);
}

static void
link_heartbeat(struct link *l, const struct bus_heartbeat *h)
{
	bool newep = link_epoch(l, h->epoch);

	link_set_node(l, &h->node);
	link_seq(l, h->last_seq, false);
	if (!l->last_hb_ms || !l->redis_up != !h->redis_up)
		log_info(
		    "bridge heartbeat: redis %s", h->redis_up ? "up" : "down");
	if (l->bus_silent)
		log_notice("bus: bridge heartbeat back");
	l->bus_silent = false;
	l->last_hb_ms = clock_mono_ms();
	l->redis_up = h->redis_up;
	if (newep)
		link_resync(l);
}

static void
link_ack(struct link *l, const struct bus_ack *a)
{
	struct worker *w = l->w;

	if (a->slot != w->slot || a->gen != w->gen)
		return;
	/* The node id first: a welcome may follow from this ACK. */
	link_set_node(l, &a->node);
	fanout_ack(w->fan, a->req_id, a->status != ACK_OK);
	if (link_epoch(l, a->epoch))
		link_resync(l);
}

static void
link_rx_cb(lws_sorted_usec_list_t *sul)
{
	struct link *l = lws_container_of(sul, struct link, rx_sul);

	link_bus_readable(l);
}

static void
link_bus_envelope(struct link *l, const struct bus_env *env)
{
	switch (env->kind) {
	case BUS_MSG:
		link_msg(l, &env->u.msg);
		break;
	case BUS_HEARTBEAT:
		link_heartbeat(l, &env->u.hb);
		break;
	case BUS_ACK:
		link_ack(l, &env->u.ack);
		break;
	}
}

/*
 * Handles at most LINK_RX_BATCH envelopes per call, whatever their
 * packing into nng messages (the bridge batches), so that one wakeup
 * cannot queue an unbounded backlog onto the connections before any of
 * them is written. A message read only in part is kept, and a timer of
 * ~0 brings us back once lws has served the sockets.
 */
void
link_bus_readable(struct link *l)
{
	struct worker *w = l->w;
	struct bus_env env;
	int budget = LINK_RX_BATCH, rv;

	while (budget > 0) {
		if (l->rx_msg == NULL) {
			rv = nng_recvmsg(l->sub, &l->rx_msg, NNG_FLAG_NONBLOCK);
			if (rv != 0) {
				l->rx_msg = NULL;
				if (rv != NNG_EAGAIN)
					log_warnx("nng_recvmsg(bus): %s",
					    nng_strerror(rv));
				return;
			}
			env_reader_reset(&l->rd, nng_msg_body(l->rx_msg),
			    nng_msg_len(l->rx_msg));
		}
		while (budget > 0 &&
		       (rv = bus_reader_next(&l->rd, &env)) != ENV_END) {
			budget--;
			if (rv == ENV_OK) {
				link_bus_envelope(l, &env);
			} else if (rv == ENV_KIND_UNKNOWN) {
				/* A newer bridge's kind: not an error. */
				log_debug("bus: envelope of an unknown kind "
					  "skipped");
			} else {
				/* DROP: counted as drop_bad_envelope */
				w->c.drop_bad_envelope++;
				log_warnx(
				    "bad bus envelope: %s", env_strerror(rv));
			}
		}
		if (budget > 0) {
			/* The reader reached ENV_END. */
			nng_msg_free(l->rx_msg);
			l->rx_msg = NULL;
		}
	}
	if (l->rx_msg != NULL && w->ctx != NULL)
		lws_sul_schedule(w->ctx, 0, &l->rx_sul, link_rx_cb, 1);
}

/*
 * The bridge heartbeats the bus every heartbeat_ms. nng 1.5.2 can leave a
 * SUB dialer that never redials after the bridge restarts: the PUSH pipe
 * came back, the bus connection did not exist at all, and nothing in nng
 * would ever retry it (seen in the bridge-restart test, ~1 run in 20). So
 * a bus silent for LINK_BUS_SILENT_HBS heartbeats is first drained (in
 * case a wakeup was lost) and then redialled with a new dialer; while the
 * bridge is down this just restarts a dialer that was retrying anyway.
 */
static void
link_bus_watch(struct link *l, uint64_t now_ms)
{
	uint64_t limit =
	    LINK_BUS_SILENT_HBS * (uint64_t)l->w->conf->heartbeat_ms;
	uint64_t since =
	    l->last_hb_ms > l->sub_dialed_ms ? l->last_hb_ms : l->sub_dialed_ms;
	char url[CONF_RUNTIME_DIR_MAX + 32];
	nng_dialer d;

	if (now_ms - since < limit)
		return;
	link_bus_readable(l);
	if (l->last_hb_ms > since)
		return;
	if (!l->bus_silent)
		log_warnx("bus: no bridge heartbeat for %" PRIu64
			  " ms: redialling the bus",
		    now_ms - since);
	l->bus_silent = true;
	conf_bus_url(l->w->conf, url, sizeof(url));
	nng_dialer_close(l->sub_dialer);
	if (link_dial(l->sub, url, &d) == 0)
		l->sub_dialer = d;
	l->sub_dialed_ms = now_ms;
}

/*
 * The upstream twin of link_bus_watch(): interest requests went
 * unanswered for FANOUT_ACK_TIMEOUT_MS while the bridge's heartbeat flows
 * and Redis is up, so the bridge is alive but does not hear us; the PUSH
 * dialer is dead or sits on a dead connection. Redial it, at most once per
 * ack timeout; the new pipe brings a full INTEREST_SYNC (link_wakeup).
 */
void
link_upstream_unanswered(struct link *l, uint64_t now_ms)
{
	char url[CONF_RUNTIME_DIR_MAX + 32];
	nng_dialer d;

	if (!link_attached(l, now_ms) || !l->redis_up ||
	    now_ms - l->push_dialed_ms < FANOUT_ACK_TIMEOUT_MS)
		return;
	log_warnx("upstream: interest not acknowledged within %d ms while "
		  "the bridge is up: redialling upstream",
	    FANOUT_ACK_TIMEOUT_MS);
	conf_up_url(l->w->conf, url, sizeof(url));
	nng_dialer_close(l->push_dialer);
	if (link_dial(l->push, url, &d) == 0)
		l->push_dialer = d;
	l->push_dialed_ms = now_ms;
}

/* ---- state and counters ---- */

bool
link_attached(const struct link *l, uint64_t now_ms)
{
	return l != NULL && l->last_hb_ms != 0 &&
	       now_ms - l->last_hb_ms < 3 * (uint64_t)l->w->conf->heartbeat_ms;
}

const char *
link_node(const struct link *l)
{
	return l != NULL && l->node_known ? l->node : NULL;
}

static void
count_users(void *arg, struct fan_entry *e)
{
	uint64_t *n = arg;

	if (e->live > 0 && e->addrlen > 5 && memcmp(e->addr, "user:", 5) == 0)
		(*n)++;
}

/* link_tick() names every reason; a new one needs a line there. */
_Static_assert(JWTAUTH_REJECT_COUNT == 12, "auth_rejected_* counters");

#define COUNTER(nm, val)                                  \
	do {                                              \
		items[n].name = estr(nm, sizeof(nm) - 1); \
		items[n].value = (val);                   \
		n++;                                      \
	} while (0)

void
link_tick(struct link *l, uint64_t now_ms)
{
	struct worker *w = l->w;
	const struct worker_counters *c = &w->c;
	struct up_counter items[64]; /* every COUNTER below fits */
	struct up_counters uc;
	uint64_t users = 0, queued = 0, queued_frames = 0;
	struct dlist_node *dn;
	uint32_t n = 0;

	link_bus_watch(l, now_ms);
	fanout_foreach(w->fan, count_users, &users);
	DLIST_FOREACH(dn, &w->conns) {
		queued += DLIST_ENTRY(dn, struct conn, node)->q.bytes;
		queued_frames += DLIST_ENTRY(dn, struct conn, node)->q.count;
	}

	COUNTER("bus_attached", link_attached(l, now_ms));
	COUNTER("connections", w->n_conns);
	COUNTER("users", users);
	COUNTER("subscriptions", w->n_channel_subs);
	COUNTER("msgs_in", c->msgs_in);
	COUNTER("bus_targets", c->bus_targets);
	COUNTER("replies", c->replies);
	COUNTER("frames_out", c->frames_out);
	COUNTER("bytes_out", c->bytes_out);
	COUNTER("drop_queue_full", c->drop_queue_full);
	COUNTER("drop_slow_closed", c->drop_slow_closed);
	COUNTER("drop_closed", c->drop_closed);
	COUNTER("drop_too_large", c->drop_too_large);
	COUNTER("drop_bus_gap", c->drop_bus_gap);
	COUNTER("drop_bad_envelope", c->drop_bad_envelope);
	COUNTER("drop_up_queue", c->drop_up_queue);
	COUNTER("queue_bytes", queued);
	COUNTER("queue_frames", queued_frames);
	COUNTER("queue_hwm", c->queue_hwm);
	COUNTER("hs_accepted", c->hs_accepted);
	COUNTER("hs_rejected_auth", c->hs_rejected_auth);
	COUNTER("hs_rejected_origin", c->hs_rejected_origin);
	COUNTER("hs_rejected_limit", c->hs_rejected_limit);
	COUNTER("hs_rejected_path", c->hs_rejected_path);
	COUNTER("hs_rejected_version", c->hs_rejected_version);
	COUNTER("hs_rejected_slow", c->hs_rejected_slow);
	COUNTER("hs_rejected_too_large", c->hs_rejected_too_large);
	COUNTER("hs_rejected_malformed", c->hs_rejected_malformed);
	COUNTER("hs_pending", hsgate_waiting());
	COUNTER("closed_slow", c->closed_slow);
	COUNTER("closed_abuse", c->closed_abuse);
	COUNTER("closed_too_big", c->closed_too_big);
	COUNTER("closed_protocol", c->closed_protocol);
	COUNTER("closed_msg_timeout", c->closed_msg_timeout);
	COUNTER("auth_ok", c->auth_ok);
	COUNTER("auth_user_mismatch", c->auth_user_mismatch);
	COUNTER("closed_auth", c->closed_auth);
	COUNTER("closed_auth_timeout", c->closed_auth_timeout);
	COUNTER("closed_auth_expired", c->closed_auth_expired);
	COUNTER("auth_rejected_malformed",
	    c->auth_rejected[JWTAUTH_REJECT_MALFORMED]);
	COUNTER("auth_rejected_bad_signature",
	    c->auth_rejected[JWTAUTH_REJECT_BAD_SIGNATURE]);
	COUNTER("auth_rejected_wrong_alg",
	    c->auth_rejected[JWTAUTH_REJECT_WRONG_ALG]);
	COUNTER(
	    "auth_rejected_expired", c->auth_rejected[JWTAUTH_REJECT_EXPIRED]);
	COUNTER("auth_rejected_not_yet_valid",
	    c->auth_rejected[JWTAUTH_REJECT_NOT_YET_VALID]);
	COUNTER(
	    "auth_rejected_no_sub", c->auth_rejected[JWTAUTH_REJECT_NO_SUB]);
	COUNTER(
	    "auth_rejected_bad_sub", c->auth_rejected[JWTAUTH_REJECT_BAD_SUB]);
	COUNTER("auth_rejected_bad_claims",
	    c->auth_rejected[JWTAUTH_REJECT_BAD_CLAIMS]);
	COUNTER("auth_rejected_too_long",
	    c->auth_rejected[JWTAUTH_REJECT_TOO_LONG]);
	COUNTER("auth_rejected_internal",
	    c->auth_rejected[JWTAUTH_REJECT_INTERNAL]);
	COUNTER(
	    "auth_rejected_no_exp", c->auth_rejected[JWTAUTH_REJECT_NO_EXP]);
	COUNTER("interest_pending", fanout_pending_count(w->fan));
	if (w->fig != NULL) {
		for (int i = 0;
		     i < MFIG_COUNT && n < sizeof(items) / sizeof(items[0]);
		     i++) {
			items[n].name =
			    estr(mfig_names[i], strlen(mfig_names[i]));
			items[n].value = mfig_get(w->fig, i);
			n++;
		}
	}
	uc.n = n;
	uc.items = items;
	if (up_encode_counters(&l->sb, &l->me, &uc) == -1)
		return;
	link_submit(l);
}
