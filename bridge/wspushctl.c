/*
 * wspushctl.c - the operator's tool: publish to an address and look at
 * who is online, straight through Redis (synchronous hiredis).
 *
 *   wspushctl [-c FILE] publish (--user ID | --channel NAME | --all)
 *             [--from ID] [--id ID] MESSAGE|-
 *   wspushctl [-c FILE] online [--user ID]
 *   wspushctl [-c FILE] stats [--json] [--watch] [--count N]
 *   wspushctl listen URL [--send TEXT]... [--count N] [--timeout S]
 *             [--origin ORIGIN] [--token TOKEN]
 *
 * Reads the same config file as the daemons (for the Redis URL, password
 * and prefix, and the runtime_dir of the bridge's stats socket). Exit 0 on
 * success, 1 on failure (or "not online"), 2 on bad usage. `stats` asks
 * the bridge over ipc://<runtime_dir>/stats.ipc (nng REQ, JSON; see
 * proto/PROTOCOL.md). `listen` needs no config: it is a WebSocket client
 * (ctl_listen.c).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <jansson.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "addr.h"
#include "amqp_ctl.h"
#include "clock.h"
#include "conf.h"
#include "ctl_listen.h"
#include "log.h"
#include "wspenv.h"

#define STDIN_MAX (64u * 1024 * 1024)
#define PLURAL(n) ((n) == 1 ? "" : "s")

static const char *progname = "wspushctl";

static void
usage(void)
{
	fprintf(stderr,
	    "usage: wspushctl [-c FILE] <command>\n"
	    "  publish (--user ID | --channel NAME | --all) [--from ID] "
	    "[--id ID] MESSAGE\n"
	    "                 PUBLISH <prefix>:<address>; MESSAGE \"-\" reads "
	    "stdin; with --from\n"
	    "                 or --id a wspush envelope is sent; prints the "
	    "receiver count\n"
	    "  online [--user ID]\n"
	    "                 live nodes with their connections; with --user, "
	    "where the\n"
	    "                 user is connected (exit 1 if nowhere)\n"
	    "  stats [--json] [--watch] [--count N]\n"
	    "                 the node's counters from the bridge's stats "
	    "socket: a table,\n"
	    "                 --json the raw reply, --watch every second "
	    "with rates\n"
	    "                 (--count N: stop after N refreshes)\n"
	    "  listen URL [--send TEXT]... [--count N] [--timeout S] "
	    "[--origin O] [--token T]\n"
	    "                 connect to ws://HOST:PORT/PATH?QUERY as a "
	    "client, send the\n"
	    "                 --send messages, print every message that "
	    "arrives\n"
	    "config: -c FILE, else $WSPUSH_CONF, else "
	    "/etc/wspush/wspush.conf\n");
	exit(2);
}

static redisContext *
connect_redis(const struct conf *c)
{
	struct timeval tv = {2, 0};
	redisContext *rc;
	redisReply *r;

	if (c->redis_kind == CONF_REDIS_UNIX)
		rc = redisConnectUnixWithTimeout(c->redis_unix_path, tv);
	else
		rc = redisConnectWithTimeout(c->redis_host, c->redis_port, tv);
	if (rc == NULL || rc->err) {
		fprintf(stderr, "%s: redis connect(%s): %s\n", progname,
		    c->redis_url, rc != NULL ? rc->errstr : "out of memory");
		redisFree(rc);
		return NULL;
	}
	(void)redisSetTimeout(rc, tv);
	if (c->redis_password[0] != '\0') {
		r = redisCommand(rc, "AUTH %s", c->redis_password);
		if (r == NULL || r->type == REDIS_REPLY_ERROR) {
			fprintf(stderr, "%s: redis AUTH: %s\n", progname,
			    r != NULL ? r->str : rc->errstr);
			freeReplyObject(r);
			redisFree(rc);
			return NULL;
		}
		freeReplyObject(r);
	}
	return rc;
}

/* A reply or a printed error: NULL on failure. */
static redisReply *
command_argv(redisContext *rc, int argc, const char **argv, const size_t *lens)
{
	redisReply *r = redisCommandArgv(rc, argc, argv, lens);

	if (r == NULL) {
		fprintf(stderr, "%s: redis %s: %s\n", progname, argv[0],
		    rc->errstr);
		return NULL;
	}
	if (r->type == REDIS_REPLY_ERROR) {
		fprintf(
		    stderr, "%s: redis %s: %s\n", progname, argv[0], r->str);
		freeReplyObject(r);
		return NULL;
	}
	return r;
}

