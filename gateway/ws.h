/*
 * ws.h - the one lws protocol of a worker (index 0, so it also gets every
 * HTTP request): the upgrade check on gateway.path (identity, origin,
 * connection limit), the websocket session (client messages in, queued
 * frames out) and the small HTTP endpoints of http.c. Worker loop only.
 */
#ifndef WSP_WS_H
#define WSP_WS_H

#include <stddef.h>

#include <libwebsockets.h>

struct conn;

/* Per-session data lws allocates (zeroed) for every wsi of the protocol. */
struct ws_pss {
	struct conn *conn; /* websocket: the session, NULL before ESTABLISHED */
	/* HTTP: the response body still to send (borrowed, static) */
	const unsigned char *body;
	size_t body_len, body_sent;
};

int ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
    void *in, size_t len);

/* Receive buffer per connection: small, so idle sockets stay cheap;
 * larger messages are reassembled in conn.rx. */
#define WS_RX_BUFFER_SIZE 4096

#endif
