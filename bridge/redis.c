/*
 * redis.c - hiredis async links on the bridge loop.
 *
 * hiredis 0.14.1 rules followed here (notes/LIBRARIES.md §5): a failed
 * connect calls only the connect callback, so both callbacks schedule the
 * reconnection; after the disconnect callback hiredis frees the context, so
 * rl->ac is cleared there and re-checked between read and write handling;
 * every callback may get a NULL reply. Reconnection always goes through a
 * timer, never from inside a hiredis callback.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "redis.h"

enum rl_state {
	RL_IDLE,
	RL_CONNECTING,
	RL_AUTH, /* connected, AUTH not answered yet */
	RL_UP,
	RL_WAITING, /* backoff timer armed */
};

struct redis_link {
	struct loop *loop;
	const struct conf *conf;
	char name[16];
	struct redis_link_cbs cbs;
	redisAsyncContext *ac; /* NULL when there is no context */
	struct loop_fd *w;     /* the context's fd */
	int events;
	enum rl_state state;
	uint64_t timer;   /* backoff timer id, 0 if none */
	uint64_t backoff; /* next base delay, ms */
	bool freeing;     /* redis_link_free() is tearing down */
	bool connected_once;
	uint64_t reconnects;
	uint64_t outstanding;
	uint64_t fails;       /* failed connects since the last success */
	uint64_t fails_total; /* failed connects ever */
};

static void rl_connect(struct redis_link *rl);

static const char *
rl_target(const struct redis_link *rl, char *buf, size_t len)
{
	const struct conf *c = rl->conf;

	if (c->redis_kind == CONF_REDIS_UNIX)
		snprintf(buf, len, "unix:%s", c->redis_unix_path);
	else
		snprintf(buf, len, "%s:%u", c->redis_host, c->redis_port);
	return buf;
}

static void
timer_cb(struct loop *l, uint64_t id, void *arg)
{
	struct redis_link *rl = arg;

	rl->timer = 0;
	rl_connect(rl);
}

/* Arms the backoff timer: base doubles to the cap, +-25% jitter. */
static void
rl_schedule(struct redis_link *rl)
{
	uint64_t base = rl->backoff, delay;

	if (rl->freeing || rl->timer != 0)
		return;
	delay = base * 3 / 4 + (uint64_t)random() % (base / 2 + 1);
	rl->backoff =
	    base * 2 > REDIS_BACKOFF_MAX_MS ? REDIS_BACKOFF_MAX_MS : base * 2;
	rl->state = RL_WAITING;
	rl->timer = loop_timer_add(rl->loop, delay, 0, timer_cb, rl);
	if (rl->timer == 0)
		log_errx(
		    "redis: link=%s: cannot arm the reconnect timer", rl->name);
	else
		log_debug("redis: link=%s reconnect_in_ms=%llu", rl->name,
		    (unsigned long long)delay);
}

/* A failed connect: the first of a streak at warning, then one line a
 * minute or so (every 12th at the 5 s cap), the rest at debug. */
static void
rl_connect_failed(struct redis_link *rl, const char *why)
{
	char t[300];

	rl->fails++;
	rl->fails_total++;
	if (rl->fails == 1 || rl->fails % 12 == 0)
		log_warnx("redis: connect(%s) link=%s attempts=%llu: %s",
		    rl_target(rl, t, sizeof(t)), rl->name,
		    (unsigned long long)rl->fails, why);
	else
		log_debug("redis: connect(%s) link=%s attempts=%llu: %s",
		    rl_target(rl, t, sizeof(t)), rl->name,
		    (unsigned long long)rl->fails, why);
}

/* ---- the five adapter hooks ---- */

static void
io_cb(struct loop *l, int fd, int revents, void *arg)
{
	struct redis_link *rl = arg;
	redisAsyncContext *ac = rl->ac;

	if (ac == NULL)
		return;
	if (revents & (POLLIN | POLLERR | POLLHUP))
		redisAsyncHandleRead(ac);
	/* The read may have freed the context (disconnect callback). */
	if (rl->ac == ac && (revents & POLLOUT))
		redisAsyncHandleWrite(ac);
}

static void
ev_update(struct redis_link *rl)
{
	if (rl->w != NULL)
		loop_fd_set(rl->w, rl->events);
}

static void
ev_add_read(void *p)
{
	struct redis_link *rl = p;

	rl->events |= POLLIN;
	ev_update(rl);
}

static void
ev_del_read(void *p)
{
	struct redis_link *rl = p;

	rl->events &= ~POLLIN;
	ev_update(rl);
}

static void
ev_add_write(void *p)
{
	struct redis_link *rl = p;

	rl->events |= POLLOUT;
	ev_update(rl);
}

