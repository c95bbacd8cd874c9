/*
 * redis_presence.h - the node's two presence keys in Redis:
 * <prefix>:presence:<node> (hash user -> connections on this node) and
 * <prefix>:node:<node> (hash describing the node), see proto/keys.h.
 *
 * Both get EXPIRE REDIS_PRESENCE_TTL_S whenever they are written; the core
 * writes the node hash every few seconds (BRIDGE_NODE_INFO_MS), so a dead
 * node's keys vanish within the TTL while a live one survives two lost
 * refreshes. Writes go straight to the command link and are skipped while
 * it is down: the whole table is rewritten after a reconnect. Loop thread
 * only.
 */
#ifndef WSP_REDIS_PRESENCE_H
#define WSP_REDIS_PRESENCE_H

#include <stddef.h>

#include "broker.h"
#include "redis_link.h"

#define REDIS_PRESENCE_TTL_S 10
/* Users per HSET / HDEL command. */
#define REDIS_PRESENCE_CHUNK 500

struct redis_presence;

/* Returns the writer for node's keys, or NULL. link is borrowed. */
struct redis_presence *redis_presence_new(
    struct redis_link *link, const char *prefix, const char *node);
void redis_presence_free(struct redis_presence *rp);

/* HSET / HDEL (conns 0) of p[0..n); redis_presence_node() follows. */
void redis_presence_set(
    struct redis_presence *rp, const struct broker_presence *p, size_t n);

/* HSET of the node hash, then the TTLs of both keys. */
void redis_presence_node(
    struct redis_presence *rp, const struct broker_node_info *ni);

/* DEL of both keys (after a reconnect, before the rewrite; at stop). */
void redis_presence_delete(struct redis_presence *rp);

#endif
