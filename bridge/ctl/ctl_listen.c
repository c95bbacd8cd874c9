/*
 * ctl_listen.c - `wspushctl listen URL`: connect as a WebSocket client
 * (libwebsockets) and print every message that arrives, one per line.
 *
 * For operators ("does user 42 get anything?") and tests. Text messages
 * are printed as they are; binary ones as "binary:<base64>". Messages
 * given with --send go out in order once the connection is open (e.g. a
 * subscribe). The close code and reason go to stderr.
 *
 * Exit: 0 when --count messages arrived, or without --count when the
 * server closed or --timeout passed; 1 when the connection failed or was
 * refused (the HTTP status is printed) or ended before --count; 2 on bad
 * usage.
 */
#include "ctl_listen.h"

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libwebsockets.h>

#include "ctl_common.h"

/* The largest message reassembled from fragments. */
#define CTL_LISTEN_MSG_MAX (64u * 1024 * 1024)
#define CTL_LISTEN_SEND_MAX 64

struct ctl_listener {
	const char *sends[CTL_LISTEN_SEND_MAX];
	int n_sends, sent;
	const char *token; /* Authorization: Bearer, or NULL */
	long count;        /* stop after this many; 0: no limit */
	long got;
	unsigned char *msg; /* the message being reassembled */
	size_t len, cap;
	bool binary;
	bool done, failed;
	bool timed_out;
	lws_sorted_usec_list_t timeout_sul;
	struct lws_context *ctx;
};

/* lws 4.1 ignores lws_service()'s timeout: a timer is what wakes the loop
 * when nothing arrives. It runs before lws polls again, so the poll must
 * be cancelled for lws_service() to return. */
static void
ctl_listen_timeout_cb(lws_sorted_usec_list_t *sul)
{
	struct ctl_listener *ls =
	    lws_container_of(sul, struct ctl_listener, timeout_sul);

	ls->timed_out = true;
	lws_cancel_service(ls->ctx);
}

static void
ctl_listen_print(struct ctl_listener *ls)
{
	if (!ls->binary) {
		fwrite(ls->msg, 1, ls->len, stdout);
	} else {
		size_t olen = 4 * ((ls->len + 2) / 3) + 1;
		char *b64 = malloc(olen);

		if (b64 == NULL || lws_b64_encode_string((const char *)ls->msg,
				       (int)ls->len, b64, (int)olen) < 0)
			printf("binary:<%zu bytes>", ls->len);
		else
			printf("binary:%s", b64);
		free(b64);
	}
	putchar('\n');
	fflush(stdout);
}

/* Appends one fragment; prints the message once it is complete. */
static int
ctl_listen_receive(
    struct lws *wsi, struct ctl_listener *ls, const void *in, size_t len)
{
	if (lws_is_first_fragment(wsi)) {
		ls->len = 0;
		ls->binary = lws_frame_is_binary(wsi);
	}
	if (ls->len + len > CTL_LISTEN_MSG_MAX) {
		fprintf(stderr, CTL_PROG ": listen: message over %u bytes\n",
		    CTL_LISTEN_MSG_MAX);
		ls->failed = ls->done = true;
		return -1;
	}
	if (ls->len + len > ls->cap) {
		size_t cap = ls->cap ? ls->cap : 4096;
		unsigned char *p;

		while (cap < ls->len + len)
			cap *= 2;
		if ((p = realloc(ls->msg, cap)) == NULL) {
			fprintf(stderr, CTL_PROG ": listen: out of memory\n");
			ls->failed = ls->done = true;
			return -1;
		}
		ls->msg = p;
		ls->cap = cap;
	}
	memcpy(ls->msg + ls->len, in, len);
	ls->len += len;
	if (!lws_is_final_fragment(wsi))
		return 0;
	ctl_listen_print(ls);
	if (ls->count > 0 && ++ls->got >= ls->count) {
		ls->done = true;
		return -1; /* close: we have what we came for */
	}
	return 0;
}

static int
ctl_listen_writeable(struct lws *wsi, struct ctl_listener *ls)
{
	const char *s = ls->sends[ls->sent];
	size_t n = strlen(s);
	unsigned char *buf = malloc(LWS_PRE + n);
	int rv;

	if (buf == NULL)
		return -1;
	memcpy(buf + LWS_PRE, s, n);
	rv = lws_write(wsi, buf + LWS_PRE, n, LWS_WRITE_TEXT);
	free(buf);
	if (rv < (int)n)
		return -1;
	if (++ls->sent < ls->n_sends)
		lws_callback_on_writable(wsi);
	return 0;
}