static void
ev_del_write(void *p)
{
	struct redis_link *rl = p;

	rl->events &= ~POLLOUT;
	ev_update(rl);
}

static void
ev_cleanup(void *p)
{
	struct redis_link *rl = p;

	if (rl->w != NULL)
		loop_fd_del(rl->w);
	rl->w = NULL;
	rl->events = 0;
}

/* ---- hiredis callbacks ---- */

/* Connected (and authenticated): reset the backoff, tell the owner. */
static void
rl_up(struct redis_link *rl)
{
	char t[300];

	rl->state = RL_UP;
	rl->backoff = REDIS_BACKOFF_MIN_MS;
	if (rl->connected_once)
		rl->reconnects++;
	rl->connected_once = true;
	log_notice("redis: link=%s up target=%s reconnects=%llu "
		   "failed_attempts=%llu",
	    rl->name, rl_target(rl, t, sizeof(t)),
	    (unsigned long long)rl->reconnects, (unsigned long long)rl->fails);
	rl->fails = 0;
	rl->cbs.up(rl->cbs.arg, rl);
}

static void
connect_cb(const redisAsyncContext *ac, int status)
{
	struct redis_link *rl = ac->ev.data;

	if (status != REDIS_OK) {
		/* hiredis frees ac after this; onDisconnect will not run. */
		rl_connect_failed(rl, ac->errstr[0] ? ac->errstr : "failed");
		rl->ac = NULL;
		rl->state = RL_IDLE;
		rl_schedule(rl);
		return;
	}
	if (rl->conf->redis_password[0] != '\0') {
		rl->state = RL_AUTH; /* up once AUTH is answered OK */
		return;
	}
	rl_up(rl);
}

static void
disconnect_cb(const redisAsyncContext *ac, int status)
{
	struct redis_link *rl = ac->ev.data;
	bool was_up = rl->state == RL_UP;

	rl->ac = NULL;
	rl->state = RL_IDLE;
	rl->outstanding = 0; /* their callbacks ran with NULL */
	if (rl->freeing)
		return;
	if (!was_up)
		log_debug("redis: link=%s closed before it was up", rl->name);
	else if (status == REDIS_OK)
		log_notice("redis: link=%s closed", rl->name);
	else
		log_warnx("redis: link=%s lost: %s", rl->name,
		    ac->errstr[0] ? ac->errstr : "unknown error");
	if (was_up)
		rl->cbs.down(rl->cbs.arg, rl);
	rl_schedule(rl);
}

static void
auth_cb(redisAsyncContext *ac, void *r, void *privdata)
{
	struct redis_link *rl = privdata;
	redisReply *reply = r;
	char why[256];

	if (reply == NULL)
		return; /* the link is going down */
	if (reply->type == REDIS_REPLY_ERROR &&
	    strstr(reply->str, "without any password") == NULL &&
	    strstr(reply->str, "no password is set") == NULL) {
		/* A failed attempt: the backoff keeps growing. */
		snprintf(why, sizeof(why), "AUTH: %s", reply->str);
		rl_connect_failed(rl, why);
		redisAsyncDisconnect(ac);
		return;
	}
	if (reply->type == REDIS_REPLY_ERROR)
		log_warnx("redis: link=%s AUTH: %s (continuing)", rl->name,
		    reply->str);
	if (rl->state == RL_AUTH)
		rl_up(rl);
}

static void
rl_connect(struct redis_link *rl)
{
	const struct conf *c = rl->conf;
	redisAsyncContext *ac;
	char t[300];

	if (rl->ac != NULL || rl->freeing)
		return;
	rl->state = RL_CONNECTING;
	if (c->redis_kind == CONF_REDIS_UNIX)
		ac = redisAsyncConnectUnix(c->redis_unix_path);
	else /* A host name is resolved here, blocking (hiredis). */
		ac = redisAsyncConnect(c->redis_host, c->redis_port);
	if (ac == NULL) {
		rl_connect_failed(rl, "out of memory");
		rl->state = RL_IDLE;
		rl_schedule(rl);
		return;
	}
	if (ac->err) {
		rl_connect_failed(rl, ac->errstr);
		redisAsyncFree(ac);
		rl->state = RL_IDLE;
		rl_schedule(rl);
		return;
	}
	rl->w = loop_fd_add(rl->loop, ac->c.fd, 0, io_cb, rl);
	if (rl->w == NULL) {
		log_errx("redis: link=%s: out of memory", rl->name);
		redisAsyncFree(ac);
		rl->state = RL_IDLE;
		rl_schedule(rl);
		return;
	}
	rl->ac = ac;
	rl->events = 0;
	ac->ev.data = rl;
	ac->ev.addRead = ev_add_read;
	ac->ev.delRead = ev_del_read;
	ac->ev.addWrite = ev_add_write;
	ac->ev.delWrite = ev_del_write;
	ac->ev.cleanup = ev_cleanup;
	/* Setting the connect callback arms the write watcher, so the
	 * adapter must be attached first (hiredis async.c). */
	redisAsyncSetConnectCallback(ac, connect_cb);
	redisAsyncSetDisconnectCallback(ac, disconnect_cb);
	if (c->redis_kind == CONF_REDIS_TCP)
		(void)redisEnableKeepAlive(&ac->c);
	if (c->redis_password[0] != '\0') {
		const char *argv[2] = {"AUTH", c->redis_password};
		size_t lens[2] = {4, strlen(c->redis_password)};

		redisAsyncCommandArgv(ac, auth_cb, rl, 2, argv, lens);
	}
	log_debug("redis: link=%s connecting target=%s", rl->name,
	    rl_target(rl, t, sizeof(t)));
}

