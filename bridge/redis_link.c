/*
 * redis_link.c - hiredis async links on the bridge loop.
 *
 * hiredis 0.14.1 rules followed here (NOTES.md in this directory): a failed
 * connect calls only the connect callback, so both callbacks schedule the
 * reconnection; after the disconnect callback hiredis frees the context, so
 * rl->ac is cleared there and re-checked between read and write handling;
 * every callback may get a NULL reply; an error reply to a (P)SUBSCRIBE has
 * no callback to go to, so hiredis drops the connection with the error as
 * its errstr (that is how a refused subscriber probe shows). Reconnection
 * always goes through a timer, never from inside a hiredis callback.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "redis_link.h"

enum redis_link_state {
	RL_IDLE,
	RL_CONNECTING, /* TCP / unix connect in progress */
	RL_HANDSHAKE,  /* connected; AUTH or the probe not answered yet */
	RL_UP,
	RL_WAITING, /* backoff timer armed */
};

static const char *const redis_link_state_names[] = {
    [RL_IDLE] = "idle",
    [RL_CONNECTING] = "connecting",
    [RL_HANDSHAKE] = "handshake",
    [RL_UP] = "up",
    [RL_WAITING] = "backoff",
};

struct redis_link {
	struct loop *loop;
	const struct conf *conf;
	char name[16];
	struct redis_link_cbs cbs;
	redisAsyncContext *ac; /* NULL when there is no context */
	struct loop_fd *w;     /* the context's fd */
	int events;
	enum redis_link_state state;
	uint64_t timer;   /* backoff timer id, 0 if none */
	uint64_t backoff; /* next base delay, ms */
	bool freeing;     /* redis_link_free() is tearing down */
	bool connected_once;
	char *probe; /* RESP-formatted probe command, NULL if none */
	size_t probe_len;
	bool probe_sub;    /* the probe is a (P)SUBSCRIBE */
	int hs_pending;    /* handshake replies still expected */
	bool hs_failed;    /* this attempt's failure is already counted */
	uint64_t up_since; /* monotonic ms */
	uint64_t reconnects;
	uint64_t outstanding;
	uint64_t fails;       /* failed connects since the last success */
	uint64_t fails_total; /* failed connects ever */
	char last_error[BROKER_ERR_MAX];
	struct log_limit fail_log; /* repeats of one cause */
	struct broker_outage outage;
};

static void redis_link_connect(struct redis_link *rl);

static const char *
redis_link_target(const struct redis_link *rl, char *buf, size_t len)
{
	const struct conf *c = rl->conf;

	if (c->redis_kind == CONF_REDIS_UNIX)
		snprintf(buf, len, "unix:%s", c->redis_unix_path);
	else
		snprintf(buf, len, "%s:%u", c->redis_host, c->redis_port);
	return buf;
}

static void
redis_link_timer_cb(struct loop *l, uint64_t id, void *arg)
{
	struct redis_link *rl = arg;

	rl->timer = 0;
	redis_link_connect(rl);
}

/* Arms the backoff timer: base doubles to the cap, +-25% jitter. */
static void
redis_link_schedule(struct redis_link *rl)
{
	uint64_t base = rl->backoff, delay;

	if (rl->freeing || rl->timer != 0)
		return;
	delay = base * 3 / 4 + (uint64_t)random() % (base / 2 + 1);
	rl->backoff = base * 2 > REDIS_LINK_BACKOFF_MAX_MS
			  ? REDIS_LINK_BACKOFF_MAX_MS
			  : base * 2;
	rl->state = RL_WAITING;
	rl->timer = loop_timer_add(rl->loop, delay, 0, redis_link_timer_cb, rl);
	if (rl->timer == 0)
		log_errx(
		    "redis: link=%s: cannot arm the reconnect timer", rl->name);
	else
		log_debug("redis: link=%s reconnect_in_ms=%llu", rl->name,
		    (unsigned long long)delay);
}

/*
 * A failed connect (or handshake). Logged at warning when its cause
 * differs from the last one's, and a reminder at most once a minute while
 * it stays the same; every attempt at debug.
 */
static void
redis_link_connect_failed(struct redis_link *rl, const char *why)
{
	char t[300];
	uint64_t suppressed;
	bool changed = strncmp(why, rl->last_error, sizeof(rl->last_error) - 1);

	rl->fails++;
	rl->fails_total++;
	snprintf(rl->last_error, sizeof(rl->last_error), "%s", why);
	if (changed)
		rl->fail_log = (struct log_limit){0};
	if (log_limit_pass(
		&rl->fail_log, loop_now(rl->loop), 60000, &suppressed))
		log_warnx("redis: connect(%s) link=%s attempts=%llu: %s",
		    redis_link_target(rl, t, sizeof(t)), rl->name,
		    (unsigned long long)rl->fails, why);
	else
		log_debug("redis: connect(%s) link=%s attempts=%llu: %s",
		    redis_link_target(rl, t, sizeof(t)), rl->name,
		    (unsigned long long)rl->fails, why);
}

