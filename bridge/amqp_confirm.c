/*
 * amqp_confirm.c - open publisher-confirm tags as a ring of flags.
 *
 * Tags are consecutive, so the open ones are all in [base, next): a flag
 * per tag in a ring of AMQP_CONFIRM_WINDOW says whether it was settled,
 * and base moves past the settled prefix. A `multiple` ack settles
 * [base, tag] in one sweep.
 */
#include <string.h>

#include "amqp_confirm.h"

#define SLOT(t) ((t) % AMQP_CONFIRM_WINDOW)

void
amqp_confirm_init(struct amqp_confirm *c)
{
	memset(c, 0, sizeof(*c));
	c->base = c->next = 1;
}

void
amqp_confirm_reset(struct amqp_confirm *c)
{
	memset(c->done, 0, sizeof(c->done));
	c->base = c->next = 1;
}

bool
amqp_confirm_room(const struct amqp_confirm *c)
{
	return c->next - c->base < AMQP_CONFIRM_WINDOW;
}

uint64_t
amqp_confirm_sent(struct amqp_confirm *c)
{
	uint64_t t;

	if (!amqp_confirm_room(c))
		return 0;
	t = c->next++;
	c->done[SLOT(t)] = 0;
	return t;
}

static void
advance(struct amqp_confirm *c)
{
	while (c->base < c->next && c->done[SLOT(c->base)])
		c->base++;
}

uint32_t
amqp_confirm_settle(
    struct amqp_confirm *c, uint64_t tag, bool multiple, bool nack)
{
	uint32_t n = 0;
	uint64_t from = multiple ? c->base : tag;

	if (tag >= c->next || tag < c->base) {
		c->unknown++;
		return 0;
	}
	for (uint64_t t = from; t <= tag; t++) {
		if (c->done[SLOT(t)])
			continue;
		c->done[SLOT(t)] = 1;
		n++;
	}
	if (n == 0)
		c->unknown++;
	if (nack)
		c->nacked += n;
	else
		c->acked += n;
	advance(c);
	return n;
}

uint64_t
amqp_confirm_open(const struct amqp_confirm *c)
{
	uint64_t n = 0;

	for (uint64_t t = c->base; t < c->next; t++)
		if (!c->done[SLOT(t)])
			n++;
	return n;
}

uint64_t
amqp_confirm_lose(struct amqp_confirm *c)
{
	uint64_t n = amqp_confirm_open(c);

	c->lost += n;
	amqp_confirm_reset(c);
	return n;
}
