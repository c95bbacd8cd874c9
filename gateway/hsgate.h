/*
 * hsgate.h - the handshake gate: every accepted socket waits here, outside
 * lws, until its HTTP request head has fully arrived, and only then is
 * handed to lws (which parses it again and upgrades or answers it).
 *
 * Why: lws 4.1.6 parses a request in a header table taken from a small
 * fixed pool per worker and holds it until the head is complete or its
 * timeout passes; a few hundred clients trickling their heads took the
 * whole pool and every other client (and /healthz) waited behind them
 * (gateway/NOTES.md). Here a waiting socket costs its descriptor and a
 * few dozen bytes: nothing is read until the head is complete (the bytes
 * are only peeked at), so there is no buffer per socket and no pool.
 *
 * Each socket's head must arrive within bounds (HSGATE_* below and
 * gateway.handshake_timeout_s) and pass the strict syntax checks of
 * hsgate_check(); otherwise it is answered with a status (400, 408, 414,
 * 431) and closed, and counted in hs_rejected_*. At most half the
 * worker's descriptor limit (RLIMIT_NOFILE) wait at once: beyond that the
 * one waiting longest is closed (hs_rejected_slow). Worker loop only.
 */
#ifndef WSP_HSGATE_H
#define WSP_HSGATE_H

#include <stddef.h>
#include <stdint.h>

#include <libwebsockets.h>

struct worker;

/* The request line and headers, up to and including the blank line. */
#define HSGATE_HEAD_MAX 12288
/* The request target ("/ws?token=..."): a whole token fits. */
#define HSGATE_URI_MAX 10240
/* Header lines, and ?a=&b= arguments (lws keeps each in one of its 95
 * fragment slots, and drops the connection when they run out). */
#define HSGATE_HEADERS_MAX 64
#define HSGATE_ARGS_MAX 16
/* From its first byte, a head must be complete within HEAD_MS, and after
 * RATE_GRACE_MS arrive at MIN_RATE bytes/s on average at least. The first
 * byte must come within gateway.handshake_timeout_s of the accept. */
#define HSGATE_HEAD_MS 3000
/* Arrivals (TCP segments, roughly) a head may come in: 408 beyond. */
#define HSGATE_PIECES_MAX 64
#define HSGATE_RATE_GRACE_MS 1000
#define HSGATE_MIN_RATE 64
/* A refused socket is read (and the bytes dropped) for this long after
 * its answer, so that closing it does not reset the connection before
 * the client has read the status. */
#define HSGATE_LINGER_MS 1000
#define HSGATE_LINGER_BYTES (256 * 1024)

/* What hsgate_check() makes of the bytes received so far. */
enum hsgate_verdict {
	HSGATE_MORE,   /* well-formed so far, head not complete */
	HSGATE_PASS,   /* a complete, well-formed head */
	HSGATE_REFUSE, /* answer status and close */
};

enum hsgate_reason {
	HSGATE_R_NONE,
	HSGATE_R_MALFORMED, /* 400 */
	HSGATE_R_TOO_LARGE, /* 414, 431 */
	HSGATE_R_SLOW,      /* 408, or closed without a byte */
};

struct hsgate_result {
	unsigned int status; /* HSGATE_REFUSE: the HTTP status */
	enum hsgate_reason reason;
	const char *why; /* a few words for the log and the body */
};

/*
 * Checks buf[0..len), the first bytes of a connection (len may exceed
 * HSGATE_HEAD_MAX by one, to tell "too large"). Strict HTTP/1.x:
 *  - request line "METHOD SP origin-form-target SP HTTP/1.1|HTTP/1.0 CRLF";
 *    target over HSGATE_URI_MAX: 414; raw bytes outside printable ASCII,
 *    a '%' not followed by two hex digits, or one that decodes to a
 *    control character (%00-%1F, %7F): 400; over HSGATE_ARGS_MAX '&'
 *    arguments: 400;
 *  - header lines "name: value CRLF": a token name, no whitespace before
 *    the colon, no control characters but HTAB in the value, no folded
 *    (continuation) lines, every line ending in CRLF: else 400; over
 *    HSGATE_HEADERS_MAX lines, or a head over HSGATE_HEAD_MAX bytes: 431;
 *  - a request with an Upgrade header: it must be GET over HTTP/1.1,
 *    name websocket and carry Connection: upgrade, else 400 (RFC 6455
 *    4.1; lws drops some of these without a status).
 * Lines are checked as they complete, so a bad one is refused without
 * waiting for the rest. Pure: no I/O, for unit tests.
 */
enum hsgate_verdict hsgate_check(
    const char *buf, size_t len, struct hsgate_result *out);

/* Takes a socket just accepted (non-blocking): held until its head is
 * complete, then lws_adopt_socket_vhost(); or refused and closed. */
void hsgate_accept(struct worker *w, int fd);

/* For the lws protocol callback: the gate's own raw descriptor (an epoll
 * set of the waiting sockets) is readable / was closed by lws. */
int hsgate_service(struct lws *wsi);
void hsgate_closed(struct lws *wsi);

/* Sockets waiting in the gate now. */
uint32_t hsgate_waiting(void);

#endif
