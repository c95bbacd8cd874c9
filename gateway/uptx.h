/*
 * uptx.h - what a worker sends up to its node's bridge (proto/PROTOCOL.md,
 * "Upstream"): interest, client publishes and sends, connect/disconnect
 * events, counters, BYE.
 *
 * A PUSH socket dialed to up.ipc, always sent without blocking; what
 * cannot go now waits in a bounded local queue (envelopes packed into nng
 * messages of up to 64 KiB) retried from a timer; beyond the bound an
 * envelope is dropped and counted as drop_up_queue. When the PUSH pipe
 * (re)connects (an nng thread notices and wakes the lws loop with
 * lws_cancel_service) or the bus sees a new bridge epoch, the worker
 * re-announces its whole interest (uptx_sync()) and re-requests what is
 * still pending. Worker loop only, except the pipe callback (uptx.c).
 */
#ifndef WSP_UPTX_H
#define WSP_UPTX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <nng/nng.h>

#include "envelope.h"

#define UPTX_RETRY_MS 20

struct worker;
struct fanout;
struct uptx;

/* Opens and dials the PUSH socket (non-blocking: the bridge may be down).
 * Returns a new uptx, or NULL with the reason logged. */
struct uptx *uptx_new(struct worker *w);

/* Stops waking the lws loop from nng threads: call before
 * lws_context_destroy. Sending still works (uptx_flush() by hand). */
void uptx_detach(struct uptx *u);

/* Closes the socket and frees u. After lws_context_destroy. NULL is ok. */
void uptx_free(struct uptx *u);

/* LWS_CALLBACK_EVENT_WAIT_CANCELLED: returns true once after the PUSH pipe
 * to the bridge (re)connected; the caller then calls uptx_sync(). */
bool uptx_pipe_added(struct uptx *u);

/* The bridge lost (or never had) this worker's state: sends all of it
 * (INTEREST_SYNC for epoch, from fan) and re-requests what is pending. */
void uptx_sync(struct uptx *u, struct fanout *fan, uint64_t epoch);

/* The bridge is up but does not hear us (why: for the log): redials the
 * PUSH socket, at most once per FANOUT_ACK_TIMEOUT_MS. */
void uptx_redial(struct uptx *u, uint64_t now_ms, const char *why);

/*
 * True if the PUSH socket has had no pipe to the bridge for for_ms up to
 * now_ms (called from the worker's tick, which also keeps the time the
 * last pipe went). nng 1.5.2 can leave a dialer that never redials: seen
 * after a bridge restart, the bus came back and upstream never did, so
 * the bridge never learnt the worker's addresses and routed it nothing.
 */
bool uptx_pipeless(struct uptx *u, uint64_t now_ms, uint64_t for_ms);

/* Upstream envelopes; each is queued if it cannot be sent now. */
void uptx_interest(struct uptx *u, enum up_kind kind, uint64_t req_id,
    const char *addr, size_t len);
/* A history read (RANGE_REQ) for one connection's recovery. */
void uptx_range(struct uptx *u, uint64_t req_id, const char *addr,
    size_t addr_len, const char *since, size_t since_len, uint32_t limit);
void uptx_publish(struct uptx *u, const char *to, size_t to_len,
    const char *from, size_t from_len, const char *data, size_t data_len);
void uptx_send(struct uptx *u, const char *user, size_t user_len,
    const char *conn, const char *data, size_t data_len);
void uptx_event(struct uptx *u, const char *type, const char *user,
    size_t user_len, const char *conn, const char *reason);
void uptx_counters(struct uptx *u, const struct up_counters *uc);
void uptx_bye(struct uptx *u);

/* Tries to send what is queued; returns the number of nng messages still
 * waiting. */
size_t uptx_flush(struct uptx *u);

/* nng_dial without blocking, with the reconnect times both of a worker's
 * sockets use. 0, or -1 with the reason logged. */
int uptx_dial(nng_socket s, const char *url, nng_dialer *d);

#endif
