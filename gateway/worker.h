/*
 * worker.h - one gateway worker process: its lws event loop (created after
 * the fork), the shared listening socket it accepts from, its link to the
 * bridge, its routing state and its connections.
 *
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
#include "dlist.h"
#include "jwtauth.h"

struct fanout;
struct link;
struct mfig;

/* The lws protocol of the raw fds a worker adopts, and what each is (the
 * wsi's opaque user data). */
#define WORKER_RAW_PROTOCOL "wspush-raw"
enum worker_raw {
	WORKER_RAW_LISTEN = 1, /* the shared listening socket */
	WORKER_RAW_BUS,        /* dup of the nng SUB RECVFD */
	WORKER_RAW_SIGNAL,     /* read end of the signal self-pipe */
};

/* Counters sent upstream every second (COUNTERS) under these names. */
struct worker_counters {
	/* Loss accounting (issue 6 point 8): at any COUNTERS report,
	 * bus_targets + replies = frames_out + drop_queue_full +
	 * drop_slow_closed + drop_too_large + drop_closed + queue_frames. */
	uint64_t msgs_in;           /* MSG envelopes received from the bus */
	uint64_t bus_targets;       /* MSGs x their live target connections */
	uint64_t replies;           /* protocol frames queued (welcome ...) */
	uint64_t frames_out;        /* frames written to clients */
	uint64_t bytes_out;         /* their payload bytes */
	uint64_t drop_queue_full;   /* drop_oldest: frames dropped */
	uint64_t drop_slow_closed;  /* close: frames lost with the client */
	uint64_t drop_closed;       /* queued when closed for another cause */
	uint64_t drop_too_large;    /* over max_message_bytes, per recipient */
	uint64_t drop_bus_gap;      /* sequence gaps on the bus */
	uint64_t drop_bad_envelope; /* undecodable bus envelopes */
	uint64_t drop_up_queue;     /* upstream envelopes lost: queue full */
	uint64_t queue_hwm;         /* largest connection queue seen, bytes */
	uint64_t hs_accepted;
	uint64_t hs_rejected_auth;      /* 401 */
	uint64_t hs_rejected_origin;    /* 403 */
	uint64_t hs_rejected_limit;     /* 503: max_connections */
	uint64_t hs_rejected_path;      /* 404 */
	uint64_t hs_rejected_version;   /* 400: Sec-WebSocket-Version != 13 */
	uint64_t hs_rejected_slow;      /* request head not in time: 408 */
	uint64_t hs_rejected_too_large; /* 431, 414 */
	uint64_t hs_rejected_malformed; /* 400: HTTP or upgrade syntax */
	uint64_t closed_slow;           /* 1013 */
	uint64_t closed_abuse;          /* 1008 */
	uint64_t closed_too_big;        /* 1009 */
	uint64_t closed_protocol;       /* 1002, 1007 seen by ws.c */
	uint64_t closed_msg_timeout;    /* a message not finished in time */
	/* auth.mode = jwt */
	uint64_t auth_rejected[JWTAUTH_REJECT_COUNT]; /* tokens refused */
	uint64_t auth_ok;             /* tokens accepted (handshake, auth) */
	uint64_t auth_user_mismatch;  /* later auth for another sub */
	uint64_t closed_auth;         /* 4001, every cause */
	uint64_t closed_auth_timeout; /* no auth within auth.timeout_s */
	uint64_t closed_auth_expired; /* exp + leeway passed */
};

struct worker {
	const struct conf *conf;   /* the master's, copied by fork */
	const struct jwtauth *jwt; /* auth.mode = jwt: the master's; or NULL */
	const struct mfig *fig;    /* the master's figures (mfig.h); or NULL */
	uint32_t slot, gen;
	pid_t pid;

	struct lws_context *ctx;
	struct lws_vhost *vh;
	struct link *link;
	struct fanout *fan;

	struct dlist conns; /* struct conn.node: every websocket */
	/* Connections with frames queued during this loop pass (struct
	 * conn.flush_node); conn_flush_pending() writes them after it. */
	struct dlist flush;
	uint32_t n_conns;
	uint32_t n_channel_subs; /* channel memberships of all conns */
	uint64_t next_conn;      /* the <n> of conn ids */
	struct worker_counters c;

	int listen_fd; /* the master's socket; closed by lws with listen_wsi */
	struct lws *listen_wsi;
	bool accept_paused;
	lws_sorted_usec_list_t accept_sul;

	int sig_pipe[2]; /* signal handler -> loop */
	int master_fd;   /* ready and heartbeat bytes to the master */
	lws_sorted_usec_list_t tick_sul;

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

#endif
