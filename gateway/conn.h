/*
 * conn.h - one client WebSocket session: its identity, its memberships in
 * the routing state (fanout.h), its bounded outgoing queue (connq.h) and
 * slow-client policy, its rate limiter, and its replies.
 *
 * Message path: Redis -> bridge -> bus -> busrx -> deliver -> conn -> send.
 * Every connection is a member of "user:<id>" and "all"; `welcome` is
 * queued once both are active at the bridge, and only then do messages
 * for them flow. Channel subscriptions are further memberships.
 *
 * Replies keep request order: every request gets exactly one reply, and a
 * reply is queued only after the replies of all earlier requests. A
 * `subscribe` is answered once its channel is active at the bridge (and
 * after `welcome`), so the replies of requests made behind it wait in the
 * connection's reply list (struct conn_reply) until it is answered; the
 * channel's messages start with its `subscribed`. A request that
 * supersedes a waiting `subscribe` of the same channel (`unsubscribe`)
 * answers it first, as if it had completed at once.
 *
 * Frames are queued by conn_deliver() (messages) and conn_reply()
 * (replies), which mark the connection for send.c to write after the
 * loop pass. Closing is always asynchronous: conn_close() marks the
 * connection and asks for a writeable callback that sends the close
 * frame. Worker loop only.
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
#include "keepalive.h"
#include "rate.h"

struct worker;
struct fan_member;

/* "<node>.<slot>.<gen>.<n>" */
#define CONN_ID_MAX 128

struct conn {
	/* What every delivery touches (conn_deliver(), send.c),
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
	/* Replies that wait for an earlier one (struct conn_reply.node),
	 * oldest request first; empty when no `subscribe` is pending. */
	struct dlist replies;
	uint32_t n_replies;
	struct fan_member *m_user, *m_all;
	uint32_t n_channels;
	struct rate rate;

	/* A message being reassembled from fragments. */
	char *rx;
	size_t rx_len, rx_cap;
	bool rx_binary;
	bool rx_busy; /* inside a message that spans chunks */

	uint64_t established_ms;
	struct keepalive_entry ka; /* in w->ka while open (keepalive.h) */
	bool ping_due; /* a ping waits for the queue to drain (send.c) */
	const char *close_msg; /* its reason text; NULL: by code */
	const char *reason;    /* for the disconnect event */

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
int conn_attach(struct conn *c, const char *user, size_t len, const char *since,
    size_t since_len);

/* The websocket is gone: leaves every membership, sends the disconnect
 * event if the connect event was sent, drops the queue. NULL is ok. */
void conn_free(struct conn *c);

/*
 * One message for c from the fan-out: queues a reference to f (borrowed),
 * applying gateway.max_queued_bytes and gateway.slow_client; a frame not
 * queued is counted by its drop reason. (A connection recovering history
 * will hold live frames here until its replayed ones are queued.)
 */
void conn_deliver(struct conn *c, struct frame *f);

/*
 * The reply to one request: queued after the replies of every earlier
 * request (at once when none waits). Takes f's reference; f may be NULL
 * after an allocation failure: nothing is sent.
 */
void conn_reply(struct conn *c, struct frame *f);

/* A reply whose frame comes later (conn_reply_fill()), kept in request
 * order; NULL when c is closing or out of memory (c is then closed). */
struct conn_reply *conn_reply_later(struct conn *c, const json_t *ref);
/* The ref a later reply echoes (borrowed), or NULL. */
const json_t *conn_reply_ref(const struct conn_reply *r);
/* Gives r its frame (its reference is taken; NULL: lost to memory). */
void conn_reply_fill(struct conn *c, struct conn_reply *r, struct frame *f);

/* Replies {"op":"error",...} (conn_reply()). */
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

/*
 * A closing connection leaves every membership (and its waiting replies
 * go): called by send.c after the loop pass in which it was closed, never
 * from a fan-out that may be walking them.
 */
void conn_release(struct conn *c);

/* subscribe / unsubscribe of one channel name (validated). ref borrowed.
 * Each is answered once, in request order (see above). */
/* since (NULL: none) asks for a recovery (history on). */
void conn_subscribe(struct conn *c, const char *name, size_t len,
    const char *since, size_t since_len, const json_t *ref);
void conn_unsubscribe(
    struct conn *c, const char *name, size_t len, const json_t *ref);

/* The conn id, assigning it if the node id is known; NULL otherwise. */
const char *conn_id(struct conn *c);

/* Replies a connection may have waiting before it is closed 1008: a
 * client that sends this many requests behind a `subscribe` the node
 * cannot complete (Redis is down) is not waiting for its replies. */
#define CONN_REPLIES_MAX 1024

/* fanout_ops callbacks (see fanout.h, deliver.c). */
void conn_member_ready(struct fan_member *m);
/* The recovery of m has its answer (recover.c): its `subscribed` can be
 * given, with recovered (0 or 1). */
void conn_recovered(struct fan_member *m, int recovered);
void conn_member_failed(struct fan_member *m);

#endif
