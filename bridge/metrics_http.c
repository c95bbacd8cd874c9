/*
 * metrics_http.c - /metrics and /healthz on nng's HTTP server (see
 * metrics_http.h). Everything but open/publish/close runs on nng threads.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/supplemental/http/http.h>

#include "metrics_http.h"

#define METRICS_HTTP_BODY_MAX 256

struct metrics_http {
	nng_http_server *server;
	pthread_mutex_t mu;
	char *metrics; /* {mu} malloc'ed text; NULL until published */
	size_t metrics_len;
	uint16_t health_status;                  /* {mu} */
	char health_body[METRICS_HTTP_BODY_MAX]; /* {mu} */
};

static void
metrics_http_reply(nng_aio *aio, uint16_t status, const char *ctype,
    const void *body, size_t len)
{
	nng_http_res *res;

	if (nng_http_res_alloc(&res) != 0) {
		nng_aio_finish(aio, NNG_ENOMEM);
		return;
	}
	if (nng_http_res_set_status(res, status) != 0 ||
	    nng_http_res_set_header(res, "Content-Type", ctype) != 0 ||
	    nng_http_res_set_header(res, "Cache-Control", "no-store") != 0 ||
	    nng_http_res_copy_data(res, body, len) != 0) {
		nng_http_res_free(res);
		nng_aio_finish(aio, NNG_ENOMEM);
		return;
	}
	nng_aio_set_output(aio, 0, res);
	nng_aio_finish(aio, 0);
}

static struct metrics_http *
metrics_http_of(nng_aio *aio)
{
	return nng_http_handler_get_data(nng_aio_get_input(aio, 1));
}

static void
metrics_http_metrics_cb(nng_aio *aio)
{
	struct metrics_http *h = metrics_http_of(aio);

	pthread_mutex_lock(&h->mu);
	if (h->metrics == NULL)
		metrics_http_reply(
		    aio, 503, "text/plain; charset=utf-8", "starting\n", 9);
	else
		metrics_http_reply(aio, 200,
		    "text/plain; version=0.0.4; charset=utf-8", h->metrics,
		    h->metrics_len);
	pthread_mutex_unlock(&h->mu);
}

static void
metrics_http_healthz_cb(nng_aio *aio)
{
	struct metrics_http *h = metrics_http_of(aio);
	char body[METRICS_HTTP_BODY_MAX];
	uint16_t status;

	pthread_mutex_lock(&h->mu);
	status = h->health_status;
	memcpy(body, h->health_body, sizeof(body));
	pthread_mutex_unlock(&h->mu);
	metrics_http_reply(
	    aio, status, "text/plain; charset=utf-8", body, strlen(body));
}

/* Adds a GET handler for path; the server owns it on success. */
static int
metrics_http_route(
    struct metrics_http *h, const char *path, void (*cb)(nng_aio *))
{
	nng_http_handler *hd;
	int rv;

	if ((rv = nng_http_handler_alloc(&hd, path, cb)) != 0)
		return rv;
	if ((rv = nng_http_handler_set_data(hd, h, NULL)) != 0 ||
	    (rv = nng_http_server_add_handler(h->server, hd)) != 0)
		nng_http_handler_free(hd);
	return rv;
}

static int
metrics_http_start(
    struct metrics_http *h, const char *url, char *err, size_t errlen)
{
	nng_url *u = NULL;
	const char *what;
	int rv;

	if ((rv = nng_url_parse(&u, url)) != 0) {
		what = "nng_url_parse";
		goto fail;
	}
	if ((rv = nng_http_server_hold(&h->server, u)) != 0) {
		what = "nng_http_server_hold";
		h->server = NULL;
		goto fail;
	}
	what = "nng_http_handler";
	if ((rv = metrics_http_route(h, "/metrics", metrics_http_metrics_cb)) !=
		0 ||
	    (rv = metrics_http_route(h, "/healthz", metrics_http_healthz_cb)) !=
		0)
		goto fail;
	if ((rv = nng_http_server_start(h->server)) != 0) {
		what = "nng_http_server_start";
		goto fail;
	}
	nng_url_free(u);
	return 0;
fail:
	snprintf(err, errlen, "metrics_listen %s: %s: %s", url, what,
	    nng_strerror(rv));
	if (u != NULL)
		nng_url_free(u);
	return -1;
}

struct metrics_http *
metrics_http_open(const struct conf_hostport *hp, char *err, size_t errlen)
{
	struct metrics_http *h = calloc(1, sizeof(*h));
	char url[300];

	if (h == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&h->mu, NULL);
	h->health_status = 503;
	snprintf(h->health_body, sizeof(h->health_body), "starting\n");
	snprintf(url, sizeof(url),
	    strchr(hp->host, ':') != NULL ? "http://[%s]:%u" : "http://%s:%u",
	    hp->host, (unsigned)hp->port);
	if (metrics_http_start(h, url, err, errlen) == -1) {
		metrics_http_close(h);
		return NULL;
	}
	return h;
}

void
metrics_http_publish(struct metrics_http *h, char *metrics, size_t len,
    uint16_t health_status, const char *health_body)
{
	pthread_mutex_lock(&h->mu);
	if (metrics != NULL) {
		free(h->metrics);
		h->metrics = metrics;
		h->metrics_len = len;
	}
	h->health_status = health_status;
	snprintf(h->health_body, sizeof(h->health_body), "%s", health_body);
	pthread_mutex_unlock(&h->mu);
}

void
metrics_http_close(struct metrics_http *h)
{
	if (h == NULL)
		return;
	if (h->server != NULL) {
		/* Waits for running handlers; none start after it. */
		nng_http_server_stop(h->server);
		nng_http_server_release(h->server);
	}
	free(h->metrics);
	pthread_mutex_destroy(&h->mu);
	free(h);
}
