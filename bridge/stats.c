/*
 * stats.c - the stats socket (nng REP, one JSON request and reply; the
 * document is built by stats_json.c) and the snapshot the loop renders
 * for /metrics and /healthz every STATS_SNAPSHOT_MS (metrics.c, health.c,
 * served by metrics_http.c). Both start from a stats view (stats_view.h).
 *
 * The REP socket's listener repairs itself (ipc_listener.h): a client
 * that gives up during the connection handshake (wspushctl --timeout
 * against a stopped bridge does) would otherwise leave it deaf for good.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>

#include "health.h"
#include "ipc_listener.h"
#include "log.h"
#include "metrics.h"
#include "metrics_http.h"
#include "stats.h"
#include "stats_json.h"
#include "stats_view.h"

struct stats {
	struct loop *loop;
	struct bridge *b;
	const struct conf *c;
	const char *node;
	uint64_t epoch;
	char url[CONF_RUNTIME_DIR_MAX + 32];

	nng_socket rep;
	bool rep_open;
	struct ipc_listener *lsn;
	struct loop_fd *w_rep;
	uint64_t requests, bad_requests;

	struct metrics_http *http;
	uint64_t snap_timer;
};

/* A view of the node, with the stats socket's own figures added (the
 * bridge does not know them). Returns 0, or -1 if out of memory. */
static int
stats_view(struct stats *s, struct stats_view *v)
{
	if (stats_view_take(v, s->b, s->node, s->epoch) == -1)
		return -1;
	v->stats_requests = s->requests;
	v->stats_listener_restarts = ipc_listener_restarts(s->lsn);
	return 0;
}

/* ---- the REP socket ---- */

static json_t *
stats_error_reply(const char *why)
{
	return json_pack("{s:i, s:s}", "v", 1, "error", why);
}

/* {"v":1,"cmd":"stats"}: the whole document (stats_json.h). */
static json_t *
stats_cmd_stats(struct stats *s, const json_t *req)
{
	struct stats_view v;
	json_t *out;

	if (stats_view(s, &v) == -1)
		return NULL;
	out = stats_json_build(&v);
	stats_view_release(&v);
	return out;
}

/*
 * The commands of the stats socket (proto/PROTOCOL.md): each gets the
 * parsed request and returns a new reply object, or NULL if out of memory.
 */
static const struct {
	const char *name;
	json_t *(*fn)(struct stats *s, const json_t *req);
} stats_cmds[] = {
    {"stats", stats_cmd_stats},
};

static json_t *
stats_answer(struct stats *s, const char *req, size_t len)
{
	json_error_t je;
	json_t *r, *out = NULL;
	const char *cmd;
	size_t i;

	if (len > STATS_REQ_MAX) {
		s->bad_requests++;
		return stats_error_reply("request too large");
	}
	r = json_loadb(req, len, JSON_REJECT_DUPLICATES, &je);
	if (r == NULL || !json_is_object(r)) {
		json_decref(r);
		s->bad_requests++;
		return stats_error_reply("request is not a JSON object");
	}
	if (json_integer_value(json_object_get(r, "v")) != 1) {
		json_decref(r);
		s->bad_requests++;
		return stats_error_reply("unsupported version");
	}
	cmd = json_string_value(json_object_get(r, "cmd"));
	for (i = 0; i < sizeof(stats_cmds) / sizeof(stats_cmds[0]); i++)
		if (cmd != NULL && strcmp(cmd, stats_cmds[i].name) == 0)
			break;
	if (i == sizeof(stats_cmds) / sizeof(stats_cmds[0])) {
		s->bad_requests++;
		out = stats_error_reply("unknown command");
	} else if ((out = stats_cmds[i].fn(s, r)) == NULL) {
		out = stats_error_reply("out of memory");
	}
	json_decref(r);
	return out;
}

