/*
 * fuzz_cluster.c - libFuzzer target for what the bridge reads from Redis
 * Cluster: the MOVED/ASK error text (cluster_redirect_parse) and the
 * CLUSTER SHARDS / CLUSTER SLOTS replies (cluster_map_from_*), the latter
 * as RESP bytes through hiredis' reply reader, as they come off a socket.
 *
 * Checked: a redirection names a slot below 16384 and a NUL-terminated
 * host; a parsed map's owners point at its shards (or none), a refused
 * one is left empty with a reason; applying the parsed redirection to the
 * map keeps it consistent. The key slot of the input is in range.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "cluster_slots.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_map(const struct cluster_map *m)
{
	for (unsigned s = 0; s < CLUSTER_SLOTS; s++) {
		unsigned o = cluster_map_owner(m, s);

		if (o != CLUSTER_NO_SHARD && o >= m->nshards)
			abort();
	}
	for (size_t i = 0; i < m->nshards; i++)
		if (memchr(m->shards[i].host, '\0', CLUSTER_HOST_MAX) == NULL ||
		    cluster_map_find(m, m->shards[i].host, m->shards[i].port) ==
			CLUSTER_NO_SHARD)
			abort();
	if (cluster_map_uncovered(m) > CLUSTER_SLOTS)
		abort();
}

/* One map parser on reply r; then rd (if any) applied to the result. */
static void
parse_map(const redisReply *r, const struct cluster_redirect *rd, int which)
{
	struct cluster_map m;
	char err[256] = "";
	int rc;

	cluster_map_init(&m);
	rc = which == 0
		 ? cluster_map_from_shards(&m, r, "10.0.0.1", err, sizeof(err))
		 : cluster_map_from_slots(&m, r, "10.0.0.1", err, sizeof(err));
	if (rc == -1 && (m.nshards != 0 || err[0] == '\0'))
		abort();
	if (memchr(err, '\0', sizeof(err)) == NULL)
		abort();
	check_map(&m);
	if (rd->kind == CLUSTER_REDIRECT_MOVED) {
		unsigned i = cluster_map_move(&m, rd->slot,
		    rd->host[0] != '\0' ? rd->host : "10.0.0.1", rd->port);

		if (i != CLUSTER_NO_SHARD &&
		    cluster_map_owner(&m, rd->slot) != i)
			abort();
		check_map(&m);
	}
	cluster_map_fini(&m);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cluster_redirect rd;
	enum cluster_redirect_kind k;
	redisReader *rr;
	void *reply = NULL;

	memset(&rd, 0, sizeof(rd));
	k = cluster_redirect_parse((const char *)data, size, &rd);
	if (k != CLUSTER_REDIRECT_NONE &&
	    (rd.kind != k || rd.slot >= CLUSTER_SLOTS ||
		memchr(rd.host, '\0', sizeof(rd.host)) == NULL))
		abort();
	if (cluster_keyslot(data, size) >= CLUSTER_SLOTS)
		abort();
	if ((rr = redisReaderCreate()) == NULL)
		return 0;
	if (redisReaderFeed(rr, (const char *)data, size) == REDIS_OK &&
	    redisReaderGetReply(rr, &reply) == REDIS_OK && reply != NULL) {
		parse_map(reply, &rd, 0);
		parse_map(reply, &rd, 1);
		freeReplyObject(reply);
	}
	redisReaderFree(rr);
	return 0;
}