/* The handshake failed: counted once, then the connection is dropped and
 * the disconnect callback schedules the next attempt. */
static void
redis_link_handshake_failed(
    struct redis_link *rl, redisAsyncContext *ac, const char *why)
{
	if (!rl->hs_failed) {
		rl->hs_failed = true;
		redis_link_connect_failed(rl, why);
	}
	redisAsyncDisconnect(ac);
}

/* ---- the five adapter hooks ---- */

static void
redis_link_io_cb(struct loop *l, int fd, int revents, void *arg)
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
redis_link_ev_update(struct redis_link *rl)
{
	if (rl->w != NULL)
		loop_fd_set(rl->w, rl->events);
}

static void
redis_link_add_read(void *p)
{
	struct redis_link *rl = p;

	rl->events |= POLLIN;
	redis_link_ev_update(rl);
}

static void
redis_link_del_read(void *p)
{
	struct redis_link *rl = p;

	rl->events &= ~POLLIN;
	redis_link_ev_update(rl);
}

static void
redis_link_add_write(void *p)
{
	struct redis_link *rl = p;

	rl->events |= POLLOUT;
	redis_link_ev_update(rl);
}

static void
redis_link_del_write(void *p)
{
	struct redis_link *rl = p;

	rl->events &= ~POLLOUT;
	redis_link_ev_update(rl);
}

static void
redis_link_cleanup(void *p)
{
	struct redis_link *rl = p;

	if (rl->w != NULL)
		loop_fd_del(rl->w);
	rl->w = NULL;
	rl->events = 0;
}

/* ---- hiredis callbacks ---- */

/* Handshake done: tell the owner. */
static void
redis_link_up(struct redis_link *rl)
{
	char t[300];

	rl->state = RL_UP;
	rl->up_since = loop_now(rl->loop);
	if (rl->connected_once)
		rl->reconnects++;
	rl->connected_once = true;
	broker_outage_note(
	    &rl->outage, true, rl->fails_total > 0, loop_now(rl->loop));
	log_notice("redis: link=%s up target=%s reconnects=%llu "
		   "failed_attempts=%llu",
	    rl->name, redis_link_target(rl, t, sizeof(t)),
	    (unsigned long long)rl->reconnects, (unsigned long long)rl->fails);
	rl->fails = 0;
	rl->cbs.up(rl->cbs.arg, rl);
}

/* One handshake reply arrived and was fine. */
static void
redis_link_handshake_step(struct redis_link *rl)
{
	if (rl->state != RL_HANDSHAKE || rl->hs_failed)
		return;
	if (--rl->hs_pending <= 0)
		redis_link_up(rl);
}

static void
redis_link_connect_cb(const redisAsyncContext *ac, int status)
{
	struct redis_link *rl = ac->ev.data;

	if (status != REDIS_OK) {
		/* hiredis frees ac after this; onDisconnect will not run. */
		redis_link_connect_failed(
		    rl, ac->errstr[0] ? ac->errstr : "failed");
		rl->ac = NULL;
		rl->state = RL_IDLE;
		redis_link_schedule(rl);
		return;
	}
	rl->state = RL_HANDSHAKE;
	if (rl->hs_pending == 0)
		redis_link_up(rl);
}

static void
redis_link_disconnect_cb(const redisAsyncContext *ac, int status)
{
	struct redis_link *rl = ac->ev.data;
	bool was_up = rl->state == RL_UP;
	const char *why = ac->errstr[0] ? ac->errstr : "closed by the server";

	rl->ac = NULL;
	rl->state = RL_IDLE;
	rl->outstanding = 0; /* their callbacks ran with NULL */
	if (rl->freeing)
		return;
	if (!was_up) {
		/* Lost during the handshake: a failed connect. */
		if (!rl->hs_failed)
			redis_link_connect_failed(rl, why);
		redis_link_schedule(rl);
		return;
	}
	if (status == REDIS_OK)
		log_notice("redis: link=%s closed", rl->name);
	else
		log_warnx("redis: link=%s lost: %s", rl->name, why);
	snprintf(rl->last_error, sizeof(rl->last_error), "%s", why);
	broker_outage_note(&rl->outage, false, true, loop_now(rl->loop));
	/* Only a link that stayed up a while starts the backoff afresh. */
	if (loop_now(rl->loop) - rl->up_since >= REDIS_LINK_STABLE_MS)
		rl->backoff = REDIS_LINK_BACKOFF_MIN_MS;
	rl->cbs.down(rl->cbs.arg, rl);
	redis_link_schedule(rl);
}

