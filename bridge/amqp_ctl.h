/*
 * amqp_ctl.h - `wspushctl publish` through RabbitMQ ([broker] kind = amqp).
 *
 * A command-line tool may block, so this uses rabbitmq-c's synchronous
 * helpers, each bounded by the caller's timeout: connect, log in, publish
 * one message the way a backend would (the direct exchange with the
 * address as routing key; in broadcast routing the fanout exchange with
 * a wspush-to header), mandatory and confirmed.
 */
#ifndef WSP_AMQP_CTL_H
#define WSP_AMQP_CTL_H

#include <stddef.h>

#include "conf.h"

/*
 * Publishes body[0..len) to addr, each step bounded by timeout_ms. Returns 1 if
 * RabbitMQ routed it to at least one queue, 0 if it came back unroutable (no
 * node wants addr), or -1 with a message in err.
 */
int amqp_ctl_publish(const struct conf *c, const char *addr, size_t addr_len,
    const void *body, size_t len, int timeout_ms, char *err, size_t errlen);

#endif