static void
stats_rep_cb(struct loop *l, int fd, int revents, void *arg)
{
	struct stats *s = arg;

	/* Bounded: a few requests per wakeup; the fd stays raised if more. */
	for (int i = 0; i < 16; i++) {
		nng_msg *m;
		json_t *reply;
		char *text;
		int rv = nng_recvmsg(s->rep, &m, NNG_FLAG_NONBLOCK);

		if (rv != 0)
			return; /* NNG_EAGAIN, or closed */
		s->requests++;
		reply = stats_answer(s, nng_msg_body(m), nng_msg_len(m));
		text = reply != NULL ? json_dumps(reply, JSON_COMPACT) : NULL;
		json_decref(reply);
		nng_msg_clear(m);
		if (text == NULL ||
		    nng_msg_append(m, text, strlen(text)) != 0) {
			nng_msg_free(m);
			free(text);
			continue; /* the requester times out */
		}
		free(text);
		if (nng_sendmsg(s->rep, m, NNG_FLAG_NONBLOCK) != 0)
			nng_msg_free(m);
	}
}

static int
stats_rep_open(struct stats *s, char *err, size_t errlen)
{
	int rv, fd;
	const char *what;

	if ((rv = nng_rep0_open(&s->rep)) != 0) {
		what = "nng_rep0_open";
		goto fail;
	}
	s->rep_open = true;
	if ((rv = nng_socket_set_size(
		 s->rep, NNG_OPT_RECVMAXSZ, STATS_REQ_MAX + 1)) != 0) {
		what = "NNG_OPT_RECVMAXSZ";
		goto fail;
	}
	s->lsn = ipc_listener_new(s->loop, s->rep, s->url,
	    IPC_LISTENER_PEER_REQ, false, "stats", err, errlen);
	if (s->lsn == NULL)
		return -1;
	/* nng's fd: watched, never read or closed by us. */
	if ((rv = nng_socket_get_int(s->rep, NNG_OPT_RECVFD, &fd)) != 0) {
		what = "NNG_OPT_RECVFD";
		goto fail;
	}
	s->w_rep = loop_fd_add(s->loop, fd, POLLIN, stats_rep_cb, s);
	if (s->w_rep == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
fail:
	snprintf(err, errlen, "%s(%s): %s", what, s->url, nng_strerror(rv));
	return -1;
}

/* ---- the snapshot for /metrics and /healthz ---- */

static void
stats_snapshot_cb(struct loop *l, uint64_t id, void *arg)
{
	struct stats *s = arg;
	struct stats_view v;
	char *text = NULL;
	size_t len = 0;
	char body[256];
	uint16_t status;
	FILE *f;

	if (stats_view(s, &v) == -1)
		return; /* out of memory: keep the previous snapshot */
	status = health_verdict(&v, body, sizeof(body));
	if ((f = open_memstream(&text, &len)) != NULL) {
		metrics_render(f, &v);
		if (fclose(f) != 0) {
			free(text);
			text = NULL;
		}
	}
	stats_view_release(&v);
	metrics_http_publish(s->http, text, len, status, body);
}

/* ---- life ---- */

struct stats *
stats_open(struct loop *loop, struct bridge *b, const struct conf *c,
    const char *node, uint64_t epoch, char *err, size_t errlen)
{
	struct stats *s = calloc(1, sizeof(*s));

	if (s == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	s->loop = loop;
	s->b = b;
	s->c = c;
	s->node = node;
	s->epoch = epoch;
	conf_stats_url(c, s->url, sizeof(s->url));
	if (stats_rep_open(s, err, errlen) == -1)
		goto fail;
	if ((s->http = metrics_http_open(&c->metrics_listen, err, errlen)) ==
	    NULL)
		goto fail;
	stats_snapshot_cb(loop, 0, s);
	s->snap_timer = loop_timer_add(
	    loop, STATS_SNAPSHOT_MS, STATS_SNAPSHOT_MS, stats_snapshot_cb, s);
	if (s->snap_timer == 0) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	log_notice("stats listening stats=%s metrics=%s:%u", s->url,
	    c->metrics_listen.host, (unsigned)c->metrics_listen.port);
	return s;
fail:
	stats_close(s);
	return NULL;
}

void
stats_close(struct stats *s)
{
	if (s == NULL)
		return;
	metrics_http_close(s->http);
	if (s->snap_timer != 0)
		loop_timer_del(s->loop, s->snap_timer);
	if (s->w_rep != NULL)
		loop_fd_del(s->w_rep);
	/* nng_close() waits for the pipe callbacks the listener gets. */
	if (s->rep_open)
		nng_close(s->rep);
	ipc_listener_free(s->lsn);
	free(s);
}
