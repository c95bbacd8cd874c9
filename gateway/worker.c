/*
 * worker.c - a worker process (see worker.h): builds its lws context after
 * the fork (no listener of its own), adopts the master's listening socket
 * and accepts from it, adopts the bus fd and a signal self-pipe, runs the
 * loop (send.c writes after each pass), ticks once a second (watchdogs,
 * COUNTERS, heartbeat to the master), and drains on SIGTERM.
 */
#include "worker.h"
#include "recover.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ev.h>

#include "busrx.h"
#include "clock.h"
#include "conn.h"
#include "deliver.h"
#include "fanout.h"
#include "hsgate.h"
#include "log.h"
#include "report.h"
#include "send.h"
#include "uptx.h"
#include "ws.h"

/* Accepted per wakeup: fairness against the sockets already served. */
#define WORKER_ACCEPT_BATCH 64
/*
 * Kernel send buffer per client. The autotuned default lets a client that
 * never reads absorb megabytes before lws sees the socket choke, which
 * hides slow clients from max_queued_bytes and costs kernel memory per
 * connection; 64 KiB keeps detection fast (gateway/NOTES.md).
 */
#define WORKER_SNDBUF (64 * 1024)
/* Accepting again after EMFILE/ENFILE waits this long (no spinning). */
#define WORKER_ACCEPT_PAUSE_MS 100
#define WORKER_TICK_MS 1000
/* A bridge whose bus heartbeat flows accepts upstream connections too:
 * none for this long means the dialer is stuck (uptx_pipeless()). */
#define WORKER_UP_PIPELESS_MS 2000
/* lws' table sizes follow RLIMIT_NOFILE; cap them. */
#define WORKER_FD_LIMIT_MAX (1u << 20)
#define WORKER_MAX_HEADER 16384
#define WORKER_HEADER_POOL 256
/* Largest single send(): a whole frame of max_message_bytes in
 * envelope framing (escaping or base64) without lws copying a tail. */
#define WORKER_TX_PACKET_MAX (1024u * 1024)
/* Upstream messages still queued at exit get this long to leave. */
#define WORKER_EXIT_FLUSH_MS 300

static int worker_sig_wr = -1;
static volatile sig_atomic_t worker_sig_term;
static volatile sig_atomic_t worker_sig_stop_accepting;

static void
worker_on_signal(int sig)
{
	int saved = errno;

	if (sig == SIGTERM || sig == SIGINT)
		worker_sig_term = 1;
	if (sig == SIGUSR1)
		worker_sig_stop_accepting = 1;
	if (worker_sig_wr != -1)
		(void)!write(worker_sig_wr, "s", 1);
	errno = saved;
}

static void
worker_lws_log(int level, const char *line)
{
	size_t n = strlen(line);

	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		n--;
	if (level & LLL_ERR)
		log_errx("lws: %.*s", (int)n, line);
	else
		log_warnx("lws: %.*s", (int)n, line);
}

/* ---- counters ---- */

void
worker_count_auth_rejected(struct worker *w, enum jwtauth_reject why)
{
	static const enum worker_counter wc[JWTAUTH_REJECT_COUNT] = {
	    [JWTAUTH_REJECT_NONE] = WC_auth_rejected_internal,
	    [JWTAUTH_REJECT_MALFORMED] = WC_auth_rejected_malformed,
	    [JWTAUTH_REJECT_BAD_SIGNATURE] = WC_auth_rejected_bad_signature,
	    [JWTAUTH_REJECT_WRONG_ALG] = WC_auth_rejected_wrong_alg,
	    [JWTAUTH_REJECT_EXPIRED] = WC_auth_rejected_expired,
	    [JWTAUTH_REJECT_NOT_YET_VALID] = WC_auth_rejected_not_yet_valid,
	    [JWTAUTH_REJECT_NO_SUB] = WC_auth_rejected_no_sub,
	    [JWTAUTH_REJECT_BAD_SUB] = WC_auth_rejected_bad_sub,
	    [JWTAUTH_REJECT_BAD_CLAIMS] = WC_auth_rejected_bad_claims,
	    [JWTAUTH_REJECT_TOO_LONG] = WC_auth_rejected_too_long,
	    [JWTAUTH_REJECT_INTERNAL] = WC_auth_rejected_internal,
	    [JWTAUTH_REJECT_NO_EXP] = WC_auth_rejected_no_exp,
	};
	/* A new reason needs its row in proto/counters.h and here. */
	_Static_assert(JWTAUTH_REJECT_COUNT == 12, "auth_rejected_* counters");

	if ((unsigned)why >= JWTAUTH_REJECT_COUNT)
		why = JWTAUTH_REJECT_INTERNAL;
	w->c.v[wc[why]]++;
}

