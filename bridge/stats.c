/*
 * stats.c - the stats socket (REP, JSON) and /metrics + /healthz (nng's
 * HTTP server, fed by a snapshot the loop renders; see stats.h).
 *
 * nng 1.5.2 bug #1518 (hub.c) applies to the REP listener too: one plain
 * connect()+close() on stats.ipc and it never attaches a pipe again. Same
 * cure as the hub, but with a real peer: every STATS_CHECK_MS the loop
 * dials its own socket with a REQ socket (non-blocking) and recreates the
 * listener if no pipe reached the REP socket within STATS_CHECK_TIMEOUT_MS.
 * The check socket is closed only after its pipe attached (a fully set up
 * pipe closing is harmless) or when the listener is recreated anyway.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/http/http.h>

#include "clock.h"
#include "log.h"
#include "stats.h"

struct snapshot {
	pthread_mutex_t mu;
	char *metrics; /* malloc'ed text; NULL until the first render */
	size_t metrics_len;
	uint16_t health_status;
	char health_body[256];
};

struct stats {
	struct loop *loop;
	struct bridge *b;
	const struct conf *c;
	const char *node;
	uint64_t epoch;
	char url[CONF_RUNTIME_DIR_MAX + 32];

	nng_socket rep;
	bool rep_open;
	nng_listener lsn;
	bool lsn_started;
	struct loop_fd *w_rep;
	uint64_t requests, bad_requests;

	/* Listener self-check (bug #1518). */
	uint64_t check_timer;
	nng_socket chk;
	bool chk_open;
	uint64_t chk_deadline;
	atomic_uint adds; /* {atomic} pipes attached to the REP socket */
	unsigned int adds0;
	uint64_t listener_restarts;

	/* Redis outage bookkeeping (observed by the snapshot timer). */
	uint64_t down_since; /* monotonic ms, 0 while up */
	bool was_up;         /* the links were up once */
	uint64_t last_outage_ms;
	uint64_t outages;

	nng_http_server *http;
	uint64_t snap_timer;
	struct snapshot snap;
};

/* ---- the JSON document ---- */

struct wvec {
	size_t n, cap;
	struct bridge_worker_info *v;
	bool oom;
};

static void
wvec_add(void *arg, const struct bridge_worker_info *w)
{
	struct wvec *wv = arg;

	if (wv->n == wv->cap) {
		size_t nc = wv->cap == 0 ? 8 : wv->cap * 2;
		struct bridge_worker_info *nv =
		    realloc(wv->v, nc * sizeof(*nv));

		if (nv == NULL) {
			wv->oom = true;
			return;
		}
		wv->v = nv;
		wv->cap = nc;
	}
	wv->v[wv->n++] = *w;
}

static int
wcmp(const void *a, const void *b)
{
	const struct bridge_worker_info *x = a, *y = b;

	if (x->slot != y->slot)
		return x->slot < y->slot ? -1 : 1;
	if (x->gen != y->gen)
		return x->gen < y->gen ? -1 : 1;
	return 0;
}

/* Workers sorted by (slot, gen); borrowed until the bridge runs again. */
static void
workers_get(struct stats *s, struct wvec *wv)
{
	memset(wv, 0, sizeof(*wv));
	bridge_worker_each(s->b, wvec_add, wv);
	if (wv->n > 1)
		qsort(wv->v, wv->n, sizeof(*wv->v), wcmp);
}

static bool
counter_get(const struct bridge_worker_info *w, const char *name, uint64_t *v)
{
	for (size_t i = 0; i < w->n_counters; i++) {
		if (strcmp(w->names[i], name) == 0) {
			*v = w->values[i];
			return true;
		}
	}
	return false;
}

/*
 * The master's figures arrive through its workers (PROTOCOL.md): every
 * worker reports the same node-wide values; the largest seen is the
 * freshest.
 */
static const char *const master_names[] = {
    "master_restarts", "master_reloads", "master_crash_loops"};
#define N_MASTER (sizeof(master_names) / sizeof(master_names[0]))

static bool
master_get(const struct wvec *wv, uint64_t out[N_MASTER])
{
	bool any = false;

	memset(out, 0, N_MASTER * sizeof(out[0]));
	for (size_t i = 0; i < wv->n; i++) {
		for (size_t k = 0; k < N_MASTER; k++) {
			uint64_t v;

			if (counter_get(&wv->v[i], master_names[k], &v)) {
				any = true;
				if (v > out[k])
					out[k] = v;
			}
		}
	}
	return any;
}

