/*
 * redis.h - one hiredis 0.14.1 async connection ("link") driven by the
 * bridge loop, with AUTH and reconnection.
 *
 * The bridge runs two links: the subscriber (SUBSCRIBE/PSUBSCRIBE only)
 * and the command link (PUBLISH, XADD, presence). A link connects over TCP
 * or a unix socket, sends AUTH first when a password is configured, and
 * after any loss reconnects with capped exponential backoff (100 ms
 * doubling to 5 s, +-25% jitter). hiredis is wired to the loop through the
 * five adapter hooks (hiredis adapters/ae.h shape). What to subscribe or
 * write is the caller's business; so is deciding that a link is dead (no
 * PING on a subscribed link in 0.14.1: see redis_link_reset()).
 * Loop thread only.
 */
#ifndef WSP_REDIS_H
#define WSP_REDIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "conf.h"
#include "loop.h"

#define REDIS_BACKOFF_MIN_MS 100
#define REDIS_BACKOFF_MAX_MS 5000

struct redis_link;

/* The link is connected (AUTH, if any, is already queued ahead). */
typedef void redis_up_fn(void *arg, struct redis_link *rl);
/* The link was up and is lost; every pending callback already got NULL. */
typedef void redis_down_fn(void *arg, struct redis_link *rl);
/* A command sent with redis_link_write() got an error reply. */
typedef void redis_error_fn(
    void *arg, struct redis_link *rl, const char *msg, size_t len);

struct redis_link_cbs {
	redis_up_fn *up;
	redis_down_fn *down;
	redis_error_fn *error; /* may be NULL */
	void *arg;
};

/*
 * Returns a new, idle link to the server of c (borrowed for the link's
 * life); name ("sub", "cmd") is used in logs. NULL on allocation failure.
 */
struct redis_link *redis_link_new(struct loop *loop, const struct conf *c,
    const char *name, const struct redis_link_cbs *cbs);

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
 * Sends a command with its own callback (hiredis semantics: fn gets NULL
 * when the link dies). Returns 0, or -1 if the link is not up or hiredis
 * refused it. The argv strings are copied.
 */
int redis_link_command(struct redis_link *rl, redisCallbackFn *fn,
    void *privdata, int argc, const char **argv, const size_t *lens);

/*
 * Sends a command whose reply only matters if it is an error (reported
 * through the error callback). Counted in redis_link_outstanding() until
 * its reply arrives. Returns 0, or -1 as above.
 */
int redis_link_write(
    struct redis_link *rl, int argc, const char **argv, const size_t *lens);

/* Same with a command already in RESP form (redisFormatCommandArgv). */
int redis_link_write_formatted(
    struct redis_link *rl, const char *cmd, size_t len);

/* Commands of redis_link_write*() still waiting for their reply. */
uint64_t redis_link_outstanding(const struct redis_link *rl);

/* Successful connections after the first one. */
uint64_t redis_link_reconnects(const struct redis_link *rl);

/* Connection attempts that failed, since the start. */
uint64_t redis_link_connect_failures(const struct redis_link *rl);

#endif