static char *
read_stdin(size_t *lenp)
{
	size_t cap = 4096, len = 0;
	char *buf = malloc(cap);

	if (buf == NULL)
		return NULL;
	for (;;) {
		size_t n;

		if (len == cap) {
			char *nb;

			if (cap >= STDIN_MAX) {
				fprintf(stderr, "%s: stdin: over %u bytes\n",
				    progname, STDIN_MAX);
				free(buf);
				return NULL;
			}
			nb = realloc(buf, cap * 2);
			if (nb == NULL) {
				free(buf);
				return NULL;
			}
			buf = nb;
			cap *= 2;
		}
		n = fread(buf + len, 1, cap - len, stdin);
		len += n;
		if (n == 0) {
			if (ferror(stdin)) {
				fprintf(stderr, "%s: stdin: %s\n", progname,
				    strerror(errno));
				free(buf);
				return NULL;
			}
			break;
		}
	}
	*lenp = len;
	return buf;
}

static int
cmd_publish(const struct conf *c, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"user", required_argument, NULL, 'u'},
	    {"channel", required_argument, NULL, 'C'},
	    {"all", no_argument, NULL, 'a'},
	    {"from", required_argument, NULL, 'f'},
	    {"id", required_argument, NULL, 'i'},
	    {NULL, 0, NULL, 0},
	};
	const char *from = NULL, *id = NULL, *target = NULL;
	char chan[CONF_PREFIX_MAX + ADDR_MAX + 2];
	int kind = 0, opt, rc = 1;
	char *msg = NULL;
	size_t msglen;
	msgpack_sbuffer sb;
	redisContext *rctx = NULL;
	redisReply *r;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		switch (opt) {
		case 'u':
		case 'C':
		case 'a':
			if (kind != 0) {
				fprintf(stderr,
				    "%s: publish: one of --user, "
				    "--channel, --all\n",
				    progname);
				usage();
			}
			kind = opt;
			target = optarg;
			break;
		case 'f':
			from = optarg;
			break;
		case 'i':
			id = optarg;
			break;
		default:
			usage();
		}
	}
	if (kind == 0 || optind != argc - 1) {
		fprintf(stderr,
		    "%s: publish: needs a target and one "
		    "MESSAGE\n",
		    progname);
		usage();
	}
	if (target != NULL && !addr_id_valid(target, strlen(target))) {
		fprintf(stderr, "%s: publish: invalid %s \"%s\"\n", progname,
		    kind == 'u' ? "user id" : "channel name", target);
		return 2;
	}
	if (from != NULL && !addr_id_valid(from, strlen(from))) {
		fprintf(stderr, "%s: publish: invalid --from \"%s\"\n",
		    progname, from);
		return 2;
	}
	snprintf(chan, sizeof(chan), "%s:%s%s", c->prefix,
	    kind == 'u'   ? "user:"
	    : kind == 'C' ? "channel:"
			  : "all",
	    target != NULL ? target : "");

	if (strcmp(argv[optind], "-") == 0) {
		msg = read_stdin(&msglen);
		if (msg == NULL)
			return 1;
	} else {
		msg = strdup(argv[optind]);
		if (msg == NULL)
			return 1;
		msglen = strlen(msg);
	}
	msgpack_sbuffer_init(&sb);
	if (from != NULL || id != NULL) {
		struct wspenv e = {
		    .data = {msg, (uint32_t)msglen},
		    .from = {from, from != NULL ? (uint32_t)strlen(from) : 0},
		    .id = {id, id != NULL ? (uint32_t)strlen(id) : 0},
		    .ts = clock_wall_ms(),
		};

		if (msglen > UINT32_MAX || wspenv_encode(&sb, &e) == -1) {
			fprintf(stderr,
			    "%s: publish: cannot encode the "
			    "envelope\n",
			    progname);
			goto out;
		}
	}
	if (c->broker_kind == CONF_BROKER_AMQP) {
		/* Through RabbitMQ, as a backend would: prints 1 if routed to
		 * a node's queue, 0 if no node wants the address. */
		char err[256];
		size_t pl = strlen(c->prefix) + 1;
		int n = amqp_ctl_publish(c, chan + pl, strlen(chan) - pl,
		    sb.size > 0 ? sb.data : msg, sb.size > 0 ? sb.size : msglen,
		    err, sizeof(err));

		if (n < 0) {
			fprintf(stderr, "%s: publish: %s\n", progname, err);
		} else {
			printf("%d\n", n);
			rc = 0;
		}
		goto out;
	}
	rctx = connect_redis(c);
	if (rctx == NULL)
		goto out;
	{
		const char *av[3] = {
		    "PUBLISH", chan, sb.size > 0 ? sb.data : msg};
		size_t lens[3] = {
		    7, strlen(chan), sb.size > 0 ? sb.size : msglen};

		r = command_argv(rctx, 3, av, lens);
	}
	if (r == NULL)
		goto out;
	if (r->type == REDIS_REPLY_INTEGER) {
		printf("%lld\n", r->integer);
		rc = 0;
	}
	freeReplyObject(r);
