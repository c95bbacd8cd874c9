/*
 * ws.c - the lws protocol callback of a worker (see ws.h): upgrade checks
 * in LWS_CALLBACK_HTTP_CONFIRM_UPGRADE, session setup and teardown, client
 * message reassembly and dispatch, and the write path. Replies and
 * closes go through conn.c, which queues them in order with messages.
 */
#include "ws.h"
#include "envelope.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "addr.h"
#include "clientmsg.h"
#include "clock.h"
#include "conn.h"
#include "hsgate.h"
#include "http.h"
#include "jwtauth.h"
#include "log.h"
#include "rate.h"
#include "recover.h"
#include "send.h"
#include "uptx.h"
#include "worker.h"

/* ?user= may carry a URL-encoded id of up to 256 bytes (each up to %XX). */
#define WS_URLARG_MAX (3 * ADDR_ID_MAX + 64)
/* ?token= or Authorization: anything the header limit lets through. */
#define WS_TOKEN_BUF (16384 + 64)

/* Workers are single-threaded: one buffer for the handshake's token. */
static char ws_tokbuf[WS_TOKEN_BUF];

static struct worker *
ws_worker(struct lws *wsi)
{
	return lws_context_user(lws_get_context(wsi));
}

/*
 * The ?user= of the request (none mode) into buf: its length, -1 if the
 * request has none, -2 if it is not a valid id (too long included). lws
 * has already percent-decoded each argument whole; the gate refused any
 * escape of a control character (which lws would cut the value at or
 * choke on), so what is checked here is the id as the client meant it.
 */
static int
ws_user(struct lws *wsi, char *buf, size_t size)
{
	int i, n;

	for (i = 0; i <= HSGATE_ARGS_MAX; i++) {
		/* ws_tokbuf as scratch: it holds any argument the gate let
		 * through, and none mode has no token to keep in it. */
		n = lws_hdr_copy_fragment(wsi, ws_tokbuf, sizeof(ws_tokbuf),
		    WSI_TOKEN_HTTP_URI_ARGS, i);
		if (n < 0)
			return -1;
		if (n < 5 || memcmp(ws_tokbuf, "user=", 5) != 0)
			continue;
		n -= 5;
		if ((size_t)n >= size ||
		    !addr_id_valid(ws_tokbuf + 5, (size_t)n))
			return -2;
		memcpy(buf, ws_tokbuf + 5, (size_t)n);
		buf[n] = '\0';
		return n;
	}
	return -1;
}

/* RFC 6455 4.2.1: the base64 of 16 bytes: 22 characters, the last of
 * them with its 4 low bits unused (so one of AQgw), then "==". */
static bool
ws_key_valid(const char *k, int n)
{
	static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
				  "abcdefghijklmnopqrstuvwxyz0123456789+/";

	if (n != 24 || k[22] != '=' || k[23] != '=' ||
	    strchr("AQgw", k[21]) == NULL)
		return false;
	for (int i = 0; i < 22; i++)
		if (k[i] == '\0' || strchr(b64, k[i]) == NULL)
			return false;
	return true;
}

/* The ?since= of the request if it is a message id: its length; 0 when
 * absent, -1 when it is not an id. */
static int
ws_since(struct lws *wsi, char *buf, size_t size)
{
	const char *v = lws_get_urlarg_by_name(wsi, "since=", buf, (int)size);
	struct env_sid sid;
	size_t len;

	if (v == NULL)
		return 0;
	len = strlen(v);
	if (env_sid_parse(v, len, &sid) != 0)
		return -1;
	memmove(buf, v, len + 1);
	return (int)len;
}

/*
 * The token of the handshake request: ?token=, else the Authorization
 * header with its "Bearer " scheme trimmed. Returns a pointer into
 * ws_tokbuf (scrub it with ws_token_scrub()) with its length in *len, or
 * NULL when the request carries none. A header with another scheme gives
 * an empty token (refused as malformed).
 */
