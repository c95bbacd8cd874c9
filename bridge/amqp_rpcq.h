/*
 * amqp_rpcq.h - the replies an AMQP channel owes us, in request order.
 *
 * RabbitMQ answers the synchronous methods of one channel (declare, bind,
 * unbind, consume, confirm.select, ...) in the order they were sent, and
 * a reply such as queue.bind-ok carries nothing that says which request
 * it answers. So every request we send pushes what its reply must be (and
 * what it was about) here, and every reply pops the head, which must
 * expect exactly that method. A pure module: no I/O.
 */
#ifndef WSP_AMQP_RPCQ_H
#define WSP_AMQP_RPCQ_H

#include <stddef.h>

#include <amqp.h>

#include "dlist.h"

struct amqp_rpcq_entry {
	struct dlist_node node;
	amqp_method_number_t expect;
	int kind;         /* the caller's tag */
	const char *what; /* static text naming the request (errors) */
	size_t keylen;
	char key[]; /* a copy of the caller's key (a routing key), NUL-ended */
};

struct amqp_rpcq {
	struct dlist list; /* oldest first */
	size_t n;
};

void amqp_rpcq_init(struct amqp_rpcq *q);

/* Appends a request awaiting expect. Returns 0, or -1 on allocation
 * failure (nothing appended). */
int amqp_rpcq_push(struct amqp_rpcq *q, amqp_method_number_t expect, int kind,
    const char *what, const char *key, size_t keylen);

/* The oldest open request, or NULL. */
const struct amqp_rpcq_entry *amqp_rpcq_head(const struct amqp_rpcq *q);

/*
 * A reply `id` arrived: returns the request it answers, removed from q
 * (free it with free()), or NULL if nothing is open or the oldest request
 * expects another method (a protocol error: the caller drops the
 * connection; q is unchanged).
 */
struct amqp_rpcq_entry *amqp_rpcq_pop(
    struct amqp_rpcq *q, amqp_method_number_t id);

/* Forgets every open request (the channel is gone). */
void amqp_rpcq_clear(struct amqp_rpcq *q);

#endif
