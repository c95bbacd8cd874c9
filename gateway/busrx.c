/*
 * busrx.c - the worker's SUB end of the node bus (see busrx.h).
 *
 * Threads: nng runs its own threads, none of our code among them here;
 * everything below runs in the worker loop.
 */
#include "busrx.h"
#include "recover.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libwebsockets.h>
#include <nng/nng.h>
#include <nng/protocol/pubsub0/sub.h>

#include "clock.h"
#include "deliver.h"
#include "fanout.h"
#include "log.h"
#include "uptx.h"
#include "worker.h"

#define BUSRX_SUB_RECVBUF 8192
/* Heartbeats the bus may miss before its dialer is recreated. */
#define BUSRX_SILENT_HBS 3
/* While the bus is silent, why is said this often. */
#define BUSRX_UNREACHABLE_LOG_MS 10000

struct busrx {
	struct worker *w;
	nng_socket sub;
	bool sub_open;
	nng_dialer dialer;
	uint64_t dialed_ms; /* when dialer was created */
	uint64_t opened_ms; /* when b was created */
	bool silent;        /* the silence was logged */
	struct log_limit unreachable_log;

	int recvfd; /* nng's RECVFD: readable while messages are queued */
	struct env_reader rd;
	nng_msg *rx_msg; /* being read by rd; kept across wakeups */
	lws_sorted_usec_list_t rx_sul;
	struct busrx_seq seq;
	uint64_t last_hb_ms;
	bool redis_up;
};

/* ---- the sequence check (pure) ---- */

bool
busrx_seq_epoch(struct busrx_seq *s, uint64_t epoch)
{
	if (epoch == s->epoch)
		return false;
	s->epoch = epoch;
	s->known = false;
	return true;
}

uint64_t
busrx_seq_next(struct busrx_seq *s, uint64_t seq, bool is_msg)
{
	uint64_t lost = 0;

	if (!s->known) {
		s->last_seq = seq;
		s->known = true;
		return 0;
	}
	if (seq > s->last_seq) {
		/* A heartbeat's seq was sent already; a MSG's is itself. */
		lost = seq - s->last_seq - (is_msg ? 1 : 0);
		s->last_seq = seq;
	}
	return lost;
}

/* ---- socket ---- */

/* This worker's slot stream: "ipc://<dir>/bus<slot>.ipc". */
static int
busrx_url(const struct worker *w, char *buf, size_t len)
{
	char base[CONF_RUNTIME_DIR_MAX + 32];

	conf_bus_url(w->conf, base, sizeof(base));
	if (bus_slot_url(base, w->slot, buf, len) == -1) {
		log_errx("bus url of slot %" PRIu32 ": too long", w->slot);
		return -1;
	}
	return 0;
}

struct busrx *
busrx_new(struct worker *w)
{
	struct busrx *b = calloc(1, sizeof(*b));
	char url[CONF_RUNTIME_DIR_MAX + 32];
	int rv;

	if (b == NULL)
		return NULL;
	b->w = w;
	b->recvfd = -1;
	env_reader_init(&b->rd, NULL, 0);
	if ((rv = nng_sub0_open(&b->sub)) != 0) {
		log_errx("nng_sub0_open: %s", nng_strerror(rv));
		goto fail;
	}
	b->sub_open = true;
	if ((rv = nng_socket_set(b->sub, NNG_OPT_SUB_SUBSCRIBE, "", 0)) != 0 ||
	    (rv = nng_socket_set_int(
		 b->sub, NNG_OPT_RECVBUF, BUSRX_SUB_RECVBUF)) != 0) {
		log_errx("nng_socket_set(sub): %s", nng_strerror(rv));
		goto fail;
	}
	if (busrx_url(w, url, sizeof(url)) == -1 ||
	    uptx_dial(b->sub, url, &b->dialer) == -1)
		goto fail;
	b->dialed_ms = b->opened_ms = clock_mono_ms();
	return b;
fail:
	busrx_free(b);
	return NULL;
}

int
busrx_adopt(struct busrx *b)
{
	int fd, rv;

	rv = nng_socket_get_int(b->sub, NNG_OPT_RECVFD, &fd);
	if (rv != 0) {
		log_errx(
		    "nng_socket_get_int(NNG_OPT_RECVFD): %s", nng_strerror(rv));
		return -1;
	}
	b->recvfd = fd;
	/* lws closes what it adopts: give it a copy of nng's eventfd. */
	fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (fd == -1) {
		log_err("dup(nng recvfd)");
		return -1;
	}
	if (worker_adopt_raw(b->w, fd, WORKER_RAW_BUS) == NULL) {
		log_errx("lws_adopt_descriptor_vhost(nng recvfd) failed");
		close(fd);
		return -1;
	}
	return 0;
}

void
busrx_free(struct busrx *b)
{
	if (b == NULL)
		return;
	if (b->sub_open)
		nng_close(b->sub);
	if (b->rx_msg != NULL)
		nng_msg_free(b->rx_msg);
	env_reader_fini(&b->rd);
	free(b);
}