/* Outages of the Redis links. The wait for the first connection at
 * start is one only if a connection attempt failed: a bridge that simply
 * connects must not report an outage. */
static void
redis_observe(struct stats *s, const struct bridge_counters *bc, uint64_t now)
{
	bool up = bc->sub_up && bc->cmd_up;

	if (!up && s->down_since == 0) {
		s->down_since = now;
	} else if (up && s->down_since != 0) {
		if (s->was_up || bc->connect_failures > 0) {
			s->last_outage_ms = now - s->down_since;
			s->outages++;
		}
		s->down_since = 0;
	}
	if (up)
		s->was_up = true;
}

static int
jset(json_t *o, const char *k, json_t *v)
{
	return json_object_set_new(o, k, v);
}

static json_t *
stats_json(struct stats *s)
{
	struct bridge_counters bc;
	struct wvec wv;
	uint64_t now = clock_mono_ms(), m[N_MASTER];
	json_t *root = json_object(), *br = json_object(),
	       *redis = json_object();
	json_t *drops = json_object(), *workers = json_array();
	json_t *master = json_object();
	char epoch[24];
	bool has_master;

	bridge_counters(s->b, &bc);
	redis_observe(s, &bc, now);
	workers_get(s, &wv);
	if (root == NULL || br == NULL || redis == NULL || drops == NULL ||
	    workers == NULL || master == NULL || wv.oom)
		goto fail;
	snprintf(epoch, sizeof(epoch), "%016" PRIx64, s->epoch);

	jset(redis, "state",
	    json_string(bc.sub_up && bc.cmd_up ? "up" : "down"));
	jset(redis, "sub_up", json_boolean(bc.sub_up));
	jset(redis, "cmd_up", json_boolean(bc.cmd_up));
	jset(redis, "reconnects",
	    json_integer((json_int_t)(bc.sub_reconnects + bc.cmd_reconnects)));
	jset(redis, "sub_reconnects",
	    json_integer((json_int_t)bc.sub_reconnects));
	jset(redis, "cmd_reconnects",
	    json_integer((json_int_t)bc.cmd_reconnects));
	jset(redis, "sub_resets", json_integer((json_int_t)bc.sub_resets));
	jset(redis, "outages", json_integer((json_int_t)s->outages));
	jset(redis, "connect_failures",
	    json_integer((json_int_t)bc.connect_failures));
	jset(redis, "down_for_ms",
	    json_integer(
		s->down_since != 0 ? (json_int_t)(now - s->down_since) : 0));
	jset(redis, "last_outage_ms",
	    json_integer((json_int_t)s->last_outage_ms));

	for (int d = 0; d < BRIDGE_DROP_COUNT; d++)
		jset(drops, bridge_drop_str((enum bridge_drop)d),
		    json_integer((json_int_t)bc.drops[d]));

	jset(br, "version", json_string(bc.version));
	jset(br, "node", json_string(s->node));
	jset(br, "epoch", json_string(epoch));
	jset(br, "pid", json_integer((json_int_t)getpid()));
	jset(br, "uptime_s", json_integer((json_int_t)bc.uptime_s));
	jset(br, "redis", redis);
	redis = NULL;
	jset(br, "subscriptions", json_integer((json_int_t)bc.subscriptions));
	jset(br, "addresses", json_integer((json_int_t)bc.addresses));
	jset(br, "acks_waiting", json_integer((json_int_t)bc.acks_waiting));
	jset(
	    br, "msgs_from_redis", json_integer((json_int_t)bc.redis_messages));
	jset(br, "envelopes_published", json_integer((json_int_t)bc.bus_msgs));
	jset(br, "bus_acks", json_integer((json_int_t)bc.bus_acks));
	jset(br, "bus_heartbeats", json_integer((json_int_t)bc.bus_heartbeats));
	jset(br, "bus_batches", json_integer((json_int_t)bc.bus_batches));
	jset(br, "last_seq", json_integer((json_int_t)bc.last_seq));
	jset(br, "upstream_envelopes",
	    json_integer((json_int_t)bc.upstream_envelopes));
	jset(br, "upstream_writes",
	    json_integer((json_int_t)bc.upstream_writes));
	jset(br, "queued_writes", json_integer((json_int_t)bc.queued_writes));
	jset(br, "workers", json_integer((json_int_t)bc.workers));
	jset(br, "connections", json_integer((json_int_t)bc.connections));
	jset(br, "users", json_integer((json_int_t)bc.users));
	jset(br, "stats_requests", json_integer((json_int_t)s->requests));
	jset(br, "stats_listener_restarts",
	    json_integer((json_int_t)s->listener_restarts));
	jset(br, "drops", drops);
	drops = NULL;

	for (size_t i = 0; i < wv.n; i++) {
		const struct bridge_worker_info *w = &wv.v[i];
		json_t *o = json_object(), *cs = json_object();
		uint64_t ago =
		    now >= w->last_seen_ms ? now - w->last_seen_ms : 0;

		if (o == NULL || cs == NULL) {
			json_decref(o);
			json_decref(cs);
			goto fail;
		}
		for (size_t k = 0; k < w->n_counters; k++)
			jset(cs, w->names[k],
			    json_integer((json_int_t)w->values[k]));
		jset(o, "slot", json_integer(w->slot));
		jset(o, "gen", json_integer(w->gen));
		jset(o, "pid", json_integer(w->pid));
		jset(o, "last_seen_ms", json_integer((json_int_t)ago));
		jset(o, "attached", json_boolean(ago <= STATS_ATTACHED_MS));
		jset(o, "counters", cs);
		json_array_append_new(workers, o);
	}

	has_master = master_get(&wv, m);
	jset(master, "reported", json_boolean(has_master));
	jset(master, "restarts", json_integer((json_int_t)m[0]));
	jset(master, "reloads", json_integer((json_int_t)m[1]));
	jset(master, "crash_loops", json_integer((json_int_t)m[2]));

	jset(root, "v", json_integer(1));
	jset(root, "bridge", br);
	jset(root, "workers", workers);
	jset(root, "master", master);
	free(wv.v);
	return root;
fail:
	free(wv.v);
	json_decref(root);
	json_decref(br);
	json_decref(redis);
	json_decref(drops);
	json_decref(workers);
	json_decref(master);
	return NULL;
}

