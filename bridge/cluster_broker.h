/*
 * cluster_broker.h - the Redis Cluster broker (broker.h), chosen by
 * [redis] cluster = on: sharded pub/sub (SSUBSCRIBE on the master owning
 * each channel's slot, one subscriber link per master that owns a wanted
 * channel), one command link per master for upstream writes routed by key
 * slot, and the slot map, discovered with CLUSTER SHARDS from any reachable
 * node and refreshed after MOVED, a sunsubscribe push, a lost link or
 * every CLUSTER_BROKER_REFRESH_MS. Links are bridge/resp_conn.c (hiredis
 * 0.14's async layer aborts on sharded pub/sub). Loop thread only.
 */
#ifndef WSP_CLUSTER_BROKER_H
#define WSP_CLUSTER_BROKER_H

#include "broker.h"

#define CLUSTER_BROKER_REFRESH_MS 30000
/* Upstream writes kept while their shard is unreachable, in all. */
#define CLUSTER_BROKER_QUEUE_MAX 10000

/*
 * Returns an idle cluster broker for env->conf's [redis] settings, or NULL
 * with a message in err. When the configured node answers at once and is
 * not a cluster node, that is the error (naming redis.cluster); an
 * unreachable node is not (the broker keeps trying once started).
 */
struct broker *cluster_broker_new(const struct broker_env *env,
    const struct broker_events *ev, char *err, size_t errlen);

#endif
