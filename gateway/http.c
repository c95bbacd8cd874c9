/*
 * http.c - /healthz and the embedded client files (see http.h), written
 * with the lws pattern: headers from LWS_CALLBACK_HTTP, the body in
 * LWS_PRE-prefixed chunks from LWS_CALLBACK_HTTP_WRITEABLE.
 */
#include "http.h"

#include <string.h>

#include "busrx.h"
#include "clock.h"
#include "log.h"
#include "worker.h"
#include "ws.h"

#define HTTP_CHUNK 4096

static const char http_ok[] = "ok\n";
static const char http_unattached[] = "not attached to the bridge\n";
static const char http_upgrade[] = "websocket upgrade expected\n";

static const struct webfile *
webfile_find(const char *path)
{
	const struct webfile *f;

	for (f = webfiles; f->path != NULL; f++)
		if (strcmp(f->path, path) == 0)
			return f;
	return NULL;
}

/* Writes the status line and headers and arms the body. */
static int
respond(struct lws *wsi, struct ws_pss *pss, unsigned int status,
    const char *ctype, const void *body, size_t len)
{
	unsigned char buf[LWS_PRE + 512], *start = buf + LWS_PRE, *p = start,
					  *end = buf + sizeof(buf) - 1;
	static const char nocache[] = "no-cache", close[] = "close";

	if (lws_add_http_common_headers(wsi, status, ctype, len, &p, end) ||
	    lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CACHE_CONTROL,
		(const unsigned char *)nocache, (int)sizeof(nocache) - 1, &p,
		end) ||
	    lws_add_http_header_by_token(wsi, WSI_TOKEN_CONNECTION,
		(const unsigned char *)close, (int)sizeof(close) - 1, &p,
		end) ||
	    lws_finalize_write_http_header(wsi, start, &p, end))
		return 1;
	pss->body = body;
	pss->body_len = len;
	pss->body_sent = 0;
	if (len == 0)
		return -1; /* one request per connection (http.h) */
	lws_callback_on_writable(wsi);
	return 0;
}

int
http_request(
    struct worker *w, struct lws *wsi, struct ws_pss *pss, const char *path)
{
	const struct webfile *f;

	if (strcmp(path, "/healthz") == 0) {
		if (busrx_attached(w->bus, clock_mono_ms()))
			return respond(wsi, pss, HTTP_STATUS_OK, "text/plain",
			    http_ok, sizeof(http_ok) - 1);
		return respond(wsi, pss, HTTP_STATUS_SERVICE_UNAVAILABLE,
		    "text/plain", http_unattached, sizeof(http_unattached) - 1);
	}
	if (strcmp(path, w->conf->path) == 0) {
		/* The WebSocket path without an upgrade lws accepts. */
		w->c.hs_rejected_malformed++;
		return respond(wsi, pss, HTTP_STATUS_BAD_REQUEST, "text/plain",
		    http_upgrade, sizeof(http_upgrade) - 1);
	}
	/* The client library is always served (apps load it from the
	 * gateway); the demo page only with gateway.demo_page = on. */
	if ((f = webfile_find(path)) != NULL &&
	    (w->conf->demo_page || strncmp(path, "/wspush.", 8) == 0))
		return respond(
		    wsi, pss, HTTP_STATUS_OK, f->ctype, f->data, f->len);
	(void)lws_return_http_status(wsi, HTTP_STATUS_NOT_FOUND, NULL);
	return -1; /* one request per connection (http.h) */
}

int
http_writeable(struct lws *wsi, struct ws_pss *pss)
{
	unsigned char buf[LWS_PRE + HTTP_CHUNK];
	size_t n;
	int final;

	if (pss->body == NULL)
		return 0;
	n = pss->body_len - pss->body_sent;
	if (n > HTTP_CHUNK)
		n = HTTP_CHUNK;
	final = pss->body_sent + n == pss->body_len;
	memcpy(buf + LWS_PRE, pss->body + pss->body_sent, n);
	if (lws_write(wsi, buf + LWS_PRE, n,
		final ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) != (int)n)
		return -1;
	pss->body_sent += n;
	if (!final) {
		lws_callback_on_writable(wsi);
		return 0;
	}
	pss->body = NULL;
	/* Closed once written (lws flushes what it still holds first): one
	 * request per connection (http.h). */
	return -1;
}