/* ---- the REP socket ---- */

static json_t *
error_reply(const char *why)
{
	return json_pack("{s:i, s:s}", "v", 1, "error", why);
}

static json_t *
answer(struct stats *s, const char *req, size_t len)
{
	json_error_t je;
	json_t *r, *cmd;
	json_t *out;

	if (len > STATS_REQ_MAX) {
		s->bad_requests++;
		return error_reply("request too large");
	}
	r = json_loadb(req, len, JSON_REJECT_DUPLICATES, &je);
	if (r == NULL || !json_is_object(r)) {
		json_decref(r);
		s->bad_requests++;
		return error_reply("request is not a JSON object");
	}
	if (json_integer_value(json_object_get(r, "v")) != 1) {
		json_decref(r);
		s->bad_requests++;
		return error_reply("unsupported version");
	}
	cmd = json_object_get(r, "cmd");
	if (json_is_string(cmd) && strcmp(json_string_value(cmd), "stats") == 0)
		out = stats_json(s);
	else
		out = error_reply("unknown command");
	if (out == NULL)
		out = error_reply("out of memory");
	json_decref(r);
	return out;
}

static void
rep_cb(struct loop *l, int fd, int revents, void *arg)
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
		reply = answer(s, nng_msg_body(m), nng_msg_len(m));
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

/* nng thread: a pipe was attached to the REP socket. */
static void
rep_add_cb(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	struct stats *s = arg;

	atomic_fetch_add(&s->adds, 1);
}

static int
stats_lsn_start(struct stats *s, char *err, size_t errlen)
{
	const char *what;
	int rv;

	if ((rv = nng_listener_create(&s->lsn, s->rep, s->url)) != 0) {
		what = "nng_listener_create";
		goto fail;
	}
	/* Before start; without it the umask decides. */
	if ((rv = nng_listener_set_int(
		 s->lsn, NNG_OPT_IPC_PERMISSIONS, 0660)) != 0) {
		what = "NNG_OPT_IPC_PERMISSIONS";
		nng_listener_close(s->lsn);
		goto fail;
	}
	if ((rv = nng_listener_start(s->lsn, 0)) != 0) {
		what = "nng_listener_start";
		nng_listener_close(s->lsn);
		goto fail;
	}
	s->lsn_started = true;
	return 0;
fail:
	snprintf(err, errlen, "%s(%s): %s", what, s->url, nng_strerror(rv));
	return -1;
}