static const char *
ws_token(struct lws *wsi, size_t *len)
{
	const char *v;
	int n;

	v = lws_get_urlarg_by_name(wsi, "token=", ws_tokbuf, sizeof(ws_tokbuf));
	if (v != NULL) {
		*len = strlen(v);
		return v;
	}
	if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_AUTHORIZATION) <= 0)
		return NULL;
	n = lws_hdr_copy(
	    wsi, ws_tokbuf, sizeof(ws_tokbuf), WSI_TOKEN_HTTP_AUTHORIZATION);
	*len = 0;
	if (n < 7 || strncasecmp(ws_tokbuf, "Bearer ", 7) != 0)
		return ws_tokbuf + (n > 0 ? n : 0); /* "" */
	v = ws_tokbuf + 7;
	while (*v == ' ')
		v++;
	*len = strlen(v);
	while (*len > 0 && v[*len - 1] == ' ')
		(*len)--;
	return v;
}

static void
ws_token_scrub(void)
{
	explicit_bzero(ws_tokbuf, sizeof(ws_tokbuf));
}

/* Verifies a token now; counts a refusal by its reason. Never logs it. */
static struct jwtauth_claims *
ws_verify(
    struct worker *w, const char *tok, size_t len, enum jwtauth_reject *why)
{
	struct jwtauth_claims *claims = NULL;

	if (jwtauth_verify(w->jwt, tok, len, time(NULL), &claims, why) == 0) {
		w->c.auth_ok++;
		return claims;
	}
	if ((unsigned int)*why < JWTAUTH_REJECT_COUNT)
		worker_count_auth_rejected(w, *why);
	return NULL;
}

/* Refusals are logged at most once per this interval (with a count of
 * those held back): a flood of bad handshakes is not a flood of lines. */
#define WS_LOG_MS 1000

static int
ws_reject(
    struct lws *wsi, unsigned int status, uint64_t *counter, const char *why)
{
	static struct log_limit ll;
	uint64_t held;
	char peer[64];

	(*counter)++;
	if (log_limit_pass(&ll, clock_mono_ms(), WS_LOG_MS, &held)) {
		lws_get_peer_simple(wsi, peer, sizeof(peer));
		if (held > 0)
			log_info("handshake rejected: %u %s peer=%s (and %llu "
				 "more since the last line)",
			    status, why, peer, (unsigned long long)held);
		else
			log_info("handshake rejected: %u %s peer=%s", status,
			    why, peer);
	}
	lws_return_http_status(wsi, status, NULL);
	return 1;
}

