/*
 * ctl_redis.h - wspushctl's synchronous Redis connection (hiredis), for
 * the commands that read or write Redis directly (publish, online).
 */
#ifndef WSP_CTL_REDIS_H
#define WSP_CTL_REDIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "conf.h"

struct ctl_redis {
	redisContext *rc;
	const char *cmd;  /* the wspushctl command, for messages */
	char target[300]; /* host:port or socket path, never the password */
	int timeout_ms;
	const struct conf *conf; /* for AUTH on the nodes a cluster names */
	bool cluster;            /* [redis] cluster = on: follow MOVED/ASK */
};

/*
 * Connects to c's Redis and authenticates; every later command waits at
 * most timeout_ms for its reply. Returns 0, or -1 after printing why
 * (naming the server). Close with ctl_redis_close() in both cases.
 */
int ctl_redis_open(
    struct ctl_redis *r, const struct conf *c, const char *cmd, int timeout_ms);

/* The same, to host:port (a node of a Redis Cluster). */
int ctl_redis_open_at(struct ctl_redis *r, const struct conf *c,
    const char *cmd, int timeout_ms, const char *host, uint16_t port);

void ctl_redis_close(struct ctl_redis *r);

/*
 * Runs one command. Returns its reply (free with freeReplyObject()), or
 * NULL after printing why: no answer within the timeout, a lost
 * connection, or an error reply. With a cluster, a MOVED or ASK answer
 * moves r to the node named (a few times at most) and the command is
 * sent again there (after ASKING for ASK).
 */
redisReply *ctl_redis_command(
    struct ctl_redis *r, int argc, const char **argv, const size_t *lens);

/* A reply's non-negative integer value (an integer or a decimal string);
 * 0 for anything else. */
uint64_t ctl_redis_u64(const redisReply *reply);

#endif
