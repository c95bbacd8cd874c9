/*
 * ctl_online.c - `wspushctl online`: SCANs <prefix>:node:* for the live
 * nodes (each bridge keeps its hash alive with a TTL), reads each node's
 * figures, and for --user looks the user up in every node's presence hash.
 * Key names come from proto/keys.h, as the bridge's do.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "cluster_slots.h"
#include "ctl_common.h"
#include "ctl_online.h"
#include "ctl_redis.h"
#include "keys.h"

#define PLURAL(n) ((n) == 1 ? "" : "s")

const char ctl_online_usage[] =
    "[-c FILE] online [--user ID] [--timeout S]\n"
    "                 live nodes with their connections; with --user, "
    "where the\n"
    "                 user is connected (exit 1 if nowhere)\n";

struct ctl_online_node {
	char *id;
	uint64_t conns, users, workers;
};

struct ctl_online_nodes {
	size_t n, cap;
	struct ctl_online_node *v;
};

static void
ctl_online_nodes_free(struct ctl_online_nodes *ns)
{
	for (size_t i = 0; i < ns->n; i++)
		free(ns->v[i].id);
	free(ns->v);
}

static int
ctl_online_nodes_add(struct ctl_online_nodes *ns, const char *id, size_t len)
{
	if (ns->n == ns->cap) {
		size_t nc = ns->cap == 0 ? 16 : ns->cap * 2;
		struct ctl_online_node *nv = realloc(ns->v, nc * sizeof(*nv));

		if (nv == NULL)
			return -1;
		ns->v = nv;
		ns->cap = nc;
	}
	memset(&ns->v[ns->n], 0, sizeof(ns->v[ns->n]));
	if ((ns->v[ns->n].id = strndup(id, len)) == NULL)
		return -1;
	ns->n++;
	return 0;
}

/* One SCAN step: adds the node ids of its keys, advances cursor. */
static int
ctl_online_scan_step(struct ctl_redis *r, const char *pattern, size_t plen,
    char *cursor, size_t cursor_len, struct ctl_online_nodes *ns)
{
	const char *av[6] = {"SCAN", cursor, "MATCH", pattern, "COUNT", "1000"};
	size_t lens[6] = {4, strlen(cursor), 5, strlen(pattern), 5, 4};
	redisReply *reply = ctl_redis_command(r, 6, av, lens), *keys;
	int rc = -1;

	if (reply == NULL)
		return -1;
	if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
	    reply->element[0]->type != REDIS_REPLY_STRING ||
	    reply->element[1]->type != REDIS_REPLY_ARRAY) {
		fprintf(stderr,
		    "%s: online: redis %s: SCAN: unexpected reply\n", CTL_PROG,
		    r->target);
		goto out;
	}
	snprintf(cursor, cursor_len, "%s", reply->element[0]->str);
	keys = reply->element[1];
	for (size_t i = 0; i < keys->elements; i++) {
		const redisReply *k = keys->element[i];

		if (k->type == REDIS_REPLY_STRING && k->len > plen &&
		    ctl_online_nodes_add(ns, k->str + plen, k->len - plen) ==
			-1)
			goto out;
	}
	rc = 0;
out:
	freeReplyObject(reply);
	return rc;
}

/* The ids of the live nodes. */
static int
ctl_online_scan(
    struct ctl_redis *r, const char *prefix, struct ctl_online_nodes *ns)
{
	char pattern[KEYS_MAX], node0[KEYS_MAX], cursor[32] = "0";
	size_t plen;

	/* The id is what follows the key of a node with an empty id. */
	if (keys_node_pattern(pattern, sizeof(pattern), prefix) == -1 ||
	    keys_node(node0, sizeof(node0), prefix, "") == -1)
		return -1;
	plen = strlen(node0);
	/* SCAN is bounded per call; it is done at a cursor of 0. */
	do {
		if (ctl_online_scan_step(
			r, pattern, plen, cursor, sizeof(cursor), ns) == -1)
			return -1;
	} while (strcmp(cursor, "0") != 0);
	return 0;
}

/*
 * With a cluster, the node keys are spread over the masters and SCAN
 * walks one node's keys only: the masters of the slot map are each
 * scanned on a connection of their own.
 */
static int
ctl_online_scan_cluster(
    struct ctl_redis *r, const struct conf *c, struct ctl_online_nodes *ns)
{
	redisReply *reply = redisCommand(r->rc, "CLUSTER SHARDS");
	struct cluster_map m;
	char err[256];
	int rc = -1;

	cluster_map_init(&m);
	if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
		fprintf(stderr, "%s: online: redis %s: CLUSTER SHARDS: %s\n",
		    CTL_PROG, r->target,
		    reply != NULL ? reply->str : r->rc->errstr);
		goto out;
	}
	if (cluster_map_from_shards(
		&m, reply, c->redis_host, err, sizeof(err)) == -1) {
		fprintf(stderr, "%s: online: redis %s: %s\n", CTL_PROG,
		    r->target, err);
		goto out;
	}
	for (size_t i = 0; i < m.nshards; i++) {
		struct ctl_redis one;
		int ok = ctl_redis_open_at(&one, c, "online", r->timeout_ms,
			     m.shards[i].host, m.shards[i].port) == 0 &&
			 ctl_online_scan(&one, c->prefix, ns) == 0;

		ctl_redis_close(&one);
		if (!ok)
			goto out;
	}
	rc = 0;