/* LWS_CALLBACK_HTTP_CONFIRM_UPGRADE: the last moment for a real status. */
static int
ws_confirm_upgrade(struct worker *w, struct lws *wsi)
{
	char buf[WS_URLARG_MAX];
	int n;

	n = lws_hdr_copy(wsi, buf, sizeof(buf), WSI_TOKEN_GET_URI);
	if (n < 0 || strcmp(buf, w->conf->path) != 0)
		return ws_reject(
		    wsi, HTTP_STATUS_NOT_FOUND, &w->c.hs_rejected_path, "path");
	/* lws 4.1.6 upgrades any version; only 13 is RFC 6455. */
	n = lws_hdr_copy(wsi, buf, sizeof(buf), WSI_TOKEN_VERSION);
	if (n != 2 || memcmp(buf, "13", 2) != 0)
		return ws_reject(wsi, HTTP_STATUS_BAD_REQUEST,
		    &w->c.hs_rejected_version, "version");
	/* lws 4.1.6 answers any key (even none) with 101. */
	n = lws_hdr_copy(wsi, buf, sizeof(buf), WSI_TOKEN_KEY);
	if (!ws_key_valid(buf, n))
		return ws_reject(wsi, HTTP_STATUS_BAD_REQUEST,
		    &w->c.hs_rejected_malformed, "Sec-WebSocket-Key");
	if (w->draining)
		return ws_reject(wsi, HTTP_STATUS_SERVICE_UNAVAILABLE,
		    &w->c.hs_rejected_draining, "draining");
	if (lws_hdr_total_length(wsi, WSI_TOKEN_ORIGIN) > 0) {
		n = lws_hdr_copy(wsi, buf, sizeof(buf), WSI_TOKEN_ORIGIN);
		if (n < 0 || !conf_origin_allowed(w->conf, buf))
			return ws_reject(wsi, HTTP_STATUS_FORBIDDEN,
			    &w->c.hs_rejected_origin, "origin");
	}
	if (w->conf->auth_mode == CONF_AUTH_NONE) {
		n = ws_user(wsi, buf, sizeof(buf));
		if (n == -1)
			return ws_reject(wsi, HTTP_STATUS_UNAUTHORIZED,
			    &w->c.hs_rejected_auth, "no ?user=");
		if (n < 0)
			return ws_reject(wsi, HTTP_STATUS_BAD_REQUEST,
			    &w->c.hs_rejected_malformed, "invalid ?user=");
	} else {
		/* A token in the request must be good; without one the
		 * client authenticates with its first message. */
		struct jwtauth_claims *claims;
		enum jwtauth_reject why;
		const char *tok;
		size_t tlen;

		tok = ws_token(wsi, &tlen);
		if (tok != NULL) {
			claims = ws_verify(w, tok, tlen, &why);
			ws_token_scrub();
			if (claims == NULL)
				return ws_reject(wsi, HTTP_STATUS_UNAUTHORIZED,
				    &w->c.hs_rejected_auth,
				    jwtauth_reject_str(why));
			jwtauth_claims_free(claims); /* again at ESTABLISHED */
		}
	}
	if (w->conf->max_connections > 0 &&
	    w->n_conns >= w->conf->max_connections)
		return ws_reject(wsi, HTTP_STATUS_SERVICE_UNAVAILABLE,
		    &w->c.hs_rejected_limit, "max_connections");
	w->c.hs_accepted++;
	return 0;
}

/*
 * auth_sul: while unauthenticated, the auth.timeout_s deadline; after,
 * the token's exp + leeway_s (a fresh `auth` moves it).
 */
static void
ws_auth_timer(lws_sorted_usec_list_t *sul)
{
	struct conn *c = lws_container_of(sul, struct conn, auth_sul);
	struct worker *w = c->w;
	time_t now, end;

	if (c->close_code != 0)
		return;
	if (c->claims == NULL) {
		w->c.closed_auth++;
		w->c.closed_auth_timeout++;
		log_info("conn=%s: no auth within %u s: closing 4001", c->id,
		    w->conf->auth_timeout_s);
		conn_close_msg(
		    c, 4001, "auth_timeout", "authentication timeout");
		return;
	}
	now = time(NULL);
	end = c->claims->exp + (time_t)w->conf->leeway_s;
	if (now < end) {
		/* Early (clock steps): wait for the rest. */
		lws_sul_schedule(w->ctx, 0, &c->auth_sul, ws_auth_timer,
		    (lws_usec_t)(end - now) * LWS_US_PER_SEC);
		return;
	}
	w->c.closed_auth++;
	w->c.closed_auth_expired++;
	log_info(
	    "conn=%s user=%s: token expired: closing 4001", c->id, c->user);
	conn_close_msg(c, 4001, "token_expired", "token expired");
}

/* Takes claims (owned) as the session's and arms the expiry timer. */
static void
ws_set_claims(struct worker *w, struct conn *c, struct jwtauth_claims *claims)
{
	time_t now = time(NULL), end;

	jwtauth_claims_free(c->claims);
	c->claims = claims;
	lws_sul_cancel(&c->auth_sul);
	end = claims->exp + (time_t)w->conf->leeway_s;
	lws_sul_schedule(w->ctx, 0, &c->auth_sul, ws_auth_timer,
	    (lws_usec_t)(end > now ? end - now : 0) * LWS_US_PER_SEC + 1);
}

