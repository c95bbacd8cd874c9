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

/*
 * lws' receive buffer (protocol rx_buffer_size), allocated for every
 * websocket for its whole life: the chunk size of LWS_CALLBACK_RECEIVE.
 * Client messages are small and rare, so it is kept at the smallest size
 * that still holds a whole control frame's payload (125 bytes: lws keeps
 * ping and close payloads in it); a larger message arrives in chunks and
 * is reassembled in conn.rx. lws 4.1.6 also reads the socket in pieces
 * of this size (+ LWS_PRE), so such a message takes several recv()s.
 * 4096 cost 4 KiB per idle connection.
 */
#define WS_RX_BUFFER_SIZE 128
/* conn.rx starts at this size and is freed after a message larger. */
#define WS_RX_REASSEMBLY_MIN 4096

#endif