/* ---- accepting ---- */

static void
worker_accept_resume(lws_sorted_usec_list_t *sul)
{
	struct worker *w = lws_container_of(sul, struct worker, accept_sul);

	w->accept_paused = false;
	if (w->listen_wsi != NULL)
		lws_rx_flow_control(w->listen_wsi, 1);
}

static void
worker_accept_pause(struct worker *w)
{
	if (w->accept_paused || w->listen_wsi == NULL)
		return;
	w->accept_paused = true;
	lws_rx_flow_control(w->listen_wsi, 0);
	lws_sul_schedule(w->ctx, 0, &w->accept_sul, worker_accept_resume,
	    WORKER_ACCEPT_PAUSE_MS * LWS_US_PER_MS);
}

static void
worker_accept(struct worker *w)
{
	static uint64_t last_log;
	int i, fd, one = 1, sndbuf = WORKER_SNDBUF;

	for (i = 0; i < WORKER_ACCEPT_BATCH && !w->draining; i++) {
		fd = accept4(
		    w->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd == -1) {
			switch (errno) {
			case EINTR:
			case ECONNABORTED:
			case EPROTO:
			case EPERM:
				continue;
			case EAGAIN:
				return;
			case EMFILE:
			case ENFILE:
			case ENOBUFS:
			case ENOMEM:
				if (clock_mono_ms() - last_log >= 1000) {
					last_log = clock_mono_ms();
					log_warn("accept4: pausing accepts "
						 "for %d ms",
					    WORKER_ACCEPT_PAUSE_MS);
				}
				worker_accept_pause(w);
				return;
			default:
				log_warn("accept4");
				worker_accept_pause(w);
				return;
			}
		}
		if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
			sizeof(one)) == -1 ||
		    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf,
			sizeof(sndbuf)) == -1)
			log_debug(
			    "setsockopt(accepted fd): %s", strerror(errno));
		/* Held until its request head is in (hsgate.h). */
		hsgate_accept(w, fd);
	}
}

/* ---- raw fds: listen socket, bus, signal pipe ---- */

static void
worker_signal_readable(struct worker *w)
{
	char buf[64];

	while (read(w->sig_pipe[0], buf, sizeof(buf)) > 0)
		;
	if (worker_sig_stop_accepting)
		worker_stop_accepting(w);
	if (worker_sig_term)
		worker_drain(w);
}

static int
worker_raw_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user,
    void *in, size_t len)
{
	struct worker *w = lws_context_user(lws_get_context(wsi));
	enum worker_raw what =
	    (enum worker_raw)(uintptr_t)lws_get_opaque_user_data(wsi);

	(void)user;
	(void)in;
	(void)len;
	if (w == NULL)
		return 0;
	switch (reason) {
	case LWS_CALLBACK_RAW_RX_FILE:
		switch (what) {
		case WORKER_RAW_LISTEN:
			worker_accept(w);
			break;
		case WORKER_RAW_BUS:
			if (w->bus != NULL)
				busrx_readable(w->bus);
			break;
		case WORKER_RAW_SIGNAL:
			worker_signal_readable(w);
			break;
		}
		return 0;
	case LWS_CALLBACK_RAW_CLOSE_FILE:
		if (what == WORKER_RAW_LISTEN) {
			w->listen_wsi = NULL;
			if (!w->accept_stopped)
				log_errx("listening socket closed by lws");
		} else if (what == WORKER_RAW_BUS && !w->done) {
			log_errx("bus fd closed by lws");
		}
		return 0;
	case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
		if (uptx_pipe_added(w->up))
			uptx_sync(w->up, w->fan, busrx_epoch(w->bus));
		return 0;
	default:
		return 0;
	}
}

