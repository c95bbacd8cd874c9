/*
 * http.h - the plain HTTP side of a worker's port: /healthz for the
 * balancer (200 when this worker is attached to the bridge, else 503),
 * the embedded client library (/wspush.js, /wspush.mjs, always) and, with
 * gateway.demo_page = on, the demo page (/). Everything else is 404.
 * Bodies are static; nothing is read from disk at run time.
 *
 * One request per connection ("Connection: close"): only a connection's
 * first request head passes the handshake gate (hsgate.h), so a kept-alive
 * connection could send its next head as slowly as it likes while lws
 * holds one of its few header tables for it.
 */
#ifndef WSP_HTTP_H
#define WSP_HTTP_H

#include <stddef.h>

#include <libwebsockets.h>

struct worker;
struct ws_pss;

/* LWS_CALLBACK_HTTP for path (without the query). Returns what the lws
 * callback must return. */
int http_request(
    struct worker *w, struct lws *wsi, struct ws_pss *pss, const char *path);

/* LWS_CALLBACK_HTTP_WRITEABLE: sends the next chunk of the body. */
int http_writeable(struct lws *wsi, struct ws_pss *pss);

/* An embedded file, generated at build time from gateway/web/. */
struct webfile {
	const char *path;  /* URL path: "/", "/wspush.js" ... */
	const char *ctype; /* Content-Type */
	const unsigned char *data;
	size_t len;
};
/* Terminated by an entry with path NULL. */
extern const struct webfile webfiles[];

#endif
