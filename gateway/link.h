/*
 * link.h - a worker's two nng sockets to the node's bridge
 * (proto/PROTOCOL.md).
 *
 * Down: a SUB dialed to bus.ipc; a dup() of its RECVFD sits in the lws
 * loop, and each wakeup handles up to LINK_RX_BATCH envelopes, tracking
 * (epoch, seq) for gaps and a new bridge, and handing MSGs to the fan-out,
 * ACKs to the routing state and HEARTBEATs to the attach check. Up: a PUSH
 * dialed to up.ipc, always sent without blocking; what cannot go now waits
 * in a bounded local queue retried from a timer. When the PUSH pipe
 * (re)connects (an nng thread notices; the loop is woken with
 * lws_cancel_service) or a new epoch is seen, the worker re-announces its
 * whole interest (INTEREST_SYNC) and re-requests what is still pending.
 * Worker loop only, except the pipe callback as noted in link.c.
 */
#ifndef WSP_LINK_H
#define WSP_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf.h"
#include "envelope.h"

#define LINK_RX_BATCH 256
#define LINK_RETRY_MS 20

struct worker;
struct link;

/* Opens and dials both sockets (non-blocking dials: the bridge may be
 * down). Returns a new link, or NULL with the reason logged. */
struct link *link_new(struct worker *w);

/* Adopts the bus RECVFD (a dup) into the worker's lws loop. 0 or -1. */
int link_adopt(struct link *l);

/* Stops waking the lws loop from nng threads: call before
 * lws_context_destroy. Sending still works (link_flush() by hand). */
void link_detach(struct link *l);

/* Closes both sockets and frees the link. Call after lws_context_destroy.
 * NULL is ok. */
void link_free(struct link *l);

/* The bus fd is readable: drain one batch. */
void link_bus_readable(struct link *l);

/* LWS_CALLBACK_EVENT_WAIT_CANCELLED: act on what nng threads flagged. */
void link_wakeup(struct link *l);

/* Once a second: COUNTERS upstream. */
void link_tick(struct link *l, uint64_t now_ms);

/* Interest requests timed out without an ACK (fanout_tick() re-sent
 * some): redials upstream if the bridge is otherwise up. */
void link_upstream_unanswered(struct link *l, uint64_t now_ms);

/* A heartbeat arrived within 3 x heartbeat_ms. */
bool link_attached(const struct link *l, uint64_t now_ms);

/* The node id learnt from the bridge, or NULL before the first
 * HEARTBEAT/ACK. */
const char *link_node(const struct link *l);

/* Upstream envelopes; each is queued if it cannot be sent now. */
void link_interest(struct link *l, enum up_kind kind, uint64_t req_id,
    const char *addr, size_t len);
void link_publish(struct link *l, const char *to, size_t to_len,
    const char *from, size_t from_len, const char *data, size_t data_len);
void link_send(struct link *l, const char *user, size_t user_len,
    const char *conn, const char *data, size_t data_len);
void link_event(struct link *l, const char *type, const char *user,
    size_t user_len, const char *conn, const char *reason);
void link_bye(struct link *l);

/* Tries to send what is queued; returns the number of nng messages still
 * waiting. */
size_t link_flush(struct link *l);

#endif