struct lws *
worker_adopt_raw(struct worker *w, int fd, enum worker_raw what)
{
	lws_adopt_desc_t ad;

	memset(&ad, 0, sizeof(ad));
	ad.vh = w->vh;
	ad.type = LWS_ADOPT_RAW_FILE_DESC;
	ad.fd.filefd = fd;
	ad.vh_prot_name = WORKER_RAW_PROTOCOL;
	ad.opaque = (void *)(uintptr_t)what;
	return lws_adopt_descriptor_vhost_via_info(&ad);
}

/* ---- timers, drain ---- */

static void
worker_keepalive_init(struct worker *w)
{
	uint32_t ping = w->conf->ping_interval_s,
		 idle = w->conf->idle_timeout_s;

	/* A hang-up is never due before the ping that could prevent it. */
	keepalive_init(&w->ka, ping, idle > ping ? idle : ping + 1);
}

static void
worker_ping_cb(struct keepalive_entry *e, void *arg)
{
	send_ping(lws_container_of(e, struct conn, ka));
}

/* No valid frame for idle_timeout_s: the peer or the path is gone, so no
 * close handshake (nobody would answer it); lws drops the socket. */
static void
worker_hangup_cb(struct keepalive_entry *e, void *arg)
{
	struct conn *c = lws_container_of(e, struct conn, ka);

	if (c->reason == NULL)
		c->reason = "idle";
	lws_set_timeout(
	    c->wsi, PENDING_TIMEOUT_USER_REASON_BASE + 3, LWS_TO_KILL_ASYNC);
}

static void
worker_keepalive(lws_sorted_usec_list_t *sul)
{
	struct worker *w = lws_container_of(sul, struct worker, ka_sul);
	bool more;

	keepalive_tick(&w->ka, clock_mono_ms(), worker_ping_cb,
	    worker_hangup_cb, w, &more);
	/* A crowd due at once goes in slices, with lws' service between. */
	lws_sul_schedule(w->ctx, 0, &w->ka_sul, worker_keepalive,
	    more ? 1 : KEEPALIVE_TICK_MS * LWS_US_PER_MS);
}

static void
worker_tick(lws_sorted_usec_list_t *sul)
{
	struct worker *w = lws_container_of(sul, struct worker, tick_sul);
	uint64_t now = clock_mono_ms();

	busrx_tick(w->bus, now);
	recover_tick(w, now);
	report_send(w, now);
	/* Requests re-sent for want of an ACK while the bridge is up and
	 * hears Redis, or no upstream pipe at all while its heartbeat flows:
	 * it does not hear us. */
	if (fanout_tick(w->fan, now) > 0 && busrx_attached(w->bus, now) &&
	    busrx_redis_up(w->bus))
		uptx_redial(w->up, now, "interest not acknowledged");
	if (uptx_pipeless(w->up, now, WORKER_UP_PIPELESS_MS) &&
	    busrx_attached(w->bus, now))
		uptx_redial(w->up, now, "no upstream connection");
	if (w->master_fd != -1 && write(w->master_fd, "H", 1) == -1 &&
	    errno == EPIPE) {
		log_warnx("the master is gone: draining");
		close(w->master_fd);
		w->master_fd = -1;
		worker_drain(w);
	}
	if (w->draining && now >= w->drain_deadline_ms) {
		log_notice(
		    "drain timeout: %" PRIu32 " connections cut", w->n_conns);
		w->done = true;
	}
	lws_sul_schedule(w->ctx, 0, &w->tick_sul, worker_tick,
	    WORKER_TICK_MS * LWS_US_PER_MS);
}

