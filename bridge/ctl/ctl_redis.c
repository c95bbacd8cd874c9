/*
 * ctl_redis.c - wspushctl's Redis connection: connect with a timeout,
 * AUTH, commands with a timeout, errors that name the server.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "cluster_slots.h"
#include "ctl_common.h"
#include "ctl_redis.h"

#define CTL_REDIS_HOPS_MAX 5

static void
ctl_redis_error(struct ctl_redis *r, const char *what, const char *why)
{
	fprintf(stderr, "%s: %s: redis %s: %s: %s\n", CTL_PROG, r->cmd,
	    r->target, what, why);
}

/* hiredis reports a read timeout as EAGAIN's text: say what it means. */
static void
ctl_redis_io_error(struct ctl_redis *r, const char *what)
{
	char why[160];

	if (r->rc->err == REDIS_ERR_IO &&
	    (strcmp(r->rc->errstr, strerror(EAGAIN)) == 0 ||
		strcmp(r->rc->errstr, strerror(ETIMEDOUT)) == 0))
		snprintf(why, sizeof(why), "did not answer within %g s",
		    r->timeout_ms / 1000.0);
	else
		snprintf(why, sizeof(why), "%s", r->rc->errstr);
	ctl_redis_error(r, what, why);
}

/* Connects r to host:port (host NULL: c's Redis) and logs in. */
static int
ctl_redis_connect(struct ctl_redis *r, const struct conf *c, const char *cmd,
    int timeout_ms, const char *host, uint16_t port)
{
	struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};

	memset(r, 0, sizeof(*r));
	r->cmd = cmd;
	r->timeout_ms = timeout_ms;
	r->conf = c;
	r->cluster = c->redis_cluster;
	if (host == NULL && c->redis_kind == CONF_REDIS_UNIX) {
		snprintf(
		    r->target, sizeof(r->target), "%s", c->redis_unix_path);
		r->rc = redisConnectUnixWithTimeout(c->redis_unix_path, tv);
	} else {
		if (host == NULL) {
			host = c->redis_host;
			port = (uint16_t)c->redis_port;
		}
		snprintf(r->target, sizeof(r->target),
		    strchr(host, ':') != NULL ? "[%s]:%u" : "%s:%u", host,
		    (unsigned)port);
		r->rc = redisConnectWithTimeout(host, port, tv);
	}
	if (r->rc == NULL) {
		ctl_redis_error(r, "connect", "out of memory");
		return -1;
	}
	if (r->rc->err) {
		ctl_redis_io_error(r, "connect");
		return -1;
	}
	(void)redisSetTimeout(r->rc, tv);
	/* With a user, AUTH user password (Redis 6 ACL); without, the
	 * password alone logs in as "default". */
	if (c->redis_password[0] != '\0') {
		const char *av[3] = {"AUTH"};
		size_t lens[3] = {4};
		int n = 1;
		redisReply *a;

		if (c->redis_user[0] != '\0') {
			av[n] = c->redis_user;
			lens[n++] = strlen(c->redis_user);
		}
		av[n] = c->redis_password;
		lens[n++] = strlen(c->redis_password);
		if ((a = ctl_redis_command(r, n, av, lens)) == NULL)
			return -1;
		freeReplyObject(a);
	}
	return 0;
}

int
ctl_redis_open(
    struct ctl_redis *r, const struct conf *c, const char *cmd, int timeout_ms)
{
	return ctl_redis_connect(r, c, cmd, timeout_ms, NULL, 0);
}

int
ctl_redis_open_at(struct ctl_redis *r, const struct conf *c, const char *cmd,
    int timeout_ms, const char *host, uint16_t port)
{
	return ctl_redis_connect(r, c, cmd, timeout_ms, host, port);
}

void
ctl_redis_close(struct ctl_redis *r)
{
	redisFree(r->rc);
	r->rc = NULL;
}

/*
 * Moves r to the node a redirection names ("" host: the node that
 * answered, so nothing to do). Returns 0, or -1 after printing why.
 */
static int
ctl_redis_follow(struct ctl_redis *r, const struct cluster_redirect *rd)
{
	struct ctl_redis to;

	if (rd->host[0] == '\0')
		return 0;
	if (ctl_redis_connect(&to, r->conf, r->cmd, r->timeout_ms, rd->host,
		rd->port) == -1) {
		ctl_redis_close(&to);
		return -1;
	}
	ctl_redis_close(r);
	*r = to;
	return 0;
}

redisReply *
ctl_redis_command(
    struct ctl_redis *r, int argc, const char **argv, const size_t *lens)
{
	/* A slot moves once per MOVED; more in a row is a cluster in
	 * flux, reported rather than chased. */
	for (int hops = 0;; hops++) {
		redisReply *reply = redisCommandArgv(r->rc, argc, argv, lens);
		struct cluster_redirect rd;

		if (reply == NULL) {
			ctl_redis_io_error(r, argv[0]);
			return NULL;
		}
		if (reply->type != REDIS_REPLY_ERROR)
			return reply;
		if (!r->cluster || hops >= CTL_REDIS_HOPS_MAX ||
		    cluster_redirect_parse(reply->str, reply->len, &rd) ==
			CLUSTER_REDIRECT_NONE) {
			ctl_redis_error(r, argv[0], reply->str);
			freeReplyObject(reply);
			return NULL;
		}
		freeReplyObject(reply);
		if (ctl_redis_follow(r, &rd) == -1)
			return NULL;
		if (rd.kind == CLUSTER_REDIRECT_ASK) {
			/* ASKING lets the importing node serve the next
			 * command for a slot it does not own yet. */
			if ((reply = redisCommand(r->rc, "ASKING")) == NULL) {
				ctl_redis_io_error(r, "ASKING");
				return NULL;
			}
			freeReplyObject(reply);
		}
	}
}

uint64_t
ctl_redis_u64(const redisReply *reply)
{
	if (reply->type == REDIS_REPLY_STRING)
		return strtoull(reply->str, NULL, 10);
	if (reply->type == REDIS_REPLY_INTEGER && reply->integer > 0)
		return (uint64_t)reply->integer;
	return 0;
}