struct redis_link *
redis_link_new(struct loop *loop, const struct conf *c, const char *name,
    const struct redis_link_cbs *cbs)
{
	struct redis_link *rl = calloc(1, sizeof(*rl));

	if (rl == NULL)
		return NULL;
	rl->loop = loop;
	rl->conf = c;
	snprintf(rl->name, sizeof(rl->name), "%s", name);
	rl->cbs = *cbs;
	rl->backoff = REDIS_BACKOFF_MIN_MS;
	return rl;
}

void
redis_link_start(struct redis_link *rl)
{
	if (rl->state == RL_IDLE)
		rl_connect(rl);
}

void
redis_link_reset(struct redis_link *rl, const char *why)
{
	redisAsyncContext *ac = rl->ac;

	log_warnx("redis: link=%s reset reason=%s", rl->name, why);
	if (ac == NULL)
		return;
	/* Runs every callback with NULL, then disconnect_cb if connected. */
	redisAsyncFree(ac);
	if (rl->ac == ac) { /* was still connecting: no disconnect_cb */
		rl->ac = NULL;
		rl->state = RL_IDLE;
		rl->outstanding = 0;
		rl_schedule(rl);
	}
}

void
redis_link_free(struct redis_link *rl)
{
	if (rl == NULL)
		return;
	rl->freeing = true;
	if (rl->timer != 0)
		loop_timer_del(rl->loop, rl->timer);
	if (rl->ac != NULL)
		redisAsyncFree(rl->ac);
	if (rl->w != NULL)
		loop_fd_del(rl->w);
	free(rl);
}

bool
redis_link_is_up(const struct redis_link *rl)
{
	return rl->state == RL_UP && rl->ac != NULL;
}

int
redis_link_command(struct redis_link *rl, redisCallbackFn *fn, void *privdata,
    int argc, const char **argv, const size_t *lens)
{
	if (!redis_link_is_up(rl))
		return -1;
	if (redisAsyncCommandArgv(rl->ac, fn, privdata, argc, argv, lens) !=
	    REDIS_OK)
		return -1;
	return 0;
}

static void
write_cb(redisAsyncContext *ac, void *r, void *privdata)
{
	struct redis_link *rl = privdata;
	redisReply *reply = r;

	if (reply == NULL)
		return; /* the link died; disconnect_cb resets the count */
	if (rl->outstanding > 0)
		rl->outstanding--;
	if (reply->type == REDIS_REPLY_ERROR && rl->cbs.error != NULL)
		rl->cbs.error(rl->cbs.arg, rl, reply->str, reply->len);
}

int
redis_link_write(
    struct redis_link *rl, int argc, const char **argv, const size_t *lens)
{
	if (!redis_link_is_up(rl))
		return -1;
	if (redisAsyncCommandArgv(rl->ac, write_cb, rl, argc, argv, lens) !=
	    REDIS_OK)
		return -1;
	rl->outstanding++;
	return 0;
}

int
redis_link_write_formatted(struct redis_link *rl, const char *cmd, size_t len)
{
	if (!redis_link_is_up(rl))
		return -1;
	if (redisAsyncFormattedCommand(rl->ac, write_cb, rl, cmd, len) !=
	    REDIS_OK)
		return -1;
	rl->outstanding++;
	return 0;
}

uint64_t
redis_link_outstanding(const struct redis_link *rl)
{
	return rl->outstanding;
}

uint64_t
redis_link_reconnects(const struct redis_link *rl)
{
	return rl->reconnects;
}

uint64_t
redis_link_connect_failures(const struct redis_link *rl)
{
	return rl->fails_total;
}