/*
 * Leaves the shared listening socket to the other workers; the connections
 * this worker has stay. SIGUSR1 from the master during a rolling reload,
 * so that clients an old worker drains reconnect to the new workers rather
 * than to another old one.
 */
void
worker_stop_accepting(struct worker *w)
{
	if (w->listen_wsi == NULL || w->accept_stopped)
		return;
	w->accept_stopped = true;
	log_info(
	    "no longer accepting: %" PRIu32 " connections stay", w->n_conns);
	lws_set_timeout(
	    w->listen_wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
}

void
worker_drain(struct worker *w)
{
	struct dlist_node *n;

	if (w->draining)
		return;
	w->draining = true;
	w->drain_deadline_ms =
	    clock_mono_ms() + (uint64_t)w->conf->drain_timeout_s * 1000;
	log_notice("draining: %" PRIu32 " connections, up to %" PRIu32 " s",
	    w->n_conns, w->conf->drain_timeout_s);
	worker_stop_accepting(w);
	DLIST_FOREACH(n, &w->conns)
		conn_close(DLIST_ENTRY(n, struct conn, node), 1001, "shutdown");
	if (w->n_conns == 0)
		w->done = true;
}

/* ---- setup ---- */

static int
worker_signals(struct worker *w)
{
	struct sigaction sa;
	sigset_t none;

	if (pipe2(w->sig_pipe, O_NONBLOCK | O_CLOEXEC) == -1) {
		log_err("pipe2");
		return -1;
	}
	worker_sig_wr = w->sig_pipe[1];
	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = worker_on_signal;
	sa.sa_flags = SA_RESTART;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGPIPE, &sa, NULL);
	sa.sa_handler = SIG_DFL;
	sigaction(SIGCHLD, &sa, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	return 0;
}

static unsigned int
worker_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1 ||
	    rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > WORKER_FD_LIMIT_MAX)
		return WORKER_FD_LIMIT_MAX;
	return (unsigned int)rl.rlim_cur;
}

static void
worker_finish(struct worker *w)
{
	uint64_t until;

	uptx_detach(w->up);
	/* Closes every connection (their DELs and disconnect events are
	 * queued upstream) and every adopted fd. */
	if (w->ctx != NULL) {
		struct lws_context *ctx = w->ctx;

		/* w->ctx = NULL first: nothing may schedule timers on a
		 * context being destroyed (busrx.c and uptx.c check it). */
		w->ctx = NULL;
		lws_context_destroy(ctx);
	}
	busrx_free(w->bus);
	w->bus = NULL;
	if (w->up != NULL) {
		uptx_bye(w->up);
		until = clock_mono_ms() + WORKER_EXIT_FLUSH_MS;
		while (uptx_flush(w->up) > 0 && clock_mono_ms() < until)
			usleep(10 * 1000);
		/* nng sends from its own threads: give the last message a
		 * moment to leave before the socket is closed. */
		usleep(50 * 1000);
	}
	uptx_free(w->up);
	w->up = NULL;
	fanout_free(w->fan);
	w->fan = NULL;
}

/* lws keeps pointers to both for the context's life: one per process. */
static struct lws_protocols worker_protocols[3];
static lws_retry_bo_t worker_retry;