static int
ctl_listen_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user,
    void *in, size_t len)
{
	struct ctl_listener *ls = lws_context_user(lws_get_context(wsi));
	unsigned char **p, *end;

	(void)user;
	switch (reason) {
	case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER:
		if (ls->token == NULL)
			break;
		p = (unsigned char **)in;
		end = *p + len;
		{
			char v[4096];
			int n = snprintf(v, sizeof(v), "Bearer %s", ls->token);

			if (n < 0 || (size_t)n >= sizeof(v) ||
			    lws_add_http_header_by_token(wsi,
				WSI_TOKEN_HTTP_AUTHORIZATION,
				(unsigned char *)v, n, p, end))
				return -1;
		}
		break;
	case LWS_CALLBACK_CLIENT_CONNECTION_ERROR: {
		unsigned int status = lws_http_client_http_response(wsi);

		if (status != 0)
			fprintf(stderr,
			    CTL_PROG ": listen: refused: HTTP %u (%s)\n",
			    status, in ? (const char *)in : "");
		else
			fprintf(stderr, CTL_PROG ": listen: %s\n",
			    in ? (const char *)in : "connection failed");
		ls->failed = ls->done = true;
		break;
	}
	case LWS_CALLBACK_CLIENT_ESTABLISHED:
		if (ls->n_sends > 0)
			lws_callback_on_writable(wsi);
		break;
	case LWS_CALLBACK_CLIENT_WRITEABLE:
		if (ls->sent < ls->n_sends)
			return ctl_listen_writeable(wsi, ls);
		break;
	case LWS_CALLBACK_CLIENT_RECEIVE:
		return ctl_listen_receive(wsi, ls, in, len);
	case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE: {
		const unsigned char *b = in;

		if (len >= 2)
			fprintf(stderr, CTL_PROG ": listen: closed: %u %.*s\n",
			    (unsigned)(b[0] << 8 | b[1]), (int)(len - 2),
			    (const char *)b + 2);
		else
			fprintf(stderr, CTL_PROG ": listen: closed\n");
		break;
	}
	case LWS_CALLBACK_CLIENT_CLOSED:
		if (ls->count > 0 && ls->got < ls->count)
			ls->failed = true;
		ls->done = true;
		break;
	default:
		break;
	}
	return 0;
}

const char ctl_listen_usage[] =
    "listen URL [--send TEXT]... [--count N] [--timeout S] [--origin O]\n"
    "                 [--token T]\n"
    "                 connect to ws://HOST:PORT/PATH?QUERY as a client, "
    "send the\n"
    "                 --send messages, print every message that arrives\n";

struct ctl_listen_args {
	const char *url, *origin;
	double timeout_s;
	/* What lws is given to connect, kept for the connection's life. */
	char *parsed; /* a copy of url, cut up by lws_parse_uri() */
	char path[4096];
};

/* Returns 0, or an exit status after printing why. */
static int
ctl_listen_parse(
    int argc, char **argv, struct ctl_listen_args *a, struct ctl_listener *ls)
{
	static const struct option opts[] = {
	    {"send", required_argument, NULL, 's'},
	    {"count", required_argument, NULL, 'n'},
	    {"timeout", required_argument, NULL, 't'},
	    {"origin", required_argument, NULL, 'o'},
	    {"token", required_argument, NULL, 'k'},
	    {NULL, 0, NULL, 0},
	};
	char *end;
	int o;

	memset(a, 0, sizeof(*a));
	optind = 1;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 's':
			if (ls->n_sends == CTL_LISTEN_SEND_MAX)
				return ctl_common_usage(ctl_listen_usage);
			ls->sends[ls->n_sends++] = optarg;
			break;
		case 'n':
			ls->count = strtol(optarg, &end, 10);
			if (*end != '\0' || ls->count <= 0)
				return ctl_common_usage(ctl_listen_usage);
			break;
		case 't':
			a->timeout_s = strtod(optarg, &end);
			if (*end != '\0' || !(a->timeout_s > 0))
				return ctl_common_usage(ctl_listen_usage);
			break;
		case 'o':
			a->origin = optarg;
			break;
		case 'k':
			ls->token = optarg;
			break;
		default:
			return ctl_common_usage(ctl_listen_usage);
		}
	}
	if (optind != argc - 1)
		return ctl_common_usage(ctl_listen_usage);
	a->url = argv[optind];
	return 0;
}

