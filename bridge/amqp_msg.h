/*
 * amqp_msg.h - which wspush address an AMQP delivery is for.
 *
 * A message on the direct exchange is for its routing key ("user:42").
 * A message on the fanout exchange (the topology where every node gets
 * everything and the routing key is empty) is for `all`, unless it carries
 * a `wspush-to` header naming one address. Pure functions over
 * rabbitmq-c's decoded structures: no I/O, nothing allocated.
 */
#ifndef WSP_AMQP_MSG_H
#define WSP_AMQP_MSG_H

#include <stdbool.h>
#include <stddef.h>

#include <amqp.h>

#define AMQP_MSG_TO_HEADER "wspush-to"

enum amqp_msg_hdr {
	AMQP_MSG_HDR_ABSENT,
	AMQP_MSG_HDR_STRING, /* a long string or byte array: *out is set */
	AMQP_MSG_HDR_BAD,    /* present with another type (a number, ...) */
};

/*
 * Looks name up in the headers table t (NULL: no headers). The value
 * borrows t's memory.
 */
enum amqp_msg_hdr amqp_msg_header(
    const amqp_table_t *t, const char *name, amqp_bytes_t *out);

enum amqp_msg_why {
	AMQP_MSG_OK,
	AMQP_MSG_BAD_HEADER, /* wspush-to present but not a valid address */
	AMQP_MSG_BAD_KEY,    /* routing key is not a valid address */
};

/*
 * The address of a delivery: from_fanout says it came through the fanout
 * exchange; hdr/hval are the wspush-to lookup; key the routing key. On
 * AMQP_MSG_OK, p and len point at the address text (hval, key, or a static
 * "all").
 */
enum amqp_msg_why amqp_msg_address(bool from_fanout, enum amqp_msg_hdr hdr,
    amqp_bytes_t hval, amqp_bytes_t key, const char **p, size_t *len);

#endif