/* Closes an unauthenticated or refused connection with 4001. */
static void
ws_unauthorized(
    struct worker *w, struct conn *c, const char *reason, const char *msg)
{
	w->c.closed_auth++;
	log_info("conn=%s user=%s: %s: closing 4001", c->id, c->user, msg);
	conn_close_msg(c, 4001, reason, msg);
}

/* {"op":"auth"}: the first authenticates, later ones refresh. */
static void
ws_auth(struct worker *w, struct conn *c, struct cmsg *m)
{
	struct jwtauth_claims *claims;
	enum jwtauth_reject why;

	if (w->conf->auth_mode != CONF_AUTH_JWT) {
		conn_error(c, CMSG_E_BAD_REQUEST,
		    "auth.mode is none: the identity is ?user=", m->ref);
		return;
	}
	claims = ws_verify(w, m->token, m->token_len, &why);
	if (claims == NULL) {
		log_info("conn=%s user=%s: token refused: %s", c->id, c->user,
		    jwtauth_reject_str(why));
		ws_unauthorized(w, c, "unauthorized", "invalid token");
		return;
	}
	if (c->claims != NULL &&
	    (claims->user_len != c->user_len ||
		memcmp(claims->user, c->user, c->user_len) != 0)) {
		/* The session keeps its identity and its current token. */
		w->c.auth_user_mismatch++;
		jwtauth_claims_free(claims);
		conn_error(c, CMSG_E_FORBIDDEN, "the token is for another user",
		    m->ref);
		return;
	}
	ws_set_claims(w, c, claims);
	if (!c->attached && conn_attach(c, c->claims->user, c->claims->user_len,
				m->since, m->since_len) == -1) {
		log_warnx("conn=%s: conn_attach: out of memory", c->id);
		conn_close(c, 1011, "error");
		return;
	}
	if (m->ref != NULL)
		conn_reply(c, cmsg_reply_frame("ok", NULL, 0, m->ref));
}

/* A user reads the history of what it may subscribe to: its own user
 * address, all, and channels (the subs claim in jwt mode). */
static void
ws_history(struct worker *w, struct conn *c, const struct cmsg *m)
{
	bool ok;

	if (w->conf->history_size == 0) {
		conn_error(c, CMSG_E_UNAVAILABLE, "history is off", m->ref);
		return;
	}
	switch (m->to.kind) {
	case ADDR_USER:
		ok = m->to.idlen == c->user_len &&
		     memcmp(m->to.id, c->user, c->user_len) == 0;
		break;
	case ADDR_CHANNEL:
		ok = w->conf->auth_mode != CONF_AUTH_JWT ||
		     jwtauth_claims_may_subscribe(
			 c->claims, m->to.id, m->to.idlen);
		break;
	default:
		ok = true;
		break;
	}
	if (!ok) {
		conn_error(c, CMSG_E_FORBIDDEN,
		    "this connection may not read that history", m->ref);
		return;
	}
	recover_history(w, c, m->to_text, m->to_len,
	    m->limit < w->conf->history_max_recover
		? m->limit
		: w->conf->history_max_recover,
	    m->ref);
}

static bool
publish_allowed(const struct conf *conf, enum addr_kind k)
{
	switch (conf->client_publish) {
	case CONF_PUBLISH_OFF:
		return false;
	case CONF_PUBLISH_CHANNELS:
		return k == ADDR_CHANNEL;
	case CONF_PUBLISH_USERS:
		return k == ADDR_CHANNEL || k == ADDR_USER;
	case CONF_PUBLISH_ALL:
		return true;
	}
	return false;
}

