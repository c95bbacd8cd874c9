/*
 * wspushctl.c - the operator's tool: publish to an address and look at
 * who is online, straight through Redis (synchronous hiredis).
 *
 *   wspushctl [-c FILE] publish (--user ID | --channel NAME | --all)
 *             [--from ID] [--id ID] MESSAGE|-
 *   wspushctl [-c FILE] online [--user ID]
 *
 * Reads the same config file as the daemons (for the Redis URL, password
 * and prefix). Exit 0 on success, 1 on failure (or "not online"), 2 on bad
 * usage. `stats` (the bridge's stats socket) is not part of this build.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <hiredis/hiredis.h>

#include "addr.h"
#include "clock.h"
#include "conf.h"
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
	if (strcmp(argv[i], "publish") != 0 && strcmp(argv[i], "online") != 0) {
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
	return cmd_online(&conf, argc - i, argv + i);
}
