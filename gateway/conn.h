/*
 * conn.h - one client WebSocket session: its identity, its memberships in
 * the routing state (fanout.h), its bounded outgoing queue (connq.h), its
 * rate limiter and the state of its handshake with the bridge (welcome).
 *
 * Every connection is a member of "user:<id>" and "all"; `welcome` is
 * queued once both are active at the bridge, and only then do messages for
 * them flow. Channel subscriptions are further memberships; `subscribed`
 * is queued once the channel is active (and after `welcome`). Frames are
 * only queued by conn_enqueue(), which marks the connection; when the loop
 * pass is over (a bus batch, a client message, a timer), the worker calls
 * conn_flush_pending(), which writes every marked queue straight from the
 * loop: one send per connection per pass with the queued frames coalesced,
 * and no POLLOUT round trip while the socket takes everything. Only what
 * a choked socket could not take waits for LWS_CALLBACK_SERVER_WRITEABLE
 * (conn_write()). Closing is always asynchronous: conn_close() marks the
 * connection and asks for a writeable callback that sends the close frame.
 * Worker loop only.
 */
#ifndef WSP_CONN_H
#define WSP_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <libwebsockets.h>

#include "addr.h"
#include "clientmsg.h"
#include "connq.h"
#include "dlist.h"
#include "frame.h"
#include "jwtauth.h"
#include "rate.h"

struct worker;
struct fan_member;

/* "<node>.<slot>.<gen>.<n>" */
#define CONN_ID_MAX 128

struct conn {
	/* What every delivery touches (conn_enqueue(), conn_flush()),
	 * together: two cache lines per connection, not four. */
	struct dlist_node flush_node; /* in worker->flush while marked */
	struct worker *w;
	struct lws *wsi;
	struct connq q;
	int close_code; /* nonzero: send this close frame next */
	bool peer_closed;
	bool dead; /* a direct write failed: lws is killing the socket */
	bool left; /* closing: its memberships are already released */

	struct dlist_node node; /* in worker->conns */
	struct dlist members;   /* struct fan_member.by_owner */
	struct fan_member *m_user, *m_all;
	uint32_t n_channels;
	struct rate rate;

	/* A message being reassembled from fragments. */
	char *rx;
	size_t rx_len, rx_cap;
	bool rx_binary;
	bool rx_busy; /* inside a message that spans chunks */

	uint64_t established_ms;
	uint64_t last_valid_ms; /* established or last PONG */
	const char *close_msg;  /* its reason text; NULL: by code */
	const char *reason;     /* for the disconnect event */

	/*
	 * auth.mode = jwt: the claims of the last accepted token (owned),
	 * NULL before authentication and in auth.mode = none. auth_sul is
	 * the auth.timeout_s deadline while unauthenticated, then the
	 * expiry (exp + leeway) of the token (ws.c).
	 */
	struct jwtauth_claims *claims;
	lws_sorted_usec_list_t auth_sul;
	bool attached; /* conn_attach() done: identity known */

	bool welcomed;
	bool connect_sent;
	/* Both owned (exact size, to keep idle connections small), or ""
	 * (static) until known. */
	size_t user_len;
	char *user;
	char *id; /* "" until the node id is known */
};

/*
 * A websocket was established: a connection without identity yet.
 * Returns it (linked into w->conns) or NULL on allocation failure.
 */
struct conn *conn_new(struct worker *w, struct lws *wsi);

/*
 * The identity of c is user[0..len) (a valid id): joins "user:<id>" and
 * "all" and welcomes at once if both are active. Once per connection.
 * Returns 0, or -1 on allocation failure (the caller closes).
 */
int conn_attach(struct conn *c, const char *user, size_t len);

/* The websocket is gone: leaves every membership, sends the disconnect
 * event if the connect event was sent, drops the queue. NULL is ok. */
void conn_free(struct conn *c);

/*
 * Queues a reference to f (fan-out and replies alike), applying
 * gateway.max_queued_bytes and gateway.slow_client. Borrows f.
 */
void conn_enqueue(struct conn *c, struct frame *f);

/* Queues f and drops the caller's reference (for freshly built replies;
 * f may be NULL after an allocation failure: nothing is sent). */
void conn_send(struct conn *c, struct frame *f);

/* Replies {"op":"error",...}. */
void conn_error(
    struct conn *c, enum cmsg_err code, const char *msg, const json_t *ref);

/*
 * Closes with code (1001, 1008, 1009, 1013 ...) on the next writeable
 * callback, with a 3 s backstop for a socket that never becomes writeable.
 * reason names the disconnect in the events stream. The queue is dropped.
 */
void conn_close(struct conn *c, int code, const char *reason);

/* Same with msg (static) as the close frame's reason text. */
void conn_close_msg(
    struct conn *c, int code, const char *reason, const char *msg);

/* LWS_CALLBACK_SERVER_WRITEABLE: writes queued frames (at most
 * CONN_WRITE_BATCH). Returns -1 when lws must close the connection. */
int conn_write(struct conn *c);

/*
 * After each pass of the worker's loop, outside every lws callback: writes
 * the queue of every connection conn_enqueue() marked meanwhile. Safe for
 * plain ws over TCP in lws 4.1.6: lws_write() appends to the wsi's buflist
 * when output is already pending and buffers the unsent tail of a short
 * send() itself, asking for POLLOUT; a socket with buffered output, or
 * closing, is left to the writeable callback. A failing send kills the
 * connection asynchronously.
 */
void conn_flush_pending(struct worker *w);
/*
 * Frames per writeable callback. It matches LINK_RX_BATCH (envelopes taken
 * from the bus per wakeup): with a smaller cap a connection that receives
 * a whole batch falls behind by the difference every loop turn even though
 * its socket is not choked, and a burst would hit max_queued_bytes several
 * times sooner than the client's real speed warrants. A choked socket
 * still stops the loop early (lws_partial_buffered).
 */
#define CONN_WRITE_BATCH 256
/*
 * Queued frames are copied into one send of at most this many bytes
 * (headers included): a burst costs one syscall per connection per loop
 * pass instead of one per frame. A larger frame is written on its own.
 */
#define CONN_COALESCE_MAX (64 * 1024)

/* subscribe / unsubscribe of one channel name (validated). ref borrowed. */
void conn_subscribe(
    struct conn *c, const char *name, size_t len, const json_t *ref);
void conn_unsubscribe(
    struct conn *c, const char *name, size_t len, const json_t *ref);

/* The conn id, assigning it if the node id is known; NULL otherwise. */
const char *conn_id(struct conn *c);

/* fanout_ops callbacks (see fanout.h). */
void conn_member_ready(struct fan_member *m);
void conn_member_failed(struct fan_member *m);

#endif