/* publish and send: forward the client's data upstream. */
static void
ws_forward(struct worker *w, struct conn *c, struct cmsg *m)
{
	const char *id = NULL;
	size_t dlen;
	char *data;

	if (m->op == CMSG_PUBLISH && !publish_allowed(w->conf, m->to.kind)) {
		conn_error(c, CMSG_E_FORBIDDEN,
		    "gateway.client_publish does not allow this target",
		    m->ref);
		return;
	}
	if (m->op == CMSG_PUBLISH && w->conf->auth_mode == CONF_AUTH_JWT &&
	    !jwtauth_claims_may_publish(c->claims, m->to_text, m->to_len)) {
		conn_error(c, CMSG_E_FORBIDDEN,
		    "the token's pubs claim does not allow this target",
		    m->ref);
		return;
	}
	if (m->op == CMSG_SEND && (id = conn_id(c)) == NULL) {
		conn_error(c, CMSG_E_UNAVAILABLE, "not attached to the bridge",
		    m->ref);
		return;
	}
	data = cmsg_data_text(m, &dlen);
	if (data == NULL) {
		conn_error(c, CMSG_E_INTERNAL, "out of memory", m->ref);
		return;
	}
	if (dlen > w->conf->max_message_bytes) {
		conn_error(
		    c, CMSG_E_TOO_LARGE, "data over max_message_bytes", m->ref);
	} else {
		if (m->op == CMSG_PUBLISH)
			uptx_publish(w->up, m->to_text, m->to_len, c->user,
			    c->user_len, data, dlen);
		else
			uptx_send(w->up, c->user, c->user_len, id, data, dlen);
		/* Success is silent unless the client asked with a ref. */
		if (m->ref != NULL)
			conn_reply(c, cmsg_reply_frame("ok", NULL, 0, m->ref));
	}
	free(data);
}

/* One complete client message. */
static void
ws_message(
    struct worker *w, struct conn *c, const char *p, size_t len, bool binary)
{
	enum rate_verdict v;
	enum cmsg_err e = CMSG_OK;
	const char *emsg = NULL;
	struct cmsg m;
	bool bare_ping = !binary && len == 4 && memcmp(p, "ping", 4) == 0;

	memset(&m, 0, sizeof(m));
	if (!binary && !bare_ping)
		e = cmsg_parse(p, len, &m, &emsg);
	if (!c->attached) {
		/* auth.mode = jwt without a token at the handshake: the
		 * first message must be a good auth. */
		if (e == CMSG_OK && !binary && !bare_ping && m.op == CMSG_AUTH)
			ws_auth(w, c, &m);
		else
			ws_unauthorized(
			    w, c, "unauthorized", "authentication required");
		cmsg_fini(&m);
		return;
	}
	v = rate_take(&c->rate, clock_mono_ms());
	if (v == RATE_ABUSE) {
		w->c.closed_abuse++;
		log_info("conn=%s user=%s: rate limit exceeded repeatedly: "
			 "closing 1008",
		    c->id, c->user);
		conn_close(c, 1008, "abuse");
	} else if (v == RATE_REJECT) {
		conn_error(
		    c, CMSG_E_RATE_LIMITED, "rate limit exceeded", m.ref);
	} else if (binary) {
		conn_error(c, CMSG_E_BAD_REQUEST,
		    "binary frames are not accepted", NULL);
	} else if (bare_ping) {
		conn_reply(c, frame_new_copy("pong", 4, false));
	} else if (e != CMSG_OK) {
		conn_error(c, e, emsg, m.ref);
	} else {
		switch (m.op) {
		case CMSG_AUTH:
			ws_auth(w, c, &m);
			break;
		case CMSG_SUBSCRIBE:
			if (w->conf->auth_mode == CONF_AUTH_JWT &&
			    !jwtauth_claims_may_subscribe(
				c->claims, m.channel, m.channel_len))
				conn_error(c, CMSG_E_FORBIDDEN,
				    "the token's subs claim does not allow "
				    "this channel",
				    m.ref);
			else
				conn_subscribe(c, m.channel, m.channel_len,
				    m.since, m.since_len, m.ref);
			break;
		case CMSG_UNSUBSCRIBE:
			conn_unsubscribe(c, m.channel, m.channel_len, m.ref);
			break;
		case CMSG_PUBLISH:
		case CMSG_SEND:
			ws_forward(w, c, &m);
			break;
		case CMSG_PING:
			conn_reply(c, cmsg_reply_frame("pong", NULL, 0, m.ref));
			break;
		case CMSG_HISTORY:
			ws_history(w, c, &m);
			break;
		}
	}
	cmsg_fini(&m);
}