/* Fills worker_protocols and worker_retry from c. */
static void
worker_lws_tables(const struct conf *c)
{
	uint64_t tx;

	tx = (uint64_t)c->max_message_bytes * 2 + 1024;
	if (tx < SEND_COALESCE_MAX)
		tx = SEND_COALESCE_MAX; /* a coalesced send is one send() */
	if (tx > WORKER_TX_PACKET_MAX)
		tx = WORKER_TX_PACKET_MAX;
	memset(worker_protocols, 0, sizeof(worker_protocols));
	worker_protocols[0].name = "wspush";
	worker_protocols[0].callback = ws_callback;
	worker_protocols[0].per_session_data_size = sizeof(struct ws_pss);
	worker_protocols[0].rx_buffer_size = WS_RX_BUFFER_SIZE;
	worker_protocols[0].tx_packet_size = (size_t)tx;
	worker_protocols[1].name = WORKER_RAW_PROTOCOL;
	worker_protocols[1].callback = worker_raw_cb;

	/* No validity timers in lws (secs_since_valid_hangup = 0): pings and
	 * idle hang-ups are keepalive.c's, at O(1) per connection event
	 * instead of lws' sorted-list walk (keepalive.h says why). */
	memset(&worker_retry, 0, sizeof(worker_retry));
}

/* The lws context (and its epoll loop, *loop, when configured and
 * available). 0, or -1 with the reason logged. */
static int
worker_context(struct worker *w, struct ev_loop **loop)
{
	const struct conf *c = w->conf;
	struct lws_context_creation_info info;
	static void *foreign[1];

	worker_lws_tables(c);
	memset(&info, 0, sizeof(info));
	info.port = CONTEXT_PORT_NO_LISTEN_SERVER;
	info.protocols = worker_protocols;
	info.user = w;
	/* No LWS_SERVER_OPTION_VALIDATE_UTF8: ws.c checks text messages
	 * and close reasons itself (lws drops a close frame with a bad
	 * reason without answering it). */
	info.options = 0;
	info.pt_serv_buf_size = 4096;
	info.fd_limit_per_thread = worker_fd_limit();
	info.max_http_header_data = WORKER_MAX_HEADER;
	info.max_http_header_pool = WORKER_HEADER_POOL;
	info.timeout_secs = c->handshake_timeout_s;
	/* A socket that never sends its request holds a header table. */
	info.timeout_secs_ah_idle = c->handshake_timeout_s;
	info.retry_and_idle_policy = &worker_retry;
	*loop = NULL;
	if (c->event_loop == CONF_LOOP_EPOLL) {
		/*
		 * lws' own loop is poll(): every wakeup scans every socket
		 * of the worker, which dominates targeted (one-user) traffic
		 * and grows with the connection count. The libev plugin over
		 * epoll does not scan, and writes rarely wait for POLLOUT
		 * (send_flush_pending()), so watchers seldom change. Our own
		 * loop object (foreign to lws) lets us leave it when done.
		 */
		*loop = ev_loop_new(EVBACKEND_EPOLL | EVFLAG_NOENV);
		if (*loop == NULL) {
			log_warnx("ev_loop_new(epoll) failed: using poll");
		} else {
			foreign[0] = *loop;
			info.foreign_loops = foreign;
			info.options |= LWS_SERVER_OPTION_LIBEV;
		}
	}
	w->ctx = lws_create_context(&info);
	if (w->ctx == NULL && *loop != NULL) {
		/* The evlib plugin (libwebsockets-evlib-ev) is missing. */
		log_warnx("lws: no libev event loop: using poll");
		ev_loop_destroy(*loop);
		*loop = NULL;
		info.foreign_loops = NULL;
		info.options &= ~(uint64_t)LWS_SERVER_OPTION_LIBEV;
		w->ctx = lws_create_context(&info);
	}
	if (w->ctx == NULL) {
		log_errx("lws_create_context failed");
		return -1;
	}
	w->vh = lws_get_vhost_by_name(w->ctx, "default");
	if (w->vh == NULL) {
		log_errx("lws: no default vhost");
		return -1;
	}
	return 0;
}

/* The routing state, both ends of the bridge, the listening socket, the
 * signal pipe and the tick. 0, or -1 with the reason logged. */
