/*
 * deliver.h - one bus message to the local connections that want it.
 *
 * Message path: Redis -> bridge -> bus -> busrx -> deliver -> conn -> send.
 * A MSG's address is looked up once in the routing state (fanout.h); the
 * frame the clients get is built once (frame_build_msg()) and a reference
 * to it is handed to every live membership's connection (conn_deliver()).
 * Every such target is counted in bus_targets, and each either reaches a
 * queue or is counted as a drop, which keeps the loss accounting of
 * proto/PROTOCOL.md exact. This file also wires the routing state to the
 * rest of the worker (deliver_fan_ops): interest goes up through uptx.c,
 * an address becoming active or refused is told to conn.c. Worker loop
 * only.
 */
#ifndef WSP_DELIVER_H
#define WSP_DELIVER_H

#include "envelope.h"
#include "fanout.h"

struct worker;

/* The callbacks of the worker's routing state; their arg is the worker. */
extern const struct fanout_ops deliver_fan_ops;

/* One MSG from the bus (m is borrowed for the call). */
void deliver_msg(struct worker *w, const struct bus_msg *m);

#endif