/*
 * A text message must be UTF-8 (RFC 6455 8.1): checked here once it is
 * whole, not by lws (worker.c leaves LWS_SERVER_OPTION_VALIDATE_UTF8 off,
 * see ws_peer_close()). Closes with 1007 and returns false if not.
 */
static bool
ws_text_ok(struct worker *w, struct conn *c, const char *p, size_t len)
{
	if (utf8_valid(p, len))
		return true;
	w->c.closed_protocol++;
	log_info("conn=%s user=%s: text message is not UTF-8: closing 1007",
	    c->id, c->user);
	conn_close_msg(c, 1007, "protocol", "invalid UTF-8");
	return false;
}

/* LWS_CALLBACK_RECEIVE: one chunk of a (possibly fragmented) message. */
static int
ws_receive(struct worker *w, struct lws *wsi, struct conn *c, const char *in,
    size_t len)
{
	bool end = lws_is_final_fragment(wsi) &&
		   lws_remaining_packet_payload(wsi) == 0;
	size_t need;
	char *nb;

	if (c->close_code != 0)
		return 0; /* closing: input is ignored */
	if (c->rx_len == 0 && !c->rx_busy)
		c->rx_binary = lws_frame_is_binary(wsi);
	need = c->rx_len + len;
	if (need > w->conf->max_message_bytes) {
		/*
		 * Closed like every other policy close: the close frame goes
		 * out from the writeable callback and the rest of the message
		 * is read and ignored meanwhile. Returning -1 here would close
		 * the socket with the message's tail unread (lws reads
		 * rx_buffer_size bytes at a time), and the kernel would then
		 * reset the connection, losing the 1009 on the way.
		 */
		w->c.closed_too_big++;
		log_info("conn=%s user=%s: message over %u bytes: closing 1009",
		    c->id, c->user, w->conf->max_message_bytes);
		conn_close_msg(c, 1009, "too_large", "message too big");
		return 0;
	}
	if (end && !c->rx_busy) {
		/* The whole message in one chunk: no copy. */
		if (c->rx_binary || ws_text_ok(w, c, in, len))
			ws_message(w, c, in, len, c->rx_binary);
		return 0;
	}
	if (!c->rx_binary) {
		/* Binary content is never parsed: only its size is checked. */
		if (need > c->rx_cap) {
			size_t ncap =
			    c->rx_cap ? c->rx_cap : WS_RX_REASSEMBLY_MIN;

			while (ncap < need)
				ncap *= 2;
			nb = realloc(c->rx, ncap);
			if (nb == NULL)
				return -1;
			c->rx = nb;
			c->rx_cap = ncap;
		}
		memcpy(c->rx + c->rx_len, in, len);
	}
	if (!c->rx_busy) {
		/* A message that spans chunks must be finished in time: a
		 * client may not park up to max_message_bytes here for ever
		 * while it answers pings (ws_message_timer()). */
		lws_set_timer_usecs(
		    wsi, (lws_usec_t)w->conf->idle_timeout_s * LWS_US_PER_SEC);
	}
	c->rx_len = need;
	c->rx_busy = true;
	if (!end)
		return 0;
	lws_set_timer_usecs(wsi, LWS_SET_TIMER_USEC_CANCEL);
	if (c->rx_binary || ws_text_ok(w, c, c->rx, c->rx_len))
		ws_message(w, c, c->rx, c->rx_len, c->rx_binary);
	c->rx_len = 0;
	c->rx_busy = false;
	if (c->rx_cap > WS_RX_REASSEMBLY_MIN) {
		/* Keep idle connections small after a large message. */
		free(c->rx);
		c->rx = NULL;
		c->rx_cap = 0;
	}
	return 0;
}