out:
	redisFree(rctx);
	msgpack_sbuffer_destroy(&sb);
	free(msg);
	return rc;
}

struct node_row {
	char *id;
	uint64_t conns, users, workers;
};

static uint64_t
reply_u64(const redisReply *r)
{
	if (r->type == REDIS_REPLY_STRING)
		return strtoull(r->str, NULL, 10);
	if (r->type == REDIS_REPLY_INTEGER && r->integer > 0)
		return (uint64_t)r->integer;
	return 0;
}

static int
cmd_online(const struct conf *c, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"user", required_argument, NULL, 'u'},
	    {NULL, 0, NULL, 0},
	};
	const char *user = NULL;
	char pattern[CONF_PREFIX_MAX + 16], cursor[32] = "0";
	size_t plen, n = 0, cap = 0;
	struct node_row *rows = NULL;
	uint64_t total_conns = 0, total_users = 0;
	redisContext *rctx;
	int opt, rc = 1, found = 0;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		if (opt != 'u')
			usage();
		user = optarg;
	}
	if (c->broker_kind == CONF_BROKER_AMQP) {
		/* Presence is kept in Redis only. */
		fprintf(stderr, "wspushctl: online: not available with broker "
				"= amqp\n");
		return 1;
	}
	if (optind != argc)
		usage();
	if (user != NULL && !addr_id_valid(user, strlen(user))) {
		fprintf(stderr, "%s: online: invalid user id \"%s\"\n",
		    progname, user);
		return 2;
	}
	rctx = connect_redis(c);
	if (rctx == NULL)
		return 1;
	snprintf(pattern, sizeof(pattern), "%s:node:*", c->prefix);
	plen = strlen(pattern) - 1;
	/* SCAN is bounded per call; stop on a cursor of 0. */
	do {
		const char *av[6] = {
		    "SCAN", cursor, "MATCH", pattern, "COUNT", "1000"};
		size_t lens[6] = {4, strlen(cursor), 5, strlen(pattern), 5, 4};
		redisReply *r = command_argv(rctx, 6, av, lens);

		if (r == NULL)
			goto out;
		if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
		    r->element[0]->type != REDIS_REPLY_STRING ||
		    r->element[1]->type != REDIS_REPLY_ARRAY) {
			fprintf(stderr, "%s: redis SCAN: unexpected reply\n",
			    progname);
			freeReplyObject(r);
			goto out;
		}
		snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
		for (size_t i = 0; i < r->element[1]->elements; i++) {
			redisReply *k = r->element[1]->element[i];

			if (k->type != REDIS_REPLY_STRING || k->len <= plen)
				continue;
			if (n == cap) {
				size_t nc = cap == 0 ? 16 : cap * 2;
				struct node_row *nr =
				    realloc(rows, nc * sizeof(*nr));

				if (nr == NULL) {
					freeReplyObject(r);
					goto out;
				}
				rows = nr;
				cap = nc;
			}
			rows[n].id = strndup(k->str + plen, k->len - plen);
			if (rows[n].id == NULL) {
				freeReplyObject(r);
				goto out;
			}
			n++;
		}
		freeReplyObject(r);
	} while (strcmp(cursor, "0") != 0);

	for (size_t i = 0; i < n; i++) {
		char key[CONF_PREFIX_MAX + CONF_NODE_ID_MAX + 16];
		const char *av[2] = {"HGETALL", key};
		size_t lens[2] = {7, 0};
		redisReply *r;

		snprintf(key, sizeof(key), "%s:node:%s", c->prefix, rows[i].id);
		lens[1] = strlen(key);
		r = command_argv(rctx, 2, av, lens);
		if (r == NULL)
			goto out;
		rows[i].conns = rows[i].users = rows[i].workers = 0;
		for (size_t j = 0;
		     r->type == REDIS_REPLY_ARRAY && j + 1 < r->elements;
		     j += 2) {
			const redisReply *f = r->element[j];
			uint64_t v = reply_u64(r->element[j + 1]);

			if (f->type != REDIS_REPLY_STRING)
				continue;
			if (strcmp(f->str, "connections") == 0)
				rows[i].conns = v;
			else if (strcmp(f->str, "users") == 0)
				rows[i].users = v;
			else if (strcmp(f->str, "workers") == 0)
				rows[i].workers = v;
		}
		freeReplyObject(r);
		total_conns += rows[i].conns;
		total_users += rows[i].users;
	}

	if (user == NULL) {
		printf("online: %zu node%s, %" PRIu64 " connection%s, %" PRIu64
		       " user%s\n",
		    n, PLURAL(n), total_conns, PLURAL(total_conns), total_users,
		    PLURAL(total_users));
		for (size_t i = 0; i < n; i++)
			printf("  %s  connections %" PRIu64 "  users %" PRIu64
			       "  workers %" PRIu64 "\n",
			    rows[i].id, rows[i].conns, rows[i].users,
			    rows[i].workers);
		rc = 0;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		char key[CONF_PREFIX_MAX + CONF_NODE_ID_MAX + 16];
		const char *av[3] = {"HGET", key, user};
		size_t lens[3] = {4, 0, strlen(user)};
		redisReply *r;
		uint64_t conns;

		snprintf(
		    key, sizeof(key), "%s:presence:%s", c->prefix, rows[i].id);
		lens[1] = strlen(key);
		r = command_argv(rctx, 3, av, lens);
		if (r == NULL)
			goto out;
		conns = reply_u64(r);
		freeReplyObject(r);
		if (conns == 0)
			continue;
		if (found == 0)
			printf("user %s: online on ", user);
		printf("%s%s (%" PRIu64 " connection%s)", found ? ", " : "",
		    rows[i].id, conns, PLURAL(conns));
		found++;
	}
	if (found > 0)
		printf("\n");
	else
		printf("user %s: not online\n", user);
	rc = found > 0 ? 0 : 1;
