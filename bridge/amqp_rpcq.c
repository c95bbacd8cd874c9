/*
 * amqp_rpcq.c - a FIFO of expected replies.
 */
#include <stdlib.h>
#include <string.h>

#include "amqp_rpcq.h"

void
amqp_rpcq_init(struct amqp_rpcq *q)
{
	dlist_init(&q->list);
	q->n = 0;
}

int
amqp_rpcq_push(struct amqp_rpcq *q, amqp_method_number_t expect, int kind,
    const char *what, const char *key, size_t keylen)
{
	struct amqp_rpcq_entry *e = calloc(1, sizeof(*e) + keylen + 1);

	if (e == NULL)
		return -1;
	e->expect = expect;
	e->kind = kind;
	e->what = what;
	e->keylen = keylen;
	if (keylen > 0)
		memcpy(e->key, key, keylen);
	dlist_insert_tail(&q->list, &e->node);
	q->n++;
	return 0;
}

const struct amqp_rpcq_entry *
amqp_rpcq_head(const struct amqp_rpcq *q)
{
	struct dlist_node *n = dlist_first(&q->list);

	return n != NULL ? DLIST_ENTRY(n, struct amqp_rpcq_entry, node) : NULL;
}

struct amqp_rpcq_entry *
amqp_rpcq_pop(struct amqp_rpcq *q, amqp_method_number_t id)
{
	struct dlist_node *n = dlist_first(&q->list);
	struct amqp_rpcq_entry *e;

	if (n == NULL)
		return NULL;
	e = DLIST_ENTRY(n, struct amqp_rpcq_entry, node);
	if (e->expect != id)
		return NULL;
	dlist_remove(n);
	q->n--;
	return e;
}

void
amqp_rpcq_clear(struct amqp_rpcq *q)
{
	struct dlist_node *n;

	while ((n = dlist_first(&q->list)) != NULL) {
		dlist_remove(n);
		free(DLIST_ENTRY(n, struct amqp_rpcq_entry, node));
	}
	q->n = 0;
}