/* LWS_CALLBACK_TIMER: a message begun idle_timeout_s ago is unfinished. */
static void
ws_message_timer(struct worker *w, struct conn *c)
{
	if (!c->rx_busy || c->close_code != 0)
		return;
	w->c.closed_msg_timeout++;
	log_info("conn=%s user=%s: message of %zu bytes so far not finished "
		 "within %u s: closing 1008",
	    c->id, c->user, c->rx_len, w->conf->idle_timeout_s);
	/* What was held goes now, not when the close completes. */
	free(c->rx);
	c->rx = NULL;
	c->rx_cap = 0;
	c->rx_len = 0;
	conn_close_msg(c, 1008, "message_timeout", "message not finished");
}

/*
 * LWS_CALLBACK_WS_PEER_INITIATED_CLOSE: payload[0..len) of the client's
 * close frame, before lws echoes it. lws 4.1.6 echoes a code it does not
 * know is invalid (5000 and up) and, with its UTF-8 option on, drops the
 * connection without a close frame when the reason is not UTF-8 (so that
 * option stays off and ws_text_ok() does its work). An invalid code or a
 * 1-byte payload: 1002; a reason that is not UTF-8: 1007. Both answered
 * with our close frame (set here; returning -1 makes lws send it).
 */
static int
ws_peer_close(struct worker *w, struct lws *wsi, struct conn *c,
    const unsigned char *p, size_t len)
{
	unsigned int code;
	const char *msg = NULL;
	int status = 0;

	if (c != NULL)
		c->peer_closed = true;
	if (len == 1) {
		status = 1002;
		msg = "bad close frame";
	} else if (len >= 2) {
		code = (unsigned int)p[0] << 8 | p[1];
		/* RFC 6455 7.4: codes a peer may send. */
		if (!((code >= 1000 && code <= 1003) ||
			(code >= 1007 && code <= 1014) ||
			(code >= 3000 && code <= 4999))) {
			status = 1002;
			msg = "invalid close code";
		} else if (!utf8_valid(p + 2, len - 2)) {
			status = 1007;
			msg = "invalid UTF-8 in close reason";
		}
	}
	if (status == 0)
		return 0;
	w->c.closed_protocol++;
	if (c != NULL) {
		log_info("conn=%s user=%s: %s: closing %d", c->id, c->user, msg,
		    status);
		c->reason = "protocol";
	}
	lws_close_reason(wsi, (enum lws_close_status)status,
	    (unsigned char *)msg, strlen(msg));
	return -1;
}

static void
ws_closed(struct worker *w, struct conn *c)
{
	/* An idle hang-up set its reason already (worker.c). */
	if (c->reason == NULL)
		c->reason = c->peer_closed ? "client_close" : "connection_lost";
	conn_free(c);
	if (w->draining && w->n_conns == 0)
		w->done = true; /* drained: leave the loop */
}