static void
check_end(struct stats *s)
{
	if (s->chk_open)
		nng_close(s->chk);
	s->chk_open = false;
}

static void
lsn_restart(struct stats *s, const char *why)
{
	char err[256];

	check_end(s);
	s->listener_restarts++;
	log_warnx("stats: listener %s stopped answering (%s; nng 1.5.2 bug "
		  "#1518): recreating it",
	    s->url, why);
	if (s->lsn_started)
		nng_listener_close(s->lsn);
	s->lsn_started = false;
	if (stats_lsn_start(s, err, sizeof(err)) == -1)
		log_errx("stats: %s (retrying)", err);
}

static void
check_cb(struct loop *l, uint64_t id, void *arg)
{
	struct stats *s = arg;
	uint64_t now = loop_now(l);

	if (s->chk_open) {
		if (atomic_load(&s->adds) != s->adds0)
			check_end(s); /* healthy */
		else if (now >= s->chk_deadline)
			lsn_restart(s, "connection not attached");
		return;
	}
	if (!s->lsn_started) {
		lsn_restart(s, "not listening");
		return;
	}
	if (nng_req0_open(&s->chk) != 0)
		return; /* try next time */
	s->chk_open = true;
	s->adds0 = atomic_load(&s->adds);
	s->chk_deadline = now + STATS_CHECK_TIMEOUT_MS;
	if (nng_dial(s->chk, s->url, NULL, NNG_FLAG_NONBLOCK) != 0)
		check_end(s);
}

static int
rep_open(struct stats *s, char *err, size_t errlen)
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
	if ((rv = nng_pipe_notify(
		 s->rep, NNG_PIPE_EV_ADD_POST, rep_add_cb, s)) != 0) {
		what = "nng_pipe_notify";
		goto fail;
	}
	if (stats_lsn_start(s, err, errlen) == -1)
		return -1;
	/* nng's fd: watched, never read or closed by us. */
	if ((rv = nng_socket_get_int(s->rep, NNG_OPT_RECVFD, &fd)) != 0) {
		what = "NNG_OPT_RECVFD";
		goto fail;
	}
	s->w_rep = loop_fd_add(s->loop, fd, POLLIN, rep_cb, s);
	if (s->w_rep == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
fail:
	snprintf(err, errlen, "%s(%s): %s", what, s->url, nng_strerror(rv));
	return -1;
}

/* ---- Prometheus text ---- */

enum mtype { M_COUNTER, M_GAUGE };

/* Worker counters and the families they go to. */
struct wmetric {
	const char *counter; /* worker counter name */
	const char *family;
	enum mtype type;
	const char *help;
	const char *label; /* extra label "k=\"v\"", or NULL */
};