/*
 * Creates the lws context and starts the connection to a->url. Returns the
 * context, or NULL with *rc set after printing why.
 */
static struct lws_context *
ctl_listen_connect(struct ctl_listen_args *a, struct ctl_listener *ls,
    const struct lws_protocols *protocols, int *rc)
{
	struct lws_context_creation_info info;
	struct lws_client_connect_info ci;
	struct lws_context *ctx;
	const char *scheme, *host, *path;
	int port;

	/* lws_parse_uri() cuts its argument up in place. */
	if ((a->parsed = strdup(a->url)) == NULL) {
		*rc = CTL_EXIT_FAIL;
		return NULL;
	}
	if (lws_parse_uri(a->parsed, &scheme, &host, &port, &path) != 0 ||
	    (strcmp(scheme, "ws") != 0 && strcmp(scheme, "wss") != 0) ||
	    host[0] == '\0') {
		fprintf(stderr, CTL_PROG ": listen: bad URL \"%s\"\n", a->url);
		*rc = CTL_EXIT_USAGE;
		return NULL;
	}
	/* It also drops the path's leading '/'. */
	snprintf(a->path, sizeof(a->path), "/%s", path);

	lws_set_log_level(LLL_ERR, NULL);
	memset(&info, 0, sizeof(info));
	info.port = CONTEXT_PORT_NO_LISTEN;
	info.protocols = protocols;
	info.user = ls;
	info.gid = -1;
	info.uid = -1;
	if (strcmp(scheme, "wss") == 0)
		info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
	if ((ctx = lws_create_context(&info)) == NULL) {
		fprintf(
		    stderr, CTL_PROG ": listen: lws_create_context failed\n");
		*rc = CTL_EXIT_FAIL;
		return NULL;
	}
	memset(&ci, 0, sizeof(ci));
	ci.context = ctx;
	ci.address = host;
	ci.port = port;
	ci.path = a->path;
	ci.host = host;
	ci.origin = a->origin;
	ci.protocol = NULL; /* wspush speaks no subprotocol */
	ci.local_protocol_name = protocols[0].name;
	if (strcmp(scheme, "wss") == 0)
		ci.ssl_connection = LCCSCF_USE_SSL;
	if (lws_client_connect_via_info(&ci) == NULL) {
		fprintf(stderr, CTL_PROG ": listen: cannot connect to %s:%d\n",
		    host, port);
		ls->failed = true;
		ls->done = true;
	}
	return ctx;
}

int
ctl_listen(int argc, char **argv)
{
	struct lws_protocols protocols[] = {
	    {"wspushctl-listen", ctl_listen_cb, 0, 0, 0, NULL, 0},
	    {NULL, NULL, 0, 0, 0, NULL, 0},
	};
	struct ctl_listener ls = {0};
	struct ctl_listen_args a;
	struct lws_context *ctx;
	int rc;

	if ((rc = ctl_listen_parse(argc, argv, &a, &ls)) != 0)
		return rc;
	if ((ctx = ctl_listen_connect(&a, &ls, protocols, &rc)) == NULL) {
		free(a.parsed);
		return rc;
	}
	ls.ctx = ctx;
	if (a.timeout_s > 0)
		lws_sul_schedule(ctx, 0, &ls.timeout_sul, ctl_listen_timeout_cb,
		    (lws_usec_t)(a.timeout_s * LWS_US_PER_SEC));
	while (!ls.done && !ls.timed_out)
		if (lws_service(ctx, 0) < 0)
			break;
	if (ls.timed_out && !ls.done && ls.count > 0) {
		fprintf(stderr,
		    CTL_PROG ": listen: %ld of %ld messages within %g s\n",
		    ls.got, ls.count, a.timeout_s);
		ls.failed = true;
	}
	lws_context_destroy(ctx);
	free(a.parsed);
	free(ls.msg);
	return ls.failed ? CTL_EXIT_FAIL : CTL_EXIT_OK;
}