/* LWS_CALLBACK_ESTABLISHED: the session, with its identity if known. */
static int
ws_established(struct worker *w, struct lws *wsi, struct ws_pss *pss)
{
	char ubuf[WS_URLARG_MAX], sbuf[ENV_SID_MAX + 8];
	struct jwtauth_claims *claims = NULL;
	enum jwtauth_reject why = JWTAUTH_REJECT_NONE;
	const char *tok = NULL;
	size_t tlen = 0;
	struct conn *c;
	int n = -1, slen;

	if (w->conf->auth_mode == CONF_AUTH_NONE) {
		n = ws_user(wsi, ubuf, sizeof(ubuf));
		if (n < 0)
			return -1; /* checked at the upgrade already */
	} else if ((tok = ws_token(wsi, &tlen)) != NULL) {
		/* Verified at the upgrade; again for its claims (the pss
		 * of the HTTP request is not the session's). Not counted
		 * twice: only a token expiring in between fails here. */
		if (jwtauth_verify(
			w->jwt, tok, tlen, time(NULL), &claims, &why) == -1)
			claims = NULL;
		ws_token_scrub();
	}
	c = pss->conn = conn_new(w, wsi);
	if (c == NULL) {
		jwtauth_claims_free(claims);
		log_warnx("conn_new: out of memory");
		return -1;
	}
	if (w->draining) {
		jwtauth_claims_free(claims);
		conn_close(c, 1001, "shutdown");
		return 0;
	}
	slen = ws_since(wsi, sbuf, sizeof(sbuf));
	if (n >= 0) {
		if (conn_attach(c, ubuf, (size_t)n, slen > 0 ? sbuf : NULL,
			slen > 0 ? (size_t)slen : 0) == -1)
			conn_close(c, 1011, "error");
	} else if (claims != NULL) {
		ws_set_claims(w, c, claims);
		if (conn_attach(c, claims->user, claims->user_len,
			slen > 0 ? sbuf : NULL,
			slen > 0 ? (size_t)slen : 0) == -1)
			conn_close(c, 1011, "error");
	} else if (tok != NULL) {
		if ((unsigned int)why < JWTAUTH_REJECT_COUNT)
			worker_count_auth_rejected(w, why);
		ws_unauthorized(w, c, "unauthorized", "invalid token");
	} else {
		lws_sul_schedule(w->ctx, 0, &c->auth_sul, ws_auth_timer,
		    (lws_usec_t)w->conf->auth_timeout_s * LWS_US_PER_SEC);
	}
	if (slen < 0 && (n >= 0 || claims != NULL))
		conn_error(c, CMSG_E_BAD_REQUEST,
		    "since must be a message id (ignored)", NULL);
	return 0;
}

int
ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
    void *in, size_t len)
{
	struct ws_pss *pss = user;

	switch (reason) {
	case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
		return ws_confirm_upgrade(ws_worker(wsi), wsi);

	case LWS_CALLBACK_ESTABLISHED:
		return ws_established(ws_worker(wsi), wsi, pss);

	case LWS_CALLBACK_RECEIVE:
		if (pss->conn == NULL)
			return -1;
		return ws_receive(ws_worker(wsi), wsi, pss->conn, in, len);

	case LWS_CALLBACK_RECEIVE_PONG:
		if (pss->conn != NULL)
			keepalive_valid(&ws_worker(wsi)->ka, &pss->conn->ka,
			    clock_mono_ms());
		return 0;

	case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
		return ws_peer_close(ws_worker(wsi), wsi, pss->conn, in, len);

	case LWS_CALLBACK_TIMER:
		if (pss->conn != NULL)
			ws_message_timer(ws_worker(wsi), pss->conn);
		return 0;

	case LWS_CALLBACK_SERVER_WRITEABLE:
		if (pss->conn == NULL)
			return 0;
		return send_writeable(pss->conn);

	case LWS_CALLBACK_CLOSED:
		if (pss->conn != NULL) {
			ws_closed(ws_worker(wsi), pss->conn);
			pss->conn = NULL;
		}
		return 0;

	case LWS_CALLBACK_HTTP:
		return http_request(ws_worker(wsi), wsi, pss, in);

	case LWS_CALLBACK_HTTP_WRITEABLE:
		return http_writeable(wsi, pss);

	case LWS_CALLBACK_RAW_RX_FILE:
		/* The only raw descriptor of this protocol: hsgate's. */
		return hsgate_service(wsi);

	case LWS_CALLBACK_RAW_CLOSE_FILE:
		hsgate_closed(wsi);
		return 0;

	default:
		break;
	}
	return lws_callback_http_dummy(wsi, reason, user, in, len);
}
