/*
 * redis_link.h - one hiredis 0.14.1 async connection ("link") driven by the
 * bridge loop, with its handshake, reconnection and outage bookkeeping.
 *
 * The Redis broker runs two links: the subscriber (SUBSCRIBE/PSUBSCRIBE
 * only) and the command link (PUBLISH, XADD, presence). A link connects
 * over TCP or a unix socket, then runs its handshake: AUTH (AUTH user
 * password for an ACL user, AUTH password otherwise) when a password is
 * configured, then the owner's probe command (redis_link_set_probe()). The
 * link is UP only once every handshake command succeeded: an error reply
 * (NOAUTH, WRONGPASS, NOPERM, ...) or a loss before that is a failed
 * connect like a refused TCP connection. After any failure or loss it
 * reconnects with capped exponential backoff (100 ms doubling to 5 s,
 * +-25% jitter); the backoff restarts from the minimum only after the link
 * stayed up for REDIS_LINK_STABLE_MS, so a link that a server drops right
 * after the handshake does not spin. Failures are logged once per change
 * of their cause, not per attempt. hiredis is wired to the loop through
 * the five adapter hooks (hiredis adapters/ae.h shape). Loop thread only.
 */
#ifndef WSP_REDIS_LINK_H
#define WSP_REDIS_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "broker.h"
#include "conf.h"
#include "loop.h"

#define REDIS_LINK_BACKOFF_MIN_MS 100
#define REDIS_LINK_BACKOFF_MAX_MS 5000
/* Up this long before a loss: the next attempt starts from the minimum. */
#define REDIS_LINK_STABLE_MS 2000

struct redis_link;

/* The link finished its handshake. */
typedef void redis_link_up_fn(void *arg, struct redis_link *rl);
/* The link was up and is lost; every pending callback already got NULL. */
typedef void redis_link_down_fn(void *arg, struct redis_link *rl);
/* A command sent with redis_link_write() got an error reply. */
typedef void redis_link_error_fn(
    void *arg, struct redis_link *rl, const char *msg, size_t len);
/* A reply of the subscriber side (redis_link_subscribe()), never NULL. */
typedef void redis_link_push_fn(
    void *arg, struct redis_link *rl, const redisReply *reply);

struct redis_link_cbs {
	redis_link_up_fn *up;
	redis_link_down_fn *down;
	redis_link_error_fn *error; /* may be NULL */
	redis_link_push_fn *push;   /* may be NULL: no subscriptions */
	void *arg;
};

/*
 * Returns a new, idle link to the server of c (borrowed for the link's
 * life); name ("sub", "cmd") is used in logs. NULL on allocation failure.
 */
struct redis_link *redis_link_new(struct loop *loop, const struct conf *c,
    const char *name, const struct redis_link_cbs *cbs);

/*
 * The handshake's probe, sent after AUTH on every connection (argv is
 * copied). A SUBSCRIBE or PSUBSCRIBE probe succeeds with its confirmation
 * (it stays subscribed; its messages reach the push callback), any other
 * with a reply that is not an error. Set it before redis_link_start().
 * Returns 0, or -1 on allocation failure.
 */
int redis_link_set_probe(
    struct redis_link *rl, int argc, const char **argv, const size_t *lens);

/* Starts connecting (and reconnecting after every loss). */
void redis_link_start(struct redis_link *rl);

/*
 * Drops the connection now (every pending callback gets NULL, then the down
 * callback runs) and reconnects after the backoff. Not from inside a
 * hiredis callback.
 */
void redis_link_reset(struct redis_link *rl, const char *why);

/* Stops reconnecting and frees the connection; then frees rl. NULL ok. */
void redis_link_free(struct redis_link *rl);

bool redis_link_is_up(const struct redis_link *rl);

/*
 * Sends a (P)(UN)SUBSCRIBE whose replies and messages reach the push
 * callback. Returns 0, or -1 if the link is not up or hiredis refused it.
 * The argv strings are copied.
 */
int redis_link_subscribe(
    struct redis_link *rl, int argc, const char **argv, const size_t *lens);

/*
 * Sends a command whose reply only matters if it is an error (reported
 * through the error callback). Counted in redis_link_outstanding() until
 * its reply arrives. Returns 0, or -1 as above.
 */
int redis_link_write(
    struct redis_link *rl, int argc, const char **argv, const size_t *lens);

/*
 * A command whose reply the caller reads: fn(arg, reply) once, with the
 * reply (borrowed for the call), or with NULL when the link died or is
 * being freed before it came. Counted in redis_link_outstanding(). Returns
 * 0, or -1 (fn is then never called) if the link is not up or hiredis
 * refused it. The argv strings are copied.
 */
typedef void redis_link_reply_fn(void *arg, const redisReply *reply);
int redis_link_command(struct redis_link *rl, redis_link_reply_fn *fn,
    void *arg, int argc, const char **argv, const size_t *lens);

/* Same with a command already in RESP form (redisFormatCommandArgv). */
int redis_link_write_formatted(
    struct redis_link *rl, const char *cmd, size_t len);

/* Commands of redis_link_write*() still waiting for their reply. */
uint64_t redis_link_outstanding(const struct redis_link *rl);

/* Successful connections after the first one. */
uint64_t redis_link_reconnects(const struct redis_link *rl);

/* Connection attempts that failed (handshake refusals included). */
uint64_t redis_link_connect_failures(const struct redis_link *rl);

/* The link's state and figures, for stats (strings owned by the link). */
void redis_link_info(const struct redis_link *rl, struct broker_link_info *li);

/* The last failure's text, "" if none yet. */
const char *redis_link_last_error(const struct redis_link *rl);

#endif