out:
	for (size_t i = 0; i < n; i++)
		free(rows[i].id);
	free(rows);
	redisFree(rctx);
	return rc;
}

/* ---- stats ---- */

#define STATS_TIMEOUT_MS 3000

/* One request on a fresh REQ socket; the parsed reply or NULL. */
static json_t *
stats_fetch(const struct conf *c)
{
	char url[CONF_RUNTIME_DIR_MAX + 32];
	const char *req = "{\"v\":1,\"cmd\":\"stats\"}";
	nng_socket s;
	nng_msg *m = NULL;
	json_error_t je;
	json_t *j = NULL;
	int rv;

	conf_stats_url(c, url, sizeof(url));
	if ((rv = nng_req0_open(&s)) != 0) {
		fprintf(stderr, "%s: nng_req0_open: %s\n", progname,
		    nng_strerror(rv));
		return NULL;
	}
	(void)nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, STATS_TIMEOUT_MS);
	(void)nng_socket_set_ms(s, NNG_OPT_SENDTIMEO, STATS_TIMEOUT_MS);
	(void)nng_socket_set_size(s, NNG_OPT_RECVMAXSZ, 64u * 1024 * 1024);
	if ((rv = nng_dial(s, url, NULL, 0)) != 0) {
		fprintf(stderr,
		    "%s: stats: %s: %s (is wspush-bridge running?)\n", progname,
		    url, nng_strerror(rv));
		goto out;
	}
	if ((rv = nng_send(s, (void *)req, strlen(req), 0)) != 0 ||
	    (rv = nng_recvmsg(s, &m, 0)) != 0) {
		fprintf(stderr, "%s: stats: %s: %s\n", progname, url,
		    nng_strerror(rv));
		goto out;
	}
	j = json_loadb(nng_msg_body(m), nng_msg_len(m), 0, &je);
	if (j == NULL || !json_is_object(j)) {
		fprintf(stderr, "%s: stats: unreadable reply: %s\n", progname,
		    je.text);
		json_decref(j);
		j = NULL;
	} else if (json_is_string(json_object_get(j, "error"))) {
		fprintf(stderr, "%s: stats: the bridge refused: %s\n", progname,
		    json_string_value(json_object_get(j, "error")));
		json_decref(j);
		j = NULL;
	}