static const struct wmetric wmetrics[] = {
    {"bus_attached", "wspush_worker_bus_attached", M_GAUGE,
	"1 while the worker receives the bridge's heartbeats on the bus.",
	NULL},
    {"connections", "wspush_connections", M_GAUGE,
	"Open WebSocket connections.", NULL},
    {"users", "wspush_users", M_GAUGE, "Distinct users connected.", NULL},
    {"subscriptions", "wspush_worker_subscriptions", M_GAUGE,
	"Channel subscriptions held by clients.", NULL},
    {"msgs_in", "wspush_bus_messages_in_total", M_COUNTER,
	"Messages received from the node bus.", NULL},
    {"bus_targets", "wspush_bus_targets_total", M_COUNTER,
	"Bus messages times their target connections (to be delivered or "
	"dropped).",
	NULL},
    {"replies", "wspush_replies_total", M_COUNTER,
	"Protocol frames queued to clients (welcome, subscribed, ...).", NULL},
    {"frames_out", "wspush_frames_delivered_total", M_COUNTER,
	"Frames delivered to clients.", NULL},
    {"bytes_out", "wspush_bytes_out_total", M_COUNTER,
	"Bytes written to clients.", NULL},
    {"drop_queue_full", "wspush_drops_total", M_COUNTER,
	"Messages dropped, by reason.", "reason=\"queue_full\""},
    {"drop_slow_closed", "wspush_drops_total", M_COUNTER, NULL,
	"reason=\"slow_closed\""},
    {"drop_closed", "wspush_drops_total", M_COUNTER, NULL, "reason=\"closed\""},
    {"drop_too_large", "wspush_drops_total", M_COUNTER, NULL,
	"reason=\"too_large\""},
    {"drop_bus_gap", "wspush_drops_total", M_COUNTER, NULL,
	"reason=\"bus_gap\""},
    {"drop_bad_envelope", "wspush_drops_total", M_COUNTER, NULL,
	"reason=\"bad_envelope\""},
    {"drop_up_queue", "wspush_drops_total", M_COUNTER, NULL,
	"reason=\"up_queue\""},
    {"queue_bytes", "wspush_queue_bytes", M_GAUGE, "Bytes queued to clients.",
	NULL},
    {"queue_frames", "wspush_queue_frames", M_GAUGE,
	"Frames queued to clients.", NULL},
    {"queue_hwm", "wspush_queue_hwm_bytes", M_GAUGE,
	"High-water mark of one client's queue.", NULL},
    {"hs_accepted", "wspush_handshakes_accepted_total", M_COUNTER,
	"WebSocket handshakes accepted.", NULL},
    {"hs_rejected_auth", "wspush_handshakes_rejected_total", M_COUNTER,
	"WebSocket handshakes rejected, by reason.", "reason=\"auth\""},
    {"hs_rejected_origin", "wspush_handshakes_rejected_total", M_COUNTER, NULL,
	"reason=\"origin\""},
    {"hs_rejected_limit", "wspush_handshakes_rejected_total", M_COUNTER, NULL,
	"reason=\"limit\""},
    {"hs_rejected_path", "wspush_handshakes_rejected_total", M_COUNTER, NULL,
	"reason=\"path\""},
    {"closed_slow", "wspush_closed_total", M_COUNTER,
	"Connections closed by the server, by reason.", "reason=\"slow\""},
    {"closed_abuse", "wspush_closed_total", M_COUNTER, NULL,
	"reason=\"abuse\""},
    {"closed_too_big", "wspush_closed_total", M_COUNTER, NULL,
	"reason=\"too_big\""},
    {"interest_pending", "wspush_interest_pending", M_GAUGE,
	"Addresses waiting for their Redis subscription.", NULL},
};
#define N_WMETRICS (sizeof(wmetrics) / sizeof(wmetrics[0]))

static bool
wmetric_known(const char *name)
{
	for (size_t k = 0; k < N_WMETRICS; k++)
		if (strcmp(wmetrics[k].counter, name) == 0)
			return true;
	for (size_t k = 0; k < N_MASTER; k++)
		if (strcmp(master_names[k], name) == 0)
			return true;
	return false;
}

/* Names from workers go into a label value: [A-Za-z0-9_] only. */
static bool
metric_name_ok(const char *name)
{
	if (*name == '\0')
		return false;
	for (const char *p = name; *p != '\0'; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			(*p >= '0' && *p <= '9') || *p == '_'))
			return false;
	return true;
}

static void
head(FILE *f, const char *family, enum mtype t, const char *help)
{
	/* The sample name, _total included (text format 0.0.4, as
	 * Prometheus' own client libraries print it). */
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", family, help, family,
	    t == M_COUNTER ? "counter" : "gauge");
}

