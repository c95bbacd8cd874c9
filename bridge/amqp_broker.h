/*
 * amqp_broker.h - the AMQP broker (broker.h) over one RabbitMQ connection
 * (amqp_conn.h).
 *
 * Interest routing: the node's queue is bound to [amqp] exchange (direct)
 * with exactly the addresses the core subscribes, as routing keys; a
 * subscription is acknowledged on queue.bind-ok. Broadcast routing: the
 * queue is bound to [amqp] fanout_exchange, where a message is for `all`
 * or for the address in its wspush-to header; with interest routing a
 * configured fanout exchange is bound as well (the seeds' publishers keep
 * working). Client publishes go to the direct exchange (interest) or the
 * fanout exchange with a wspush-to header (broadcast); client `send`s to
 * the durable [amqp] inbound_queue and connect/disconnect events to the
 * [amqp] events_exchange (fanout), all with publisher confirms; what the
 * broker nacks, returns as unroutable or never confirms is counted.
 * Presence and node info are Redis features: BROKER_ENOTSUP.
 * Loop thread only.
 */
#ifndef WSP_AMQP_BROKER_H
#define WSP_AMQP_BROKER_H

#include "broker.h"

/* Upstream publishes kept while the connection is down or the confirm
 * window is full. */
#define AMQP_BROKER_QUEUE_MAX 10000
#define AMQP_BROKER_QUEUE_BYTES (64u * 1024 * 1024)
/*
 * x-max-length of the node's queue: messages waiting in RabbitMQ for a
 * bridge that does not keep up. Past it the broker drops the oldest
 * (x-overflow = drop-head): at most once, bounded, like a Redis client
 * output buffer limit, and the freshest messages win.
 */
#define AMQP_BROKER_QUEUE_MAX_LENGTH 100000
/* ... and at most this many bytes of bodies (x-max-length-bytes): 100,000
 * messages near max_message_bytes would be gigabytes. */
#define AMQP_BROKER_QUEUE_MAX_BYTES (64u * 1024 * 1024)
/* Longest AMQP routing key (a short string). A longer address (a channel
 * name of 248..256 bytes) is never bound: its subscription is acknowledged
 * as is, and reaches it only through the fanout exchange. */
#define AMQP_BROKER_KEY_MAX 255
/* Deliveries larger than this are skipped by the bridge (counted as an
 * oversize drop); smaller ones over max_message_bytes reach the workers,
 * which count them per recipient, exactly as for Redis. */
#define AMQP_BROKER_MAX_BODY (16u * 1024 * 1024)

/*
 * Returns an idle AMQP broker for env->conf's [amqp] settings, or NULL
 * with a message in err (bad URL; broadcast routing without a fanout
 * exchange). Start it with broker_start().
 */
struct broker *amqp_broker_new(const struct broker_env *env,
    const struct broker_events *ev, char *err, size_t errlen);

#endif