static int
worker_open(struct worker *w)
{
	w->fan = fanout_new(&deliver_fan_ops, w);
	if (w->fan == NULL) {
		log_errx("fanout_new: out of memory");
		return -1;
	}
	w->up = uptx_new(w);
	w->bus = busrx_new(w);
	if (w->up == NULL || w->bus == NULL || busrx_adopt(w->bus) == -1)
		return -1;
	w->listen_wsi = worker_adopt_raw(w, w->listen_fd, WORKER_RAW_LISTEN);
	if (w->listen_wsi == NULL) {
		log_errx("cannot adopt the listening socket");
		return -1;
	}
	if (worker_adopt_raw(w, w->sig_pipe[0], WORKER_RAW_SIGNAL) == NULL) {
		log_errx("cannot adopt the signal pipe");
		return -1;
	}
	lws_sul_schedule(w->ctx, 0, &w->tick_sul, worker_tick,
	    WORKER_TICK_MS * LWS_US_PER_MS);
	lws_sul_schedule(w->ctx, 0, &w->ka_sul, worker_keepalive,
	    KEEPALIVE_TICK_MS * LWS_US_PER_MS);
	return 0;
}

/* Runs the loop until drained. 0, or -1 if lws failed. */
static int
worker_run(struct worker *w, struct ev_loop *loop)
{
	while (!w->done) {
		if (loop != NULL) {
			/* One pass: returns after the callbacks it ran. */
			ev_run(loop, EVRUN_ONCE);
		} else if (lws_service(w->ctx, 0) < 0) {
			log_errx("lws_service failed");
			return -1;
		}
		/* What this pass queued, before the loop waits again: one
		 * send per connection, no POLLOUT round trip. */
		send_flush_pending(w);
	}
	return 0;
}

int
worker_main(const struct conf *c, const struct jwtauth *jwt,
    const struct mfig *fig, uint32_t slot, uint32_t gen, int listen_fd,
    int master_fd)
{
	static struct worker wk;
	struct worker *w = &wk;
	struct ev_loop *loop = NULL;
	char tag[64];
	int rc = 1;

	memset(w, 0, sizeof(*w));
	w->conf = c;
	w->jwt = jwt;
	w->fig = fig;
	w->slot = slot;
	w->gen = gen;
	w->pid = getpid();
	w->listen_fd = listen_fd;
	w->master_fd = master_fd;
	w->sig_pipe[0] = w->sig_pipe[1] = -1;
	dlist_init(&w->conns);
	worker_keepalive_init(w);
	dlist_init(&w->recovering);
	dlist_init(&w->history_reads);
	dlist_init(&w->flush);

	snprintf(tag, sizeof(tag), "wspush-gateway[w%" PRIu32 "]", slot);
	log_set_tag(tag);
	/* Only the master talks to systemd. */
	unsetenv("NOTIFY_SOCKET");
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
	/* Leave with the master, even if it is killed. */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (worker_signals(w) == -1)
		return 1;
	log_info("worker started pid=%d gen=%" PRIu32, (int)w->pid, gen);
	lws_set_log_level(LLL_ERR | LLL_WARN, worker_lws_log);

	if (worker_context(w, &loop) == 0 && worker_open(w) == 0) {
		/* Ready: the master may now count us. */
		if (write(master_fd, "R", 1) == -1)
			log_warn("write(ready)");
		if (worker_sig_term)
			worker_drain(w);
		if (worker_run(w, loop) == 0) {
			rc = 0;
			log_info("worker exiting");
		}
	}
	worker_finish(w);
	if (loop != NULL)
		ev_loop_destroy(loop); /* after the context that used it */
	if (w->master_fd != -1)
		close(w->master_fd);
	worker_sig_wr = -1;
	if (w->sig_pipe[1] != -1)
		close(w->sig_pipe[1]);
	return rc;
}