static void
redis_link_auth_cb(redisAsyncContext *ac, void *r, void *privdata)
{
	struct redis_link *rl = privdata;
	redisReply *reply = r;
	char why[BROKER_ERR_MAX];

	if (reply == NULL)
		return; /* the link is going down */
	if (reply->type == REDIS_REPLY_ERROR &&
	    strstr(reply->str, "without any password") == NULL &&
	    strstr(reply->str, "no password is set") == NULL) {
		snprintf(why, sizeof(why), "AUTH: %s", reply->str);
		redis_link_handshake_failed(rl, ac, why);
		return;
	}
	if (reply->type == REDIS_REPLY_ERROR)
		log_warnx("redis: link=%s AUTH: %s (continuing)", rl->name,
		    reply->str);
	redis_link_handshake_step(rl);
}

/* The reply of a probe that is not a subscription. */
static void
redis_link_probe_cb(redisAsyncContext *ac, void *r, void *privdata)
{
	struct redis_link *rl = privdata;
	redisReply *reply = r;
	char why[BROKER_ERR_MAX];

	if (reply == NULL)
		return;
	if (reply->type == REDIS_REPLY_ERROR) {
		snprintf(why, sizeof(why), "probe: %s", reply->str);
		redis_link_handshake_failed(rl, ac, why);
		return;
	}
	redis_link_handshake_step(rl);
}

static bool
redis_link_is_confirmation(const redisReply *r)
{
	const redisReply *e;

	if (r->type != REDIS_REPLY_ARRAY || r->elements < 1)
		return false;
	e = r->element[0];
	if (e->type != REDIS_REPLY_STRING && e->type != REDIS_REPLY_STATUS)
		return false;
	return (e->len == 9 && memcmp(e->str, "subscribe", 9) == 0) ||
	       (e->len == 10 && memcmp(e->str, "psubscribe", 10) == 0);
}

/*
 * Every subscriber reply (hiredis keeps one callback per channel: this one
 * for all). The first confirmation during the handshake is the probe's.
 */
static void
redis_link_push_cb(redisAsyncContext *ac, void *r, void *privdata)
{
	struct redis_link *rl = privdata;
	redisReply *reply = r;

	if (reply == NULL)
		return; /* the link is going down */
	if (rl->state == RL_HANDSHAKE && redis_link_is_confirmation(reply))
		redis_link_handshake_step(rl);
	if (rl->cbs.push != NULL)
		rl->cbs.push(rl->cbs.arg, rl, reply);
}

/* Queues AUTH and the probe; they go out once the connect completes. */
static void
redis_link_handshake_queue(struct redis_link *rl, redisAsyncContext *ac)
{
	const struct conf *c = rl->conf;

	rl->hs_pending = 0;
	rl->hs_failed = false;
	if (c->redis_password[0] != '\0') {
		const char *argv[3] = {
		    "AUTH", c->redis_user, c->redis_password};
		size_t lens[3] = {
		    4, strlen(c->redis_user), strlen(c->redis_password)};

		if (c->redis_user[0] == '\0') { /* the "default" user */
			argv[1] = argv[2];
			lens[1] = lens[2];
		}
		if (redisAsyncCommandArgv(ac, redis_link_auth_cb, rl,
			c->redis_user[0] != '\0' ? 3 : 2, argv,
			lens) == REDIS_OK)
			rl->hs_pending++;
	}
	if (rl->probe != NULL &&
	    redisAsyncFormattedCommand(ac,
		rl->probe_sub ? redis_link_push_cb : redis_link_probe_cb, rl,
		rl->probe, rl->probe_len) == REDIS_OK)
		rl->hs_pending++;
}

/* Wires a new context to the loop; returns -1 if the loop refused it. */
static int
redis_link_attach(struct redis_link *rl, redisAsyncContext *ac)
{
	rl->w = loop_fd_add(rl->loop, ac->c.fd, 0, redis_link_io_cb, rl);
	if (rl->w == NULL)
		return -1;
	/* The subscriber's messages come one by one: read them in batches
	 * under sustained traffic ([bridge] coalesce_ms, loop.h). */
	if (rl->cbs.push != NULL)
		loop_fd_coalesce(rl->w, rl->conf->coalesce_ms);
	rl->ac = ac;
	rl->events = 0;
	ac->ev.data = rl;
	ac->ev.addRead = redis_link_add_read;
	ac->ev.delRead = redis_link_del_read;
	ac->ev.addWrite = redis_link_add_write;
	ac->ev.delWrite = redis_link_del_write;
	ac->ev.cleanup = redis_link_cleanup;
	/* Setting the connect callback arms the write watcher, so the
	 * adapter must be attached first (hiredis async.c). */
	redisAsyncSetConnectCallback(ac, redis_link_connect_cb);
	redisAsyncSetDisconnectCallback(ac, redis_link_disconnect_cb);
	return 0;
}

