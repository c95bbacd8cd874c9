/*
 * ctl_redis.c - wspushctl's Redis connection: connect with a timeout,
 * AUTH, commands with a timeout, errors that name the server.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "ctl_common.h"
#include "ctl_redis.h"

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

int
ctl_redis_open(
    struct ctl_redis *r, const struct conf *c, const char *cmd, int timeout_ms)
{
	struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};

	memset(r, 0, sizeof(*r));
	r->cmd = cmd;
	r->timeout_ms = timeout_ms;
	if (c->redis_kind == CONF_REDIS_UNIX) {
		snprintf(
		    r->target, sizeof(r->target), "%s", c->redis_unix_path);
		r->rc = redisConnectUnixWithTimeout(c->redis_unix_path, tv);
	} else {
		snprintf(r->target, sizeof(r->target),
		    strchr(c->redis_host, ':') != NULL ? "[%s]:%u" : "%s:%u",
		    c->redis_host, (unsigned)c->redis_port);
		r->rc =
		    redisConnectWithTimeout(c->redis_host, c->redis_port, tv);
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

void
ctl_redis_close(struct ctl_redis *r)
{
	redisFree(r->rc);
	r->rc = NULL;
}

redisReply *
ctl_redis_command(
    struct ctl_redis *r, int argc, const char **argv, const size_t *lens)
{
	redisReply *reply = redisCommandArgv(r->rc, argc, argv, lens);

	if (reply == NULL) {
		ctl_redis_io_error(r, argv[0]);
		return NULL;
	}
	if (reply->type == REDIS_REPLY_ERROR) {
		ctl_redis_error(r, argv[0], reply->str);
		freeReplyObject(reply);
		return NULL;
	}
	return reply;
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