static void
metrics_render(struct stats *s, FILE *f, const struct bridge_counters *bc,
    const struct wvec *wv)
{
	uint64_t m[N_MASTER];

	head(
	    f, "wspush_build_info", M_GAUGE, "Version and node of the bridge.");
	fprintf(f, "wspush_build_info{version=\"%s\",node=\"%s\"} 1\n",
	    bc->version, s->node);
	head(f, "wspush_uptime_seconds", M_GAUGE,
	    "Seconds since the bridge "
	    "started.");
	fprintf(f, "wspush_uptime_seconds %" PRIu64 "\n", bc->uptime_s);
	head(f, "wspush_redis_up", M_GAUGE,
	    "1 when both Redis links (subscriber and command) are up.");
	fprintf(f, "wspush_redis_up %d\n", bc->sub_up && bc->cmd_up);
	head(f, "wspush_redis_reconnects_total", M_COUNTER,
	    "Redis reconnections, by link.");
	fprintf(f,
	    "wspush_redis_reconnects_total{link=\"sub\"} %" PRIu64 "\n"
	    "wspush_redis_reconnects_total{link=\"cmd\"} %" PRIu64 "\n",
	    bc->sub_reconnects, bc->cmd_reconnects);
	head(f, "wspush_subscriptions", M_GAUGE,
	    "Redis subscriptions confirmed.");
	fprintf(f, "wspush_subscriptions %" PRIu64 "\n", bc->subscriptions);
	head(f, "wspush_messages_from_redis_total", M_COUNTER,
	    "Messages received from Redis.");
	fprintf(f, "wspush_messages_from_redis_total %" PRIu64 "\n",
	    bc->redis_messages);
	head(f, "wspush_envelopes_published_total", M_COUNTER,
	    "Message envelopes published on the node bus.");
	fprintf(
	    f, "wspush_envelopes_published_total %" PRIu64 "\n", bc->bus_msgs);
	head(f, "wspush_upstream_writes_total", M_COUNTER,
	    "Writes sent to Redis for the workers.");
	fprintf(f, "wspush_upstream_writes_total %" PRIu64 "\n",
	    bc->upstream_writes);
	head(f, "wspush_upstream_queued", M_GAUGE,
	    "Writes waiting for the Redis command link.");
	fprintf(f, "wspush_upstream_queued %" PRIu64 "\n", bc->queued_writes);
	head(f, "wspush_bridge_drops_total", M_COUNTER,
	    "Messages dropped by the bridge, by reason.");
	for (int d = 0; d < BRIDGE_DROP_COUNT; d++)
		fprintf(f,
		    "wspush_bridge_drops_total{reason=\"%s\"} %" PRIu64 "\n",
		    bridge_drop_str((enum bridge_drop)d), bc->drops[d]);
	head(f, "wspush_workers", M_GAUGE, "Workers known to the bridge.");
	fprintf(f, "wspush_workers %zu\n", wv->n);
	if (master_get(wv, m)) {
		head(f, "wspush_master_worker_restarts_total", M_COUNTER,
		    "Workers restarted by the gateway master.");
		fprintf(f, "wspush_master_worker_restarts_total %" PRIu64 "\n",
		    m[0]);
		head(f, "wspush_master_reloads_total", M_COUNTER,
		    "Configuration reloads by the gateway master.");
		fprintf(f, "wspush_master_reloads_total %" PRIu64 "\n", m[1]);
		head(f, "wspush_master_crash_loops_total", M_COUNTER,
		    "Crash loops detected by the gateway master.");
		fprintf(
		    f, "wspush_master_crash_loops_total %" PRIu64 "\n", m[2]);
	}
	head(f, "wspush_worker_last_seen_seconds", M_GAUGE,
	    "Seconds since the worker's last report.");
	for (size_t i = 0; i < wv->n; i++) {
		uint64_t now = clock_mono_ms();
		uint64_t seen = wv->v[i].last_seen_ms;

		fprintf(f,
		    "wspush_worker_last_seen_seconds{worker=\"%" PRIu32
		    "\",gen=\"%" PRIu32 "\"} %.3f\n",
		    wv->v[i].slot, wv->v[i].gen,
		    now >= seen ? (double)(now - seen) / 1000.0 : 0.0);
	}
	/* Counters not in the table (newer workers): one generic family. */
	head(f, "wspush_worker_counter", M_GAUGE,
	    "Other worker counters, by name (see wspushctl stats).");
	for (size_t i = 0; i < wv->n; i++) {
		const struct bridge_worker_info *w = &wv->v[i];

		for (size_t c = 0; c < w->n_counters; c++) {
			if (wmetric_known(w->names[c]) ||
			    !metric_name_ok(w->names[c]))
				continue;
			fprintf(f,
			    "wspush_worker_counter{worker=\"%" PRIu32
			    "\",gen=\"%" PRIu32 "\",name=\"%s\"} %" PRIu64 "\n",
			    w->slot, w->gen, w->names[c], w->values[c]);
		}
	}
	/* Families in table order; a family's rows are consecutive. */
	for (size_t k = 0; k < N_WMETRICS; k++) {
		const struct wmetric *wm = &wmetrics[k];

		if (wm->help != NULL)
			head(f, wm->family, wm->type, wm->help);
		for (size_t i = 0; i < wv->n; i++) {
			uint64_t v;

			if (!counter_get(&wv->v[i], wm->counter, &v))
				continue;
			fprintf(f,
			    "%s{worker=\"%" PRIu32 "\",gen=\"%" PRIu32
			    "\"%s%s} %" PRIu64 "\n",
			    wm->family, wv->v[i].slot, wv->v[i].gen,
			    wm->label != NULL ? "," : "",
			    wm->label != NULL ? wm->label : "", v);
		}
	}
}

