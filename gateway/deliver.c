/*
 * deliver.c - a bus message to its local targets, and the routing state's
 * callbacks (see deliver.h).
 */
#include "deliver.h"

#include "conn.h"
#include "frame.h"
#include "log.h"
#include "recover.h"
#include "uptx.h"
#include "worker.h"

/* What the fan-out hands each membership: the frame and the message id. */
struct deliver_item {
	struct frame *f;
	const struct env_str *id;
};

void
deliver_msg(struct worker *w, const struct bus_msg *m)
{
	struct fan_entry *e;
	struct frame *f;

	e = fanout_find(w->fan, m->to.p, m->to.len);
	if (e == NULL || e->live == 0)
		return;
	w->c.bus_targets += e->live;
	if (m->data.len > w->conf->max_message_bytes) {
		/* DROP: oversize, counted per recipient as drop_too_large */
		w->c.drop_too_large += e->live;
		return;
	}
	f = frame_build_msg(m, w->conf->delivery == CONF_DELIVERY_RAW);
	if (f == NULL) {
		log_warnx("message to %.*s dropped: out of memory",
		    (int)m->to.len, m->to.p);
		w->c.drop_queue_full += e->live; /* DROP: no memory */
		return;
	}
	struct deliver_item item = {f, &m->id};

	fanout_deliver(w->fan, e, &item);
	frame_unref(f);
}

static void
deliver_send_add(void *arg, uint64_t req_id, const char *addr, size_t len)
{
	struct worker *w = arg;

	uptx_interest(w->up, UP_INTEREST_ADD, req_id, addr, len);
}

static void
deliver_send_del(void *arg, const char *addr, size_t len)
{
	struct worker *w = arg;

	uptx_interest(w->up, UP_INTEREST_DEL, 0, addr, len);
}

static void
deliver_ready(void *arg, struct fan_member *m)
{
	(void)arg;
	conn_member_ready(m);
}

static void
deliver_failed(void *arg, struct fan_member *m)
{
	(void)arg;
	conn_member_failed(m);
}

static void
deliver_one(void *arg, struct fan_member *m, void *msg)
{
	struct deliver_item *it = msg;

	/* A membership recovering history holds its live frames. */
	if (m->udata != NULL && recover_live(arg, m->udata, it->f, it->id))
		return;
	conn_deliver(m->owner, it->f);
}

const struct fanout_ops deliver_fan_ops = {
    .send_add = deliver_send_add,
    .send_del = deliver_send_del,
    .ready = deliver_ready,
    .failed = deliver_failed,
    .deliver = deliver_one,
};