/* ---- envelopes ---- */

static void
busrx_set_node(struct busrx *b, const struct env_str *node)
{
	struct worker *w = b->w;

	if (node->p == NULL || node->len == 0 || node->len >= sizeof(w->node) ||
	    !utf8_valid(node->p, node->len))
		return;
	if (w->node_known && strlen(w->node) == node->len &&
	    memcmp(w->node, node->p, node->len) == 0)
		return;
	memcpy(w->node, node->p, node->len);
	w->node[node->len] = '\0';
	w->node_known = true;
	log_info("bridge node id: %s", w->node);
}

/* Returns true if epoch is a new bridge; the caller re-announces the
 * worker's interest once the envelope is handled. */
static bool
busrx_epoch_seen(struct busrx *b, uint64_t epoch)
{
	uint64_t old = b->seq.epoch;

	if (!busrx_seq_epoch(&b->seq, epoch))
		return false;
	if (old != 0)
		log_notice("bridge restarted: epoch %" PRIx64 " -> %" PRIx64,
		    old, epoch);
	else
		log_info("bridge epoch %" PRIx64, epoch);
	return true;
}

static void
busrx_seq_seen(struct busrx *b, uint64_t seq, bool is_msg)
{
	uint64_t before = b->seq.last_seq;
	uint64_t lost = busrx_seq_next(&b->seq, seq, is_msg);

	if (lost == 0)
		return;
	/* DROP: bus gap, counted as drop_bus_gap */
	b->w->c.drop_bus_gap += lost;
	log_warnx("bus gap: %" PRIu64 " messages lost (seq %" PRIu64
		  " after %" PRIu64 ")",
	    lost, seq, before);
}

static void
busrx_resync(struct busrx *b)
{
	uptx_sync(b->w->up, b->w->fan, b->seq.epoch);
}

static void
busrx_msg(struct busrx *b, const struct bus_msg *m)
{
	bool newep = busrx_epoch_seen(b, m->epoch);

	b->w->c.msgs_in++;
	busrx_seq_seen(b, m->seq, true);
	if (newep)
		busrx_resync(b);
	deliver_msg(b->w, m);
}

static void
busrx_heartbeat(struct busrx *b, const struct bus_heartbeat *h)
{
	bool newep = busrx_epoch_seen(b, h->epoch);

	busrx_set_node(b, &h->node);
	busrx_seq_seen(b, h->last_seq, false);
	if (!b->last_hb_ms || !b->redis_up != !h->redis_up)
		log_info(
		    "bridge heartbeat: redis %s", h->redis_up ? "up" : "down");
	if (b->silent)
		log_notice("bus: bridge heartbeat back");
	b->silent = false;
	b->last_hb_ms = clock_mono_ms();
	b->redis_up = h->redis_up;
	if (newep)
		busrx_resync(b);
}

static void
busrx_ack(struct busrx *b, const struct bus_ack *a)
{
	struct worker *w = b->w;

	if (a->slot != w->slot || a->gen != w->gen)
		return;
	/* The node id first: a welcome may follow from this ACK. */
	busrx_set_node(b, &a->node);
	fanout_ack(w->fan, a->req_id, a->status != ACK_OK);
	if (busrx_epoch_seen(b, a->epoch))
		busrx_resync(b);
}

static void
busrx_envelope(struct busrx *b, const struct bus_env *env)
{
	if (env->kind == BUS_RANGE) {
		recover_range(b->w, &env->u.range);
		return;
	}
	switch (env->kind) {
	case BUS_MSG:
		busrx_msg(b, &env->u.msg);
		break;
	case BUS_HEARTBEAT:
		busrx_heartbeat(b, &env->u.hb);
		break;
	case BUS_ACK:
		busrx_ack(b, &env->u.ack);
		break;
	}
}

/*
 * True if the SUB socket may have a message queued. nng_recvmsg() is not
 * cheap even when nothing is queued: every call goes through an nng aio
 * whose completion is handed to one of nng's task threads and waited for
 * (two context switches). Draining until EAGAIN therefore cost a hand-off
 * per wakeup for nothing; nng's RECVFD is readable exactly while messages
 * are queued, and a zero-timeout poll() of it is one syscall.
 */
static bool
busrx_queued(const struct busrx *b)
{
	struct pollfd p = {.fd = b->recvfd, .events = POLLIN};

	if (b->recvfd == -1)
		return true; /* not adopted yet: ask nng */
	return poll(&p, 1, 0) != 0;
}

static void
busrx_rx_cb(lws_sorted_usec_list_t *sul)
{
	struct busrx *b = lws_container_of(sul, struct busrx, rx_sul);

	busrx_readable(b);
}

