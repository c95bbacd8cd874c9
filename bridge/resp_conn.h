/*
 * resp_conn.h - one Redis connection on the bridge's loop (loop.h), with
 * its own non-blocking socket and hiredis' reply reader for parsing.
 *
 * Why not hiredis' async layer: 0.14 aborts on sharded pub/sub
 * (SSUBSCRIBE, smessage, sunsubscribe), has no connect timeout and cannot
 * PING a subscribed link. This module does only what the bridge needs:
 * pipelined commands with one callback each, RESP2 pub/sub pushes
 * (message, smessage, pmessage and the (s|p)(un)subscribe confirmations)
 * to one push callback, AUTH, a liveness PING, and reconnection with
 * exponential backoff and jitter (restarting from the minimum only after
 * a link stayed up RC_STABLE_MS). It keeps no subscription state: the
 * owner re-issues its subscriptions when the link comes up.
 * Single-threaded: bridge loop only.
 */
#ifndef WSP_RESP_CONN_H
#define WSP_RESP_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "loop.h"

struct resp_conn;

/*
 * A command's outcome, called exactly once per accepted command: the
 * reply (borrowed for the call; an error reply is a REDIS_REPLY_ERROR),
 * or NULL when the link was lost before it came. For a (S|P)SUBSCRIBE or
 * (S|P)UNSUBSCRIBE on a pub/sub link: after the last channel's
 * confirmation (which is the reply passed), or with the error that
 * refused the whole command (MOVED, CROSSSLOT, NOPERM...).
 */
typedef void resp_reply_fn(
    struct resp_conn *rc, const redisReply *r, void *arg);

/*
 * A push on a pub/sub link: an array whose element[0] names the kind
 * ("message", "smessage", "pmessage", "subscribe", "ssubscribe",
 * "sunsubscribe", ...). Confirmations of the owner's own commands are
 * pushed too, as are the ones Redis sends by itself (a "sunsubscribe"
 * after the channel's slot moved away or its master became a replica).
 * Borrowed for the call.
 */
typedef void resp_push_fn(struct resp_conn *rc, const redisReply *r, void *arg);

/*
 * The link came up (connected and authenticated: issue the subscriptions
 * now) or went down (why says what failed; a reconnect is scheduled). A
 * failed connect attempt reports down too, every time.
 */
typedef void resp_state_fn(
    struct resp_conn *rc, bool up, const char *why, void *arg);

struct resp_conn_opts {
	const char *name; /* log prefix, e.g. "shard 10.0.0.2:7001" */
	const char *host; /* IP address, or a name (blocking lookup) */
	uint16_t port;
	const char *user;     /* ACL user for AUTH, NULL: password only */
	const char *password; /* NULL or "": no AUTH */
	bool pubsub;          /* a subscriber link: pushes are recognised */
	uint32_t coalesce_ms; /* input coalescing (loop_fd_coalesce()) */
	uint32_t connect_timeout_ms; /* TCP connect + AUTH; 0: 5000 */
	/* > 0: PING every interval while up; a PING still unanswered at the
	 * next tick drops the link (a silent peer: cable cut, frozen host). */
	uint32_t ping_interval_ms;
	uint32_t backoff_min_ms; /* first retry delay; 0: 100 */
	uint32_t backoff_max_ms; /* cap; 0: 5000 */
	resp_push_fn *on_push;
	resp_state_fn *on_state;
	void *arg;
};

struct resp_conn_stats {
	uint64_t connects;    /* links that came up */
	uint64_t failures;    /* connect attempts that failed */
	uint64_t disconnects; /* links lost after coming up */
	uint64_t replies;     /* replies matched to commands */
	uint64_t pushes;      /* pushes delivered */
};

/*
 * Returns a new, idle connection (copies every string of o), or NULL on
 * allocation failure. Nothing happens until resp_conn_start().
 */
struct resp_conn *resp_conn_new(struct loop *l, const struct resp_conn_opts *o);

/* Starts connecting on the next loop pass (never calls back from
 * here); afterwards the link reconnects by itself. */
void resp_conn_start(struct resp_conn *rc);

/*
 * Frees rc: closes the socket, cancels its timers. No callback runs after
 * this, not even for pending commands. Safe inside rc's own callbacks.
 * NULL is a no-op.
 */
void resp_conn_free(struct resp_conn *rc);

/* Up: connected, authenticated, commands accepted. */
bool resp_conn_is_up(const struct resp_conn *rc);

/*
 * Queues a command (argv/lens as redisFormatCommandArgv; lens NULL: C
 * strings) to be written on the next loop pass; cb (may be NULL) gets its
 * reply. Only while up. On a pub/sub link a (S|P)(UN)SUBSCRIBE needs at
 * least one channel. Returns 0, or -1 (not up, bad command, no memory).
 */
int resp_conn_command(struct resp_conn *rc, int argc, const char *const *argv,
    const size_t *lens, resp_reply_fn *cb, void *arg);

/* resp_conn_command() with C-string arguments, terminated by NULL. */
int resp_conn_cmd(struct resp_conn *rc, resp_reply_fn *cb, void *arg, ...)
    __attribute__((sentinel));

/* Commands sent or queued and not answered yet. */
size_t resp_conn_pending(const struct resp_conn *rc);

const struct resp_conn_stats *resp_conn_stats(const struct resp_conn *rc);

/* The endpoint, as given. */
const char *resp_conn_host(const struct resp_conn *rc);
uint16_t resp_conn_port(const struct resp_conn *rc);

/* The last failure or loss ("" if none yet), and the state as a word:
 * "idle", "connecting", "handshake", "up", "backoff". */
const char *resp_conn_last_error(const struct resp_conn *rc);
const char *resp_conn_state_str(const struct resp_conn *rc);

/* Drops the link now as if it failed (why is reported), then reconnects
 * after the backoff. For owners that know better (a slot map said so). */
void resp_conn_reset(struct resp_conn *rc, const char *why);

#endif