static void
redis_link_connect(struct redis_link *rl)
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
	if (ac == NULL || ac->err || redis_link_attach(rl, ac) == -1) {
		redis_link_connect_failed(rl, ac == NULL ? "out of memory"
					      : ac->err  ? ac->errstr
							 : "out of memory");
		if (ac != NULL)
			redisAsyncFree(ac);
		rl->state = RL_IDLE;
		redis_link_schedule(rl);
		return;
	}
	if (c->redis_kind == CONF_REDIS_TCP)
		(void)redisEnableKeepAlive(&ac->c);
	redis_link_handshake_queue(rl, ac);
	log_debug("redis: link=%s connecting target=%s", rl->name,
	    redis_link_target(rl, t, sizeof(t)));
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
	rl->backoff = REDIS_LINK_BACKOFF_MIN_MS;
	return rl;
}

int
redis_link_set_probe(
    struct redis_link *rl, int argc, const char **argv, const size_t *lens)
{
	char *cmd;
	int len = redisFormatCommandArgv(&cmd, argc, argv, lens);

	if (len < 0)
		return -1;
	redisFreeCommand(rl->probe);
	rl->probe = cmd;
	rl->probe_len = (size_t)len;
	rl->probe_sub =
	    (lens[0] == 9 && strncasecmp(argv[0], "SUBSCRIBE", 9) == 0) ||
	    (lens[0] == 10 && strncasecmp(argv[0], "PSUBSCRIBE", 10) == 0);
	return 0;
}

void
redis_link_start(struct redis_link *rl)
{
	broker_outage_note(&rl->outage, false, false, loop_now(rl->loop));
	if (rl->state == RL_IDLE)
		redis_link_connect(rl);
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
		redis_link_schedule(rl);
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
	redisFreeCommand(rl->probe);
	free(rl);
}

bool
redis_link_is_up(const struct redis_link *rl)
{
	return rl->state == RL_UP && rl->ac != NULL;
}

int
redis_link_subscribe(
    struct redis_link *rl, int argc, const char **argv, const size_t *lens)
{
	if (!redis_link_is_up(rl))
		return -1;
	if (redisAsyncCommandArgv(
		rl->ac, redis_link_push_cb, rl, argc, argv, lens) != REDIS_OK)
		return -1;
	return 0;
}

static void
redis_link_write_cb(redisAsyncContext *ac, void *r, void *privdata)
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
	if (redisAsyncCommandArgv(
		rl->ac, redis_link_write_cb, rl, argc, argv, lens) != REDIS_OK)
		return -1;
	rl->outstanding++;
	return 0;
}

struct redis_link_call {
	struct redis_link *rl;
	redis_link_reply_fn *fn;
	void *arg;
};

static void
redis_link_command_cb(redisAsyncContext *ac, void *r, void *privdata)
{
	struct redis_link_call *call = privdata;

	(void)ac;
	if (r != NULL && call->rl->outstanding > 0)
		call->rl->outstanding--;
	call->fn(call->arg, r);
	free(call);
}

int
redis_link_command(struct redis_link *rl, redis_link_reply_fn *fn, void *arg,
    int argc, const char **argv, const size_t *lens)
{
	struct redis_link_call *call;

	if (!redis_link_is_up(rl) || (call = malloc(sizeof(*call))) == NULL)
		return -1;
	*call = (struct redis_link_call){rl, fn, arg};
	if (redisAsyncCommandArgv(rl->ac, redis_link_command_cb, call, argc,
		argv, lens) != REDIS_OK) {
		free(call);
		return -1;
	}
	rl->outstanding++;
	return 0;
}

int
redis_link_write_formatted(struct redis_link *rl, const char *cmd, size_t len)
{
	if (!redis_link_is_up(rl))
		return -1;
	if (redisAsyncFormattedCommand(
		rl->ac, redis_link_write_cb, rl, cmd, len) != REDIS_OK)
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

const char *
redis_link_last_error(const struct redis_link *rl)
{
	return rl->last_error;
}

void
redis_link_info(const struct redis_link *rl, struct broker_link_info *li)
{
	li->name = rl->name;
	li->up = redis_link_is_up(rl);
	li->state = redis_link_state_names[rl->state];
	li->reconnects = rl->reconnects;
	li->connect_failures = rl->fails_total;
	li->outages = rl->outage.outages;
	li->last_error = rl->last_error;
}
