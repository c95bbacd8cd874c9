/*
 * redis_presence.c - HSET/HDEL batches, the node hash and the TTLs.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keys.h"
#include "redis_presence.h"

struct redis_presence {
	struct redis_link *link;
	char key_presence[KEYS_MAX];
	char key_node[KEYS_MAX];
	/* One HSET and one HDEL being filled. */
	int argc_set, argc_del;
	const char *set[2 + 2 * REDIS_PRESENCE_CHUNK];
	size_t set_len[2 + 2 * REDIS_PRESENCE_CHUNK];
	char nums[REDIS_PRESENCE_CHUNK][24];
	const char *del[2 + REDIS_PRESENCE_CHUNK];
	size_t del_len[2 + REDIS_PRESENCE_CHUNK];
};

struct redis_presence *
redis_presence_new(
    struct redis_link *link, const char *prefix, const char *node)
{
	struct redis_presence *rp = calloc(1, sizeof(*rp));

	if (rp == NULL)
		return NULL;
	rp->link = link;
	if (keys_presence(rp->key_presence, sizeof(rp->key_presence), prefix,
		node) == -1 ||
	    keys_node(rp->key_node, sizeof(rp->key_node), prefix, node) == -1) {
		free(rp);
		return NULL;
	}
	rp->set[0] = "HSET";
	rp->set_len[0] = 4;
	rp->del[0] = "HDEL";
	rp->del_len[0] = 4;
	rp->set[1] = rp->del[1] = rp->key_presence;
	rp->set_len[1] = rp->del_len[1] = strlen(rp->key_presence);
	rp->argc_set = rp->argc_del = 2;
	return rp;
}

void
redis_presence_free(struct redis_presence *rp)
{
	free(rp);
}

/* A write only worth doing while the link is up (rewritten on reconnect). */
static void
redis_presence_write(
    struct redis_presence *rp, int argc, const char **argv, const size_t *lens)
{
	(void)redis_link_write(rp->link, argc, argv, lens);
}

static void
redis_presence_send(struct redis_presence *rp)
{
	if (rp->argc_set > 2)
		redis_presence_write(rp, rp->argc_set, rp->set, rp->set_len);
	if (rp->argc_del > 2)
		redis_presence_write(rp, rp->argc_del, rp->del, rp->del_len);
	rp->argc_set = rp->argc_del = 2;
}

static void
redis_presence_expire(struct redis_presence *rp)
{
	char ttl[16];
	const char *argv[3] = {"EXPIRE", rp->key_presence, ttl};
	size_t lens[3];

	snprintf(ttl, sizeof(ttl), "%d", REDIS_PRESENCE_TTL_S);
	lens[0] = 6;
	lens[1] = strlen(rp->key_presence);
	lens[2] = strlen(ttl);
	redis_presence_write(rp, 3, argv, lens);
	argv[1] = rp->key_node;
	lens[1] = strlen(rp->key_node);
	redis_presence_write(rp, 3, argv, lens);
}

/* Strings are borrowed until redis_presence_send(), within the call. */
static void
redis_presence_add(struct redis_presence *rp, const struct broker_presence *u)
{
	int i;

	if (u->conns == 0) {
		rp->del[rp->argc_del] = u->user;
		rp->del_len[rp->argc_del] = u->len;
		if (++rp->argc_del == 2 + REDIS_PRESENCE_CHUNK)
			redis_presence_send(rp);
		return;
	}
	i = (rp->argc_set - 2) / 2;
	rp->set[rp->argc_set] = u->user;
	rp->set_len[rp->argc_set] = u->len;
	rp->set_len[rp->argc_set + 1] = (size_t)snprintf(
	    rp->nums[i], sizeof(rp->nums[i]), "%" PRIu64, u->conns);
	rp->set[rp->argc_set + 1] = rp->nums[i];
	rp->argc_set += 2;
	if (i + 1 == REDIS_PRESENCE_CHUNK)
		redis_presence_send(rp);
}

void
redis_presence_set(
    struct redis_presence *rp, const struct broker_presence *p, size_t n)
{
	if (n == 0 || !redis_link_is_up(rp->link))
		return;
	for (size_t i = 0; i < n; i++)
		redis_presence_add(rp, &p[i]);
	redis_presence_send(rp);
	/* The TTLs follow with the node hash, which the core writes after
	 * every batch (an HSET may have created the key afresh). */
}

void
redis_presence_node(
    struct redis_presence *rp, const struct broker_node_info *ni)
{
	char conns[24], users[24], workers[24], started[24], pid[24];
	const char *argv[14] = {"HSET", rp->key_node, "connections", conns,
	    "users", users, "workers", workers, "started", started, "version",
	    ni->version, "pid", pid};
	size_t lens[14];

	if (!redis_link_is_up(rp->link))
		return;
	snprintf(conns, sizeof(conns), "%" PRIu64, ni->connections);
	snprintf(users, sizeof(users), "%" PRIu64, ni->users);
	snprintf(workers, sizeof(workers), "%" PRIu64, ni->workers);
	snprintf(started, sizeof(started), "%" PRIu64, ni->started_unix);
	snprintf(pid, sizeof(pid), "%ld", ni->pid);
	for (int i = 0; i < 14; i++)
		lens[i] = strlen(argv[i]);
	redis_presence_write(rp, 14, argv, lens);
	redis_presence_expire(rp);
}

void
redis_presence_delete(struct redis_presence *rp)
{
	const char *argv[3] = {"DEL", rp->key_presence, rp->key_node};
	size_t lens[3] = {3, strlen(rp->key_presence), strlen(rp->key_node)};

	redis_presence_write(rp, 3, argv, lens);
}
