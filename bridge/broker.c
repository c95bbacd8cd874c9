/*
 * broker.c - the broker interface's wrappers, the choice of broker by
 * the config, and the outage bookkeeping every broker shares.
 */
#include <stdio.h>

#include "amqp_broker.h"
#include "broker.h"
#include "cluster_broker.h"
#include "redis_broker.h"

static const char *const broker_drop_names[BROKER_DROP_COUNT] = {
    [BROKER_DROP_DOWN] = "down",
    [BROKER_DROP_ERROR] = "error",
    [BROKER_DROP_UNCONFIRMED] = "unconfirmed",
    [BROKER_DROP_RETURNED] = "returned",
    [BROKER_DROP_OVERSIZE] = "oversize",
    [BROKER_DROP_BAD_ADDRESS] = "bad_address",
};

const char *
broker_drop_str(enum broker_drop d)
{
	if ((unsigned)d >= BROKER_DROP_COUNT)
		return "unknown";
	return broker_drop_names[d];
}

struct broker *
broker_new(const struct broker_env *env, const struct broker_events *ev,
    char *err, size_t errlen)
{
	switch (env->conf->broker_kind) {
	case CONF_BROKER_REDIS:
		if (env->conf->redis_cluster)
			return cluster_broker_new(env, ev, err, errlen);
		return redis_broker_new(env, ev, err, errlen);
	case CONF_BROKER_AMQP:
		return amqp_broker_new(env, ev, err, errlen);
	default:
		/* conf.c refuses a kind this build cannot run; keep it so. */
		snprintf(
		    err, errlen, "broker.kind: not available in this build");
		return NULL;
	}
}

int
broker_start(struct broker *b)
{
	return b->ops->start(b);
}

void
broker_stop(struct broker *b)
{
	b->ops->stop(b);
}

bool
broker_drained(struct broker *b)
{
	return b->ops->drained(b);
}

void
broker_free(struct broker *b)
{
	if (b != NULL)
		b->ops->free(b);
}

int
broker_subscribe(
    struct broker *b, const char *const *addrs, const size_t *lens, size_t n)
{
	return b->ops->subscribe(b, addrs, lens, n);
}

int
broker_unsubscribe(
    struct broker *b, const char *const *addrs, const size_t *lens, size_t n)
{
	return b->ops->unsubscribe(b, addrs, lens, n);
}

int
broker_subscribe_all(struct broker *b)
{
	return b->ops->subscribe_all(b);
}

int
broker_publish(struct broker *b, const char *addr, size_t addr_len,
    const char *data, size_t data_len)
{
	return b->ops->publish(b, addr, addr_len, data, data_len);
}

int
broker_inbound(struct broker *b, const struct broker_inbound *in)
{
	return b->ops->inbound(b, in);
}

int
broker_event(struct broker *b, const struct broker_event *ev)
{
	return b->ops->event(b, ev);
}

int
broker_presence_set(struct broker *b, const struct broker_presence *p, size_t n)
{
	if (b->ops->presence_set == NULL)
		return BROKER_ENOTSUP;
	return b->ops->presence_set(b, p, n);
}

int
broker_node_info(struct broker *b, const struct broker_node_info *ni)
{
	if (b->ops->node_info == NULL)
		return BROKER_ENOTSUP;
	return b->ops->node_info(b, ni);
}

void
broker_status(struct broker *b, struct broker_status *st)
{
	b->ops->status(b, st);
}

void
broker_link_each(struct broker *b, broker_link_fn *fn, void *arg)
{
	b->ops->link_each(b, fn, arg);
}

int
broker_range(struct broker *b, const char *addr, size_t addr_len,
    const char *since, size_t since_len, uint32_t limit, broker_range_fn *fn,
    void *arg)
{
	if (b->ops->range == NULL) {
		fn(arg, NULL, RANGE_UNAVAILABLE);
		return 0;
	}
	return b->ops->range(
	    b, addr, addr_len, since, since_len, limit, fn, arg);
}

void
broker_outage_note(
    struct broker_outage *o, bool up, bool failed_before, uint64_t now_ms)
{
	if (!up && o->down_since_ms == 0) {
		o->down_since_ms = now_ms != 0 ? now_ms : 1;
	} else if (up && o->down_since_ms != 0) {
		if (o->was_up || failed_before) {
			o->last_outage_ms = now_ms - o->down_since_ms;
			o->outages++;
		}
		o->down_since_ms = 0;
	}
	if (up)
		o->was_up = true;
}

uint64_t
broker_outage_down_for(const struct broker_outage *o, uint64_t now_ms)
{
	if (o->down_since_ms == 0 || now_ms < o->down_since_ms)
		return 0;
	return now_ms - o->down_since_ms;
}