out:
	if (reply != NULL)
		freeReplyObject(reply);
	cluster_map_fini(&m);
	return rc;
}

/* Reads a node's hash (connections, users, workers). */
static int
ctl_online_node_read(
    struct ctl_redis *r, const char *prefix, struct ctl_online_node *node)
{
	char key[KEYS_MAX];
	const char *av[2] = {"HGETALL", key};
	size_t lens[2] = {7, 0};
	redisReply *reply;

	if (keys_node(key, sizeof(key), prefix, node->id) == -1)
		return -1;
	lens[1] = strlen(key);
	if ((reply = ctl_redis_command(r, 2, av, lens)) == NULL)
		return -1;
	for (size_t j = 0;
	     reply->type == REDIS_REPLY_ARRAY && j + 1 < reply->elements;
	     j += 2) {
		const redisReply *f = reply->element[j];
		uint64_t v = ctl_redis_u64(reply->element[j + 1]);

		if (f->type != REDIS_REPLY_STRING)
			continue;
		if (strcmp(f->str, "connections") == 0)
			node->conns = v;
		else if (strcmp(f->str, "users") == 0)
			node->users = v;
		else if (strcmp(f->str, "workers") == 0)
			node->workers = v;
	}
	freeReplyObject(reply);
	return 0;
}

static void
ctl_online_print_nodes(const struct ctl_online_nodes *ns)
{
	uint64_t conns = 0, users = 0;

	for (size_t i = 0; i < ns->n; i++) {
		conns += ns->v[i].conns;
		users += ns->v[i].users;
	}
	printf("online: %zu node%s, %" PRIu64 " connection%s, %" PRIu64
	       " user%s\n",
	    ns->n, PLURAL(ns->n), conns, PLURAL(conns), users, PLURAL(users));
	for (size_t i = 0; i < ns->n; i++)
		printf("  %s  connections %" PRIu64 "  users %" PRIu64
		       "  workers %" PRIu64 "\n",
		    ns->v[i].id, ns->v[i].conns, ns->v[i].users,
		    ns->v[i].workers);
}

/* Prints where user is connected; exit status 0 if somewhere, else 1. */
static int
ctl_online_find_user(struct ctl_redis *r, const char *prefix,
    const struct ctl_online_nodes *ns, const char *user)
{
	int found = 0;

	for (size_t i = 0; i < ns->n; i++) {
		char key[KEYS_MAX];
		const char *av[3] = {"HGET", key, user};
		size_t lens[3] = {4, 0, strlen(user)};
		redisReply *reply;
		uint64_t conns;

		if (keys_presence(key, sizeof(key), prefix, ns->v[i].id) == -1)
			continue;
		lens[1] = strlen(key);
		if ((reply = ctl_redis_command(r, 3, av, lens)) == NULL)
			return CTL_EXIT_FAIL;
		conns = ctl_redis_u64(reply);
		freeReplyObject(reply);
		if (conns == 0)
			continue;
		if (found == 0)
			printf("user %s: online on ", user);
		printf("%s%s (%" PRIu64 " connection%s)", found ? ", " : "",
		    ns->v[i].id, conns, PLURAL(conns));
		found++;
	}
	if (found > 0) {
		printf("\n");
		return CTL_EXIT_OK;
	}
	printf("user %s: not online\n", user);
	return CTL_EXIT_FAIL;
}

int
ctl_online(const struct conf *c, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"user", required_argument, NULL, 'u'},
	    {"timeout", required_argument, NULL, 't'},
	    {NULL, 0, NULL, 0},
	};
	const char *user = NULL;
	int timeout_ms = CTL_TIMEOUT_DEFAULT_MS, opt, rc = CTL_EXIT_FAIL;
	struct ctl_online_nodes ns = {0};
	struct ctl_redis r;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		if (opt == 'u')
			user = optarg;
		else if (opt != 't')
			return ctl_common_usage(ctl_online_usage);
		else if (ctl_common_timeout("online", optarg, &timeout_ms) ==
			 -1)
			return CTL_EXIT_USAGE;
	}
	if (optind != argc)
		return ctl_common_usage(ctl_online_usage);
	if (user != NULL && !addr_id_valid(user, strlen(user))) {
		fprintf(stderr, "%s: online: invalid user id \"%s\"\n",
		    CTL_PROG, user);
		return CTL_EXIT_USAGE;
	}
	if (c->broker_kind == CONF_BROKER_AMQP) {
		/* Presence is kept in Redis only. */
		fprintf(stderr,
		    "%s: online: not available with broker = amqp\n", CTL_PROG);
		return CTL_EXIT_FAIL;
	}
	if (ctl_redis_open(&r, c, "online", timeout_ms) == -1 ||
	    (c->redis_cluster ? ctl_online_scan_cluster(&r, c, &ns)
			      : ctl_online_scan(&r, c->prefix, &ns)) == -1)
		goto out;
	for (size_t i = 0; i < ns.n; i++)
		if (ctl_online_node_read(&r, c->prefix, &ns.v[i]) == -1)
			goto out;
	if (user != NULL) {
		rc = ctl_online_find_user(&r, c->prefix, &ns, user);
	} else {
		ctl_online_print_nodes(&ns);
		rc = CTL_EXIT_OK;
	}
out:
	ctl_online_nodes_free(&ns);
	ctl_redis_close(&r);
	return rc;
}
