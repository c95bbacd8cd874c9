/*
 * worker.h - one gateway worker process: its lws event loop (created after
 * the fork), the shared listening socket it accepts from, its two ends of
 * the bridge (busrx.h down, uptx.h up), its routing state (fanout.h, wired
 * by deliver.c), its connections (conn.h, written by send.c) and its
 * counters (proto/counters.h).
 *
 * Message path: Redis -> bridge -> bus -> busrx -> deliver -> conn -> send;
 * worker.c only runs the process: loop, timers, accept, signals, drain.
 * Workers are single-threaded: everything here is touched by the worker's
 * lws loop only, except where a field says otherwise.
 */
#ifndef WSP_WORKER_H
#define WSP_WORKER_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <libwebsockets.h>

#include "conf.h"
#include "counters.h"
#include "dlist.h"
#include "jwtauth.h"
#include "keepalive.h"

struct busrx;
struct fanout;
struct mfig;
struct uptx;

/* The lws protocol of the raw fds a worker adopts, and what each is (the
 * wsi's opaque user data). */
#define WORKER_RAW_PROTOCOL "wspush-raw"
enum worker_raw {
	WORKER_RAW_LISTEN = 1, /* the shared listening socket */
	WORKER_RAW_BUS,        /* dup of the nng SUB RECVFD */
	WORKER_RAW_SIGNAL,     /* read end of the signal self-pipe */
};

/*
 * The worker's counters, one per row of proto/counters.h (WORKER_COUNTERS),
 * by name (w->c.hs_accepted) or by enum worker_counter (w->c.v[WC_...]).
 * The gauges' slots (connections, users, queue_bytes ...) and the master's
 * figures stay 0 here: report.c fills them in its copy each second.
 * Loss accounting (proto/PROTOCOL.md): at any COUNTERS report,
 * bus_targets + replies = frames_out + drop_queue_full + drop_slow_closed
 * + drop_too_large + drop_closed + queue_frames.
 */
union worker_counters {
	uint64_t v[WC_COUNT];
	struct {
#define WORKER_COUNTER_FIELD(name, kind, family, label, help) uint64_t name;
		WORKER_COUNTERS(WORKER_COUNTER_FIELD)
#undef WORKER_COUNTER_FIELD
	};
};

struct worker {
	const struct conf *conf;   /* the master's, copied by fork */
	const struct jwtauth *jwt; /* auth.mode = jwt: the master's; or NULL */
	const struct mfig *fig;    /* the master's figures (mfig.h); or NULL */
	uint32_t slot, gen;
	pid_t pid;

	struct lws_context *ctx;
	struct lws_vhost *vh;
	struct busrx *bus;  /* bridge -> worker */
	struct uptx *up;    /* worker -> bridge */
	struct fanout *fan; /* who wants which address (deliver_fan_ops) */
	bool node_known;    /* node: learnt from the bridge (busrx.c) */
	char node[CONF_NODE_ID_MAX];

	struct dlist conns;  /* struct conn.node: every websocket */
	struct keepalive ka; /* struct conn.ka: pings and idle hang-ups */
	/* Connections with frames queued during this loop pass (struct
	 * conn.flush_node); send_flush_pending() writes them after it. */
	struct dlist flush;
	uint32_t n_conns;
	uint32_t n_channel_subs;    /* channel memberships of all conns */
	uint64_t next_conn;         /* the <n> of conn ids */
	struct dlist recovering;    /* struct recover.node: RANGE_REQ sent */
	struct dlist history_reads; /* recover.c: `history` reads */
	uint64_t next_range_req;
	union worker_counters c;

	int listen_fd; /* the master's socket; closed by lws with listen_wsi */
	struct lws *listen_wsi;
	bool accept_paused;
	lws_sorted_usec_list_t accept_sul;

	int sig_pipe[2]; /* signal handler -> loop */
	int master_fd;   /* ready and heartbeat bytes to the master */
	lws_sorted_usec_list_t tick_sul;
	lws_sorted_usec_list_t ka_sul; /* keepalive ticks */

	bool draining;
	bool accept_stopped; /* the listening socket is left to others */
	uint64_t drain_deadline_ms;
	bool done; /* leave the loop */
};

/*
 * Runs a worker in the child after fork() and returns its exit status
 * (0 after a graceful drain). jwt is the verifier for auth.mode = jwt
 * (built by the master before the fork; NULL otherwise); fig the master's
 * shared figures, reported upstream (NULL: none). listen_fd is the
 * shared listening socket; master_fd the write end of the pipe the master reads
 * "ready" (one 'R') and heartbeats ('H' every second) from.
 */
int worker_main(const struct conf *c, const struct jwtauth *jwt,
    const struct mfig *fig, uint32_t slot, uint32_t gen, int listen_fd,
    int master_fd);

/* Starts the graceful drain (SIGTERM): stop accepting, close every
 * connection with 1001, leave once they are gone or drain_timeout_s. */
void worker_drain(struct worker *w);

/* Stops accepting new connections; existing ones are served on. */
void worker_stop_accepting(struct worker *w);

/* The node id learnt from the bridge, or NULL before the first
 * HEARTBEAT/ACK. */
static inline const char *
worker_node(const struct worker *w)
{
	return w->node_known ? w->node : NULL;
}

/* Counts a token refused for why (a JWTAUTH_REJECT_* other than NONE). */
void worker_count_auth_rejected(struct worker *w, enum jwtauth_reject why);

/* Adopts fd (a raw file descriptor: what says which) into w's lws loop;
 * lws closes it with the returned wsi. NULL on failure (fd still open). */
struct lws *worker_adopt_raw(struct worker *w, int fd, enum worker_raw what);

#endif