out:
	nng_msg_free(m);
	nng_close(s);
	return j;
}

/* Integer at a dotted path of o ("redis.reconnects"); 0 if absent. */
static uint64_t
ju(const json_t *o, const char *path)
{
	char key[64];
	const char *dot;

	while ((dot = strchr(path, '.')) != NULL) {
		snprintf(key, sizeof(key), "%.*s", (int)(dot - path), path);
		o = json_object_get(o, key);
		path = dot + 1;
	}
	o = json_object_get(o, path);
	return json_is_integer(o) && json_integer_value(o) > 0
		   ? (uint64_t)json_integer_value(o)
		   : 0;
}

static const char *
js(const json_t *o, const char *key)
{
	const char *v = json_string_value(json_object_get(o, key));

	return v != NULL ? v : "?";
}

/* Sum of the worker counters whose name starts with prefix. */
static uint64_t
counters_sum(const json_t *cs, const char *prefix)
{
	const char *k;
	json_t *v;
	uint64_t n = 0;
	size_t pl = strlen(prefix);

	json_object_foreach((json_t *)cs, k, v)
	{
		if (strncmp(k, prefix, pl) == 0 && json_is_integer(v))
			n += (uint64_t)json_integer_value(v);
	}
	return n;
}

/* Human units: 1234567 -> "1.2M". */
static const char *
human(char *buf, size_t len, double v)
{
	static const char *const units[] = {"", "k", "M", "G", "T"};
	int u = 0;

	while (v >= 1000.0 && u < 4) {
		v /= 1000.0;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%.0f", v);
	else
		snprintf(buf, len, "%.1f%s", v, units[u]);
	return buf;
}

/* The previous sample's worker, by slot and gen (for rates). */
static const json_t *
prev_worker(const json_t *prev, const json_t *w)
{
	size_t i;
	json_t *p;

	json_array_foreach(json_object_get(prev, "workers"), i, p)
	{
		if (ju(p, "slot") == ju(w, "slot") &&
		    ju(p, "gen") == ju(w, "gen"))
			return p;
	}
	return NULL;
}

static double
rate(const json_t *cur, const json_t *prev, const char *path, double dt)
{
	uint64_t a = ju(cur, path), b;

	if (prev == NULL || dt <= 0)
		return -1;
	b = ju(prev, path);
	return a >= b ? (double)(a - b) / dt : 0;
}

static void
print_drops(const char *label, const json_t *drops, const char *prefix)
{
	const char *k;
	json_t *v;
	bool any = false;
	size_t pl = strlen(prefix);

	json_object_foreach((json_t *)drops, k, v)
	{
		if (strncmp(k, prefix, pl) != 0 || !json_is_integer(v) ||
		    json_integer_value(v) == 0)
			continue;
		printf("%s%s=%" JSON_INTEGER_FORMAT, any ? " " : label, k + pl,
		    json_integer_value(v));
		any = true;
	}
	if (any)
		printf("\n");
}

static void
stats_table(const json_t *j, const json_t *prev, double dt)
{
	const json_t *br = json_object_get(j, "bridge");
	const json_t *redis = json_object_get(br, "redis");
	const json_t *ma = json_object_get(j, "master");
	const json_t *ws = json_object_get(j, "workers");
	const json_t *pbr =
	    prev != NULL ? json_object_get(prev, "bridge") : NULL;
	const json_t *w;
	uint64_t t_conns = 0, t_users = 0, t_subs = 0, t_in = 0, t_out = 0;
	uint64_t t_bytes = 0, t_drops = 0, t_ok = 0, t_rej = 0;
	char b1[16], b2[16];
	size_t i;
	double r;

	printf("bridge   node %s  version %s  pid %" PRIu64 "  uptime %" PRIu64
	       "s  epoch %s\n",
	    js(br, "node"), js(br, "version"), ju(br, "pid"),
	    ju(br, "uptime_s"), js(br, "epoch"));
	printf("redis    %s  reconnects %" PRIu64 "  outages %" PRIu64,
	    js(redis, "state"), ju(redis, "reconnects"), ju(redis, "outages"));
	if (ju(redis, "down_for_ms") > 0)
		printf("  down for %.1fs",
		    (double)ju(redis, "down_for_ms") / 1000);
	else if (ju(redis, "last_outage_ms") > 0)
		printf("  last outage %.1fs",
		    (double)ju(redis, "last_outage_ms") / 1000);
	printf("\n");
	printf("         subscriptions %" PRIu64 "  from redis %" PRIu64
	       "  published %" PRIu64 "  upstream writes %" PRIu64
	       " (queued %" PRIu64 ")\n",
	    ju(br, "subscriptions"), ju(br, "msgs_from_redis"),
	    ju(br, "envelopes_published"), ju(br, "upstream_writes"),
	    ju(br, "queued_writes"));
	if ((r = rate(br, pbr, "msgs_from_redis", dt)) >= 0)
		printf("         rates/s: from redis %s  upstream writes %s\n",
		    human(b1, sizeof(b1), r),
		    human(
			b2, sizeof(b2), rate(br, pbr, "upstream_writes", dt)));
	print_drops("         drops: ", json_object_get(br, "drops"), "");
	if (json_is_true(json_object_get(ma, "reported")))
		printf("master   worker restarts %" PRIu64 "  reloads %" PRIu64
		       "  crash loops %" PRIu64 "\n",
		    ju(ma, "restarts"), ju(ma, "reloads"),
		    ju(ma, "crash_loops"));
	else
		printf("master   (not reported by this gateway build)\n");
	printf("\n%-4s %-5s %-8s %7s %7s %6s %9s %10s %9s %7s %9s %6s %6s%s\n",
	    "SLOT", "GEN", "PID", "CONNS", "USERS", "SUBS", "MSGS_IN",
	    "FRAMES_OUT", "BYTES_OUT", "DROPS", "QUEUE_HWM", "HS_OK", "HS_REJ",
	    prev != NULL ? "   IN/s  OUT/s  BYTES/s" : "");
	json_array_foreach(ws, i, w)
	{
		const json_t *cs = json_object_get(w, "counters");
		const json_t *pw = prev != NULL ? prev_worker(prev, w) : NULL;
		uint64_t drops = counters_sum(cs, "drop_");
		uint64_t rej = counters_sum(cs, "hs_rejected_");
		char h1[16], h2[16], h3[16];

		printf("%-4" PRIu64 " %-5" PRIu64 " %-8" PRIu64 " %7" PRIu64
		       " %7" PRIu64 " %6" PRIu64 " %9" PRIu64 " %10" PRIu64
		       " %9s %7" PRIu64 " %9s %6" PRIu64 " %6" PRIu64,
		    ju(w, "slot"), ju(w, "gen"), ju(w, "pid"),
		    ju(cs, "connections"), ju(cs, "users"),
		    ju(cs, "subscriptions"), ju(cs, "msgs_in"),
		    ju(cs, "frames_out"),
		    human(h1, sizeof(h1), (double)ju(cs, "bytes_out")), drops,
		    human(h2, sizeof(h2), (double)ju(cs, "queue_hwm")),
		    ju(cs, "hs_accepted"), rej);
		if (prev != NULL) {
			const json_t *pcs =
			    pw != NULL ? json_object_get(pw, "counters") : NULL;
			double ri = rate(cs, pcs, "msgs_in", dt);
			double ro = rate(cs, pcs, "frames_out", dt);
			double rb = rate(cs, pcs, "bytes_out", dt);

			printf(
			    " %7s", ri < 0 ? "-" : human(h1, sizeof(h1), ri));
			printf(
			    " %6s", ro < 0 ? "-" : human(h2, sizeof(h2), ro));
			printf(
			    " %8s", rb < 0 ? "-" : human(h3, sizeof(h3), rb));
		}
		if (!json_is_true(json_object_get(w, "attached")))
			printf(
			    "  (silent %" PRIu64 " ms)", ju(w, "last_seen_ms"));
		printf("\n");
		t_conns += ju(cs, "connections");
		t_users += ju(cs, "users");
		t_subs += ju(cs, "subscriptions");
		t_in += ju(cs, "msgs_in");
		t_out += ju(cs, "frames_out");
		t_bytes += ju(cs, "bytes_out");
		t_drops += drops;
		t_ok += ju(cs, "hs_accepted");
		t_rej += rej;
	}
	printf("%-19s %7" PRIu64 " %7" PRIu64 " %6" PRIu64 " %9" PRIu64
	       " %10" PRIu64 " %9s %7" PRIu64 " %9s %6" PRIu64 " %6" PRIu64
	       "\n",
	    "total", t_conns, t_users, t_subs, t_in, t_out,
	    human(b1, sizeof(b1), (double)t_bytes), t_drops, "", t_ok, t_rej);
	json_array_foreach(ws, i, w)
	{
		char label[48];

		snprintf(label, sizeof(label),
		    "worker %" PRIu64 " drops: ", ju(w, "slot"));
		print_drops(label, json_object_get(w, "counters"), "drop_");
	}
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
cmd_stats(const struct conf *c, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"json", no_argument, NULL, 'j'},
	    {"watch", no_argument, NULL, 'w'},
	    {"count", required_argument, NULL, 'n'},
	    {NULL, 0, NULL, 0},
	};
	bool json = false, watch = false;
	long count = 0; /* 0: until interrupted */
	json_t *prev = NULL;
	double prev_t = 0;
	int opt;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		char *end;

		switch (opt) {
		case 'j':
			json = true;
			break;
		case 'w':
			watch = true;
			break;
		case 'n':
			count = strtol(optarg, &end, 10);
			if (*end != '\0' || count < 1 || count > 1000000) {
				fprintf(stderr, "%s: stats: bad --count\n",
				    progname);
				return 2;
			}
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();
	if (!watch && count == 0)
		count = 1;
	for (long n = 0; count == 0 || n < count; n++) {
		json_t *j;
		double t;

		if (n > 0)
			usleep(1000 * 1000);
		j = stats_fetch(c);
		t = now_s();
		if (j == NULL) {
			json_decref(prev);
			return 1;
		}
		if (json) {
			char *text = json_dumps(j, JSON_COMPACT);

			if (text != NULL)
				printf("%s\n", text);
			free(text);
		} else {
			if (watch && isatty(STDOUT_FILENO))
				printf("\033[H\033[2J");
			else if (n > 0)
				printf("\n");
			stats_table(j, prev, t - prev_t);
		}
		fflush(stdout);
		json_decref(prev);
		prev = j;
		prev_t = t;
	}
	json_decref(prev);
	return 0;
}

int
main(int argc, char **argv)
{
	const char *path = getenv("WSPUSH_CONF");
	static struct conf conf;
	char err[1024];
	int i = 1;

	if (path == NULL || path[0] == '\0')
		path = "/etc/wspush/wspush.conf";
	log_init(progname, LOG_WARNING);
	while (i < argc && argv[i][0] == '-') {
		if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
			path = argv[i + 1];
			i += 2;
		} else if (strncmp(argv[i], "-c", 2) == 0 && argv[i][2]) {
			path = argv[i] + 2;
			i++;
		} else {
			usage();
		}
	}
	if (i >= argc)
		usage();
	if (strcmp(argv[i], "listen") == 0)
		return ctl_listen(argc - i, argv + i);
	if (strcmp(argv[i], "publish") != 0 && strcmp(argv[i], "online") != 0 &&
	    strcmp(argv[i], "stats") != 0) {
		fprintf(
		    stderr, "%s: unknown command \"%s\"\n", progname, argv[i]);
		usage();
	}
	if (conf_load(&conf, path, err, sizeof(err)) == -1) {
		fprintf(stderr, "%s: %s\n", progname, err);
		return 1;
	}
	if (strcmp(argv[i], "publish") == 0)
		return cmd_publish(&conf, argc - i, argv + i);
	if (strcmp(argv[i], "stats") == 0)
		return cmd_stats(&conf, argc - i, argv + i);
	return cmd_online(&conf, argc - i, argv + i);
}
