/*
 * clientmsg.h - the client -> server JSON messages (README, "Client
 * protocol") and the JSON control replies the server sends back.
 *
 * Parsing is strict: one JSON object (duplicate keys rejected), a string
 * "op", the fields that op needs with the right types, and an optional
 * "ref" that must be a JSON scalar; unknown fields are ignored. Replies are
 * built with jansson into frames (frame.h); they are control traffic, never
 * the fan-out path. Pure: no lws state is touched.
 */
#ifndef WSP_CLIENTMSG_H
#define WSP_CLIENTMSG_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "addr.h"
#include "envelope.h"
#include "frame.h"

enum cmsg_op {
	CMSG_AUTH,
	CMSG_SUBSCRIBE,
	CMSG_UNSUBSCRIBE,
	CMSG_PUBLISH,
	CMSG_SEND,
	CMSG_PING,
	CMSG_HISTORY,
};

/* Error codes of the `error` reply; cmsg_err_str() gives the wire name. */
enum cmsg_err {
	CMSG_OK = 0,
	CMSG_E_BAD_REQUEST,
	CMSG_E_UNKNOWN_OP,
	CMSG_E_FORBIDDEN,
	CMSG_E_INVALID_CHANNEL,
	CMSG_E_TOO_MANY_SUBSCRIPTIONS,
	CMSG_E_NOT_SUBSCRIBED,
	CMSG_E_RATE_LIMITED,
	CMSG_E_TOO_LARGE,
	CMSG_E_UNAVAILABLE, /* the node could not subscribe (bridge refused) */
	CMSG_E_INTERNAL,    /* out of memory and the like */
};

struct cmsg {
	enum cmsg_op op;
	json_t *root; /* owned; everything below borrows from it */
	json_t *ref;  /* the client's ref (a scalar), or NULL */
	/* subscribe, unsubscribe: the channel name (validated) */
	const char *channel;
	size_t channel_len;
	/* publish: the target address (validated; points into root) */
	struct addr to;
	const char *to_text;
	size_t to_len;
	/* publish, send: the client's data, any JSON value */
	json_t *data;
	/* auth: the token */
	const char *token;
	size_t token_len;
	/* subscribe, auth: "since" (a message id, or "0"), or NULL */
	const char *since;
	size_t since_len;
	/* history: "limit" (CMSG_HISTORY_LIMIT when absent); the address is
	 * in to / to_text */
	uint32_t limit;
};

#define CMSG_HISTORY_LIMIT 50

/*
 * Parses one text frame. Returns CMSG_OK and fills *m, or an error code
 * with *msg set to a short static explanation. On every return m->ref is
 * set if a valid ref could be found (so an error reply can echo it) and
 * m must be released with cmsg_fini().
 */
enum cmsg_err cmsg_parse(
    const char *text, size_t len, struct cmsg *m, const char **msg);
void cmsg_fini(struct cmsg *m);

const char *cmsg_err_str(enum cmsg_err e);
const char *cmsg_op_str(enum cmsg_op op);

/*
 * The compact JSON text of m->data (any JSON value). Returns a malloc'ed
 * string the caller frees and its length in *len, or NULL.
 */
char *cmsg_data_text(const struct cmsg *m, size_t *len);

/*
 * Reply builders. Each returns a new text frame (one reference, the
 * caller's), or NULL on allocation failure. ref (borrowed, may be NULL) is
 * echoed as "ref".
 */
/* {"op":"error","code":...,"msg":...,"ref":...} */
struct frame *cmsg_error_frame(
    enum cmsg_err code, const char *msg, const json_t *ref);
/* {"op":<op>,"channel":<channel>,"ref":...}; channel may be NULL. */
struct frame *cmsg_reply_frame(
    const char *op, const char *channel, size_t channel_len, const json_t *ref);
/* {"op":"subscribed","channel":...,"ref":...,"recovered":bool}; recovered
 * < 0 leaves it out. */
struct frame *cmsg_subscribed_frame(
    const char *channel, size_t channel_len, const json_t *ref, int recovered);
/* {"id":..,"data"|"data_b64":..,"from"?:..}: one stored message of a
 * `history` reply (classified by the bridge as for a msg frame). NULL on
 * allocation failure or a JSON payload that does not parse. */
json_t *cmsg_history_entry(const struct bus_range_entry *x);
/* {"op":"history","to":..,"ref":..,"messages":[...]}; takes messages. */
struct frame *cmsg_history_frame(
    const char *to, size_t to_len, const json_t *ref, json_t *messages);
/* {"op":"welcome","user":...,"node":...,"worker":N,"conn":...} */
struct frame *cmsg_welcome_frame(
    const char *user, const char *node, uint32_t worker, const char *conn);
/* The same with "recovered" (recovered < 0 leaves it out). */
struct frame *cmsg_welcome_recovered_frame(const char *user, const char *node,
    uint32_t worker, const char *conn, int recovered);

#endif