/*
 * Handles at most BUSRX_BATCH envelopes per call, whatever their packing
 * into nng messages (the bridge batches), so that one wakeup cannot queue
 * an unbounded backlog onto the connections before any of them is
 * written. A message read only in part is kept, and a timer of ~0 brings
 * us back once lws has served the sockets.
 */
void
busrx_readable(struct busrx *b)
{
	struct worker *w = b->w;
	struct bus_env env;
	int budget = BUSRX_BATCH, rv;

	while (budget > 0) {
		if (b->rx_msg == NULL) {
			if (!busrx_queued(b))
				return;
			rv = nng_recvmsg(b->sub, &b->rx_msg, NNG_FLAG_NONBLOCK);
			if (rv != 0) {
				b->rx_msg = NULL;
				if (rv != NNG_EAGAIN)
					log_warnx("nng_recvmsg(bus): %s",
					    nng_strerror(rv));
				return;
			}
			env_reader_reset(&b->rd, nng_msg_body(b->rx_msg),
			    nng_msg_len(b->rx_msg));
		}
		while (budget > 0 &&
		       (rv = bus_reader_next(&b->rd, &env)) != ENV_END) {
			budget--;
			if (rv == ENV_OK) {
				busrx_envelope(b, &env);
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
			nng_msg_free(b->rx_msg);
			b->rx_msg = NULL;
		}
	}
	if (b->rx_msg != NULL && w->ctx != NULL)
		lws_sul_schedule(w->ctx, 0, &b->rx_sul, busrx_rx_cb, 1);
}

/* ---- watchdog ---- */

/*
 * Why the bridge's socket at path cannot be reached, as far as the file
 * system tells: no such file (node.runtime_dir is wrong, or the bridge
 * never started), permission denied, not a socket. nng retries such dials
 * without a word, so this is the only place the reason shows. The socket
 * is not probed with a connection: a stray connection makes nng's
 * listener in the bridge pause, which delays every worker.
 */
static const char *
busrx_probe(const char *path, char *buf, size_t len)
{
	struct stat st;

	if (stat(path, &st) == -1 || access(path, R_OK | W_OK) == -1) {
		snprintf(buf, len, "%s", strerror(errno));
		return buf;
	}
	if (!S_ISSOCK(st.st_mode))
		return "not a socket";
	return "no heartbeat (the bridge is not running, or is stuck)";
}

/*
 * The bridge heartbeats the bus every heartbeat_ms. nng 1.5.2 can leave a
 * SUB dialer that never redials after the bridge restarts: the PUSH pipe
 * came back, the bus connection did not exist at all, and nothing in nng
 * would ever retry it (seen in the bridge-restart test, ~1 run in 20). So
 * a bus silent for BUSRX_SILENT_HBS heartbeats is first drained (in case
 * a wakeup was lost) and then redialled with a new dialer; while the
 * bridge is down this just restarts a dialer that was retrying anyway.
 */
void
busrx_tick(struct busrx *b, uint64_t now_ms)
{
	uint64_t limit = BUSRX_SILENT_HBS * (uint64_t)b->w->conf->heartbeat_ms;
	uint64_t since =
	    b->last_hb_ms > b->dialed_ms ? b->last_hb_ms : b->dialed_ms;
	uint64_t silent_ms, held;
	char url[CONF_RUNTIME_DIR_MAX + 32], why[128];
	nng_dialer d;

	if (now_ms - since < limit)
		return;
	busrx_readable(b);
	if (b->last_hb_ms > since)
		return;
	silent_ms = now_ms - (b->last_hb_ms ? b->last_hb_ms : b->opened_ms);
	if (busrx_url(b->w, url, sizeof(url)) == -1)
		return;
	if (!b->silent)
		log_warnx("bus: no bridge heartbeat for %" PRIu64
			  " ms: redialling the bus",
		    now_ms - since);
	b->silent = true;
	if (log_limit_pass(
		&b->unreachable_log, now_ms, BUSRX_UNREACHABLE_LOG_MS, &held))
		log_warnx("bus: cannot reach the bridge at %s: %s (silent for "
			  "%" PRIu64 " s; check node.runtime_dir and that "
			  "wspush-bridge runs)",
		    url + strlen("ipc://"),
		    busrx_probe(url + strlen("ipc://"), why, sizeof(why)),
		    silent_ms / 1000);
	nng_dialer_close(b->dialer);
	if (uptx_dial(b->sub, url, &d) == 0)
		b->dialer = d;
	b->dialed_ms = now_ms;
}

/* ---- state ---- */

bool
busrx_attached(const struct busrx *b, uint64_t now_ms)
{
	return b != NULL && b->last_hb_ms != 0 &&
	       now_ms - b->last_hb_ms < 3 * (uint64_t)b->w->conf->heartbeat_ms;
}

bool
busrx_redis_up(const struct busrx *b)
{
	return b != NULL && b->redis_up;
}

uint64_t
busrx_epoch(const struct busrx *b)
{
	return b != NULL ? b->seq.epoch : 0;
}
