/*
 * redis_queue.c - a FIFO of RESP-formatted commands (see redis_queue.h).
 */
#include <stdlib.h>

#include "dlist.h"
#include "redis_queue.h"

struct redis_queue_cmd {
	struct dlist_node node;
	char *cmd; /* redisFormatCommandArgv; redisFreeCommand */
	size_t len;
};

struct redis_queue {
	struct redis_link *link;
	struct dlist cmds; /* struct redis_queue_cmd, oldest first */
	size_t n, bytes;
	uint64_t sent;
};

struct redis_queue *
redis_queue_new(struct redis_link *link)
{
	struct redis_queue *q = calloc(1, sizeof(*q));

	if (q == NULL)
		return NULL;
	q->link = link;
	dlist_init(&q->cmds);
	return q;
}

static void
redis_queue_pop(struct redis_queue *q, struct redis_queue_cmd *c)
{
	dlist_remove(&c->node);
	q->n--;
	q->bytes -= c->len;
	redisFreeCommand(c->cmd);
	free(c);
}

void
redis_queue_free(struct redis_queue *q)
{
	struct dlist_node *n;

	if (q == NULL)
		return;
	while ((n = dlist_first(&q->cmds)) != NULL)
		redis_queue_pop(
		    q, DLIST_ENTRY(n, struct redis_queue_cmd, node));
	free(q);
}

void
redis_queue_flush(struct redis_queue *q)
{
	struct dlist_node *n;

	while ((n = dlist_first(&q->cmds)) != NULL) {
		struct redis_queue_cmd *c =
		    DLIST_ENTRY(n, struct redis_queue_cmd, node);

		if (redis_link_write_formatted(q->link, c->cmd, c->len) == -1)
			return; /* link went down again: keep the rest */
		q->sent++;
		redis_queue_pop(q, c);
	}
}

int
redis_queue_write(
    struct redis_queue *q, int argc, const char **argv, const size_t *lens)
{
	struct redis_queue_cmd *c;
	int len;

	if (dlist_empty(&q->cmds) &&
	    redis_link_write(q->link, argc, argv, lens) == 0) {
		q->sent++;
		return 0;
	}
	/* DROP: the link is down and the queue is full (counted by the
	 * caller). */
	if (q->n >= REDIS_QUEUE_MAX || q->bytes >= REDIS_QUEUE_BYTES)
		return -1;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return -1;
	len = redisFormatCommandArgv(&c->cmd, argc, argv, lens);
	if (len < 0) {
		free(c);
		return -1;
	}
	c->len = (size_t)len;
	dlist_insert_tail(&q->cmds, &c->node);
	q->n++;
	q->bytes += c->len;
	return 0;
}

size_t
redis_queue_len(const struct redis_queue *q)
{
	return q->n;
}

uint64_t
redis_queue_sent(const struct redis_queue *q)
{
	return q->sent;
}
