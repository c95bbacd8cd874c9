/*
 * redis_broker.h - the Redis broker (broker.h): a subscriber link that
 * follows the core's subscriptions and delivers messages, a command link
 * for upstream writes (queued while it is down: redis_queue.h) and the
 * presence keys (redis_presence.h), and a liveness probe: every
 * heartbeat_ms the command link PUBLISHes on the node's own probe channel
 * (keys_hb_channel()), which the subscriber link must receive within
 * three periods (at least 3 s), or the subscriber is declared dead and
 * reconnected (hiredis 0.14.1 cannot PING a subscribed connection).
 * Loop thread only.
 */
#ifndef WSP_REDIS_BROKER_H
#define WSP_REDIS_BROKER_H

#include "broker.h"

/*
 * Returns an idle Redis broker for env->conf's [redis] settings, or NULL
 * with a message in err. Start it with broker_start().
 */
struct broker *redis_broker_new(const struct broker_env *env,
    const struct broker_events *ev, char *err, size_t errlen);

#endif