static void
snapshot_cb(struct loop *l, uint64_t id, void *arg)
{
	struct stats *s = arg;
	struct bridge_counters bc;
	struct wvec wv;
	uint64_t now = clock_mono_ms();
	char *text = NULL;
	size_t len = 0;
	FILE *f;
	uint16_t status = 200;
	char body[256];
	size_t stale = 0, deaf = 0;

	bridge_counters(s->b, &bc);
	redis_observe(s, &bc, now);
	workers_get(s, &wv);
	if (wv.oom) {
		free(wv.v);
		return; /* keep the previous snapshot */
	}
	for (size_t i = 0; i < wv.n; i++) {
		uint64_t hears = 1;

		if (now - wv.v[i].last_seen_ms > STATS_ATTACHED_MS)
			stale++;
		/* The worker reaches us upstream but misses our heartbeats
		 * on the bus (its own view, link_attached()). */
		else if (counter_get(&wv.v[i], "bus_attached", &hears) &&
			 hears == 0)
			deaf++;
	}
	if (!bc.sub_up) {
		status = 503;
		snprintf(body, sizeof(body), "redis subscriber link down\n");
	} else if (bc.subscriptions == 0) {
		status = 503;
		snprintf(
		    body, sizeof(body), "redis subscription not confirmed\n");
	} else if (!bc.cmd_up) {
		status = 503;
		snprintf(body, sizeof(body), "redis command link down\n");
	} else if (stale > 0) {
		status = 503;
		snprintf(body, sizeof(body),
		    "%zu of %zu workers not heard from within %d ms\n", stale,
		    wv.n, STATS_ATTACHED_MS);
	} else if (deaf > 0) {
		status = 503;
		snprintf(body, sizeof(body),
		    "%zu of %zu workers do not receive the bus\n", deaf, wv.n);
	} else {
		snprintf(body, sizeof(body),
		    "ok: redis subscribed, %zu "
		    "workers attached\n",
		    wv.n);
	}
	f = open_memstream(&text, &len);
	if (f != NULL) {
		metrics_render(s, f, &bc, &wv);
		if (fclose(f) != 0) {
			free(text);
			text = NULL;
		}
	}
	free(wv.v);
	pthread_mutex_lock(&s->snap.mu);
	if (text != NULL) {
		free(s->snap.metrics);
		s->snap.metrics = text;
		s->snap.metrics_len = len;
	}
	s->snap.health_status = status;
	memcpy(s->snap.health_body, body, sizeof(body));
	pthread_mutex_unlock(&s->snap.mu);
}

/* ---- HTTP handlers (nng threads) ---- */

static void
http_reply(nng_aio *aio, uint16_t status, const char *ctype, const void *body,
    size_t len)
{
	nng_http_res *res;

	if (nng_http_res_alloc(&res) != 0) {
		nng_aio_finish(aio, NNG_ENOMEM);
		return;
	}
	if (nng_http_res_set_status(res, status) != 0 ||
	    nng_http_res_set_header(res, "Content-Type", ctype) != 0 ||
	    nng_http_res_set_header(res, "Cache-Control", "no-store") != 0 ||
	    nng_http_res_copy_data(res, body, len) != 0) {
		nng_http_res_free(res);
		nng_aio_finish(aio, NNG_ENOMEM);
		return;
	}
	nng_aio_set_output(aio, 0, res);
	nng_aio_finish(aio, 0);
}

static struct snapshot *
handler_snap(nng_aio *aio)
{
	return nng_http_handler_get_data(nng_aio_get_input(aio, 1));
}

static void
metrics_handler(nng_aio *aio)
{
	struct snapshot *sn = handler_snap(aio);

	pthread_mutex_lock(&sn->mu);
	if (sn->metrics == NULL)
		http_reply(
		    aio, 503, "text/plain; charset=utf-8", "starting\n", 9);
	else
		http_reply(aio, 200, "text/plain; version=0.0.4; charset=utf-8",
		    sn->metrics, sn->metrics_len);
	pthread_mutex_unlock(&sn->mu);
}

static void
healthz_handler(nng_aio *aio)
{
	struct snapshot *sn = handler_snap(aio);
	char body[256];
	uint16_t status;

	pthread_mutex_lock(&sn->mu);
	status = sn->health_status;
	memcpy(body, sn->health_body, sizeof(body));
	pthread_mutex_unlock(&sn->mu);
	http_reply(
	    aio, status, "text/plain; charset=utf-8", body, strlen(body));
}

static int
http_open(struct stats *s, char *err, size_t errlen)
{
	const struct conf_hostport *hp = &s->c->metrics_listen;
	char url[300];
	nng_url *u = NULL;
	nng_http_handler *hm = NULL, *hh = NULL;
	const char *what;
	int rv;

	snprintf(url, sizeof(url),
	    strchr(hp->host, ':') != NULL ? "http://[%s]:%u" : "http://%s:%u",
	    hp->host, (unsigned)hp->port);
	if ((rv = nng_url_parse(&u, url)) != 0) {
		what = "nng_url_parse";
		goto fail;
	}
	if ((rv = nng_http_server_hold(&s->http, u)) != 0) {
		what = "nng_http_server_hold";
		s->http = NULL;
		goto fail;
	}
	what = "nng_http_handler_alloc";
	if ((rv = nng_http_handler_alloc(&hm, "/metrics", metrics_handler)) !=
	    0)
		goto fail;
	if ((rv = nng_http_handler_set_data(hm, &s->snap, NULL)) != 0 ||
	    (rv = nng_http_server_add_handler(s->http, hm)) != 0)
		goto fail;
	hm = NULL; /* the server's now */
	if ((rv = nng_http_handler_alloc(&hh, "/healthz", healthz_handler)) !=
	    0)
		goto fail;
	if ((rv = nng_http_handler_set_data(hh, &s->snap, NULL)) != 0 ||
	    (rv = nng_http_server_add_handler(s->http, hh)) != 0)
		goto fail;
	hh = NULL;
	if ((rv = nng_http_server_start(s->http)) != 0) {
		what = "nng_http_server_start";
		goto fail;
	}
	nng_url_free(u);
	return 0;
fail:
	snprintf(err, errlen, "metrics_listen %s: %s: %s", url, what,
	    nng_strerror(rv));
	if (hm != NULL)
		nng_http_handler_free(hm);
	if (hh != NULL)
		nng_http_handler_free(hh);
	if (u != NULL)
		nng_url_free(u);
	return -1;
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
	pthread_mutex_init(&s->snap.mu, NULL);
	s->snap.health_status = 503;
	snprintf(
	    s->snap.health_body, sizeof(s->snap.health_body), "starting\n");
	conf_stats_url(c, s->url, sizeof(s->url));
	if (rep_open(s, err, errlen) == -1)
		goto fail;
	s->check_timer = loop_timer_add(
	    loop, STATS_CHECK_MS, STATS_CHECK_MS / 2, check_cb, s);
	snapshot_cb(loop, 0, s);
	s->snap_timer = loop_timer_add(
	    loop, STATS_SNAPSHOT_MS, STATS_SNAPSHOT_MS, snapshot_cb, s);
	if (s->snap_timer == 0 || s->check_timer == 0) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (http_open(s, err, errlen) == -1)
		goto fail;
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
	if (s->http != NULL) {
		/* Waits for running handlers; none start after it. */
		nng_http_server_stop(s->http);
		nng_http_server_release(s->http);
	}
	if (s->snap_timer != 0)
		loop_timer_del(s->loop, s->snap_timer);
	if (s->check_timer != 0)
		loop_timer_del(s->loop, s->check_timer);
	check_end(s);
	if (s->w_rep != NULL)
		loop_fd_del(s->w_rep);
	if (s->rep_open)
		nng_close(s->rep);
	free(s->snap.metrics);
	pthread_mutex_destroy(&s->snap.mu);
	free(s);
}
