/*
 * hsgate.c - the handshake gate (see hsgate.h): accepted sockets in an
 * epoll set of their own (one raw descriptor in the lws loop), their first
 * bytes peeked at until the request head is complete and checked, their
 * deadlines on one timer; then handed to lws, or answered and closed.
 */
#include "hsgate.h"

#include <errno.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "dlist.h"
#include "log.h"
#include "worker.h"

/* Deadlines are checked this often (the cut is up to this late). */
#define HSGATE_TICK_MS 200
/* Events taken per epoll_wait(), and rounds per wakeup: the rest waits
 * for the next loop pass (the set stays readable), fair to the others. */
#define HSGATE_EVENTS 64
#define HSGATE_ROUNDS 4
#define HSGATE_METHOD_MAX 16
/* Refusals are logged at most once per this interval, with a count of
 * the ones held back: a flood of bad handshakes is not a flood of lines. */
#define HSGATE_LOG_MS 1000

/* One socket waiting in the gate. */
struct hsg_conn {
	struct dlist_node node;
	int fd;
	bool lingering;        /* refused: answered, its input dropped */
	uint32_t seen;         /* bytes of the head received so far */
	uint32_t pieces;       /* arrivals so far (each one is peeked) */
	uint64_t accepted_ms;  /* clock_mono_ms() */
	uint64_t first_ms;     /* the first byte; 0: none yet */
	uint64_t linger_until; /* lingering: closed by then at the latest */
	uint32_t dropped;      /* lingering: bytes read and dropped */
};

/* A worker is one process with one loop: one gate. */
static struct hsgate {
	struct worker *w;
	int epfd;
	struct lws *wsi; /* the epoll descriptor, adopted as a raw file */
	struct dlist conns;
	uint32_t n;
	bool tick_armed;
	lws_sorted_usec_list_t tick;
	struct log_limit log;
	bool broken; /* no epoll set: sockets go straight to lws */
} hsg = {.epfd = -1};

/* Peeked heads land here (the worker is single-threaded). */
static char hsg_peek[HSGATE_HEAD_MAX + 1];

/* ---- the head check (pure) ---- */

static enum hsgate_verdict
refuse(struct hsgate_result *out, unsigned int status,
    enum hsgate_reason reason, const char *why)
{
	out->status = status;
	out->reason = reason;
	out->why = why;
	return HSGATE_REFUSE;
}

static bool
is_tchar(unsigned char c)
{
	/* RFC 9110 5.6.2 token characters. */
	if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
	    (c >= 'A' && c <= 'Z'))
		return true;
	return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int
hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Bytes of a line still arriving: printable ASCII, SP, HTAB, obs-text. */
static bool
partial_ok(const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((p[i] < 0x20 && p[i] != '\t' && p[i] != '\r') ||
		    p[i] == 0x7f)
			return false;
	return true;
}

/* The request target: origin-form, printable, escapes that decode to no
 * control character (an id or token with one is invalid anyway, and lws
 * would cut the value there or drop the connection). */
static enum hsgate_verdict
check_target(const unsigned char *t, size_t n, struct hsgate_result *out)
{
	size_t args = 0;
	bool query = false;

	if (n > HSGATE_URI_MAX)
		return refuse(out, 414, HSGATE_R_TOO_LARGE, "URI too long");
	if (n == 0 || t[0] != '/')
		return refuse(out, 400, HSGATE_R_MALFORMED, "bad target");
	for (size_t i = 0; i < n; i++) {
		if (t[i] <= 0x20 || t[i] >= 0x7f)
			return refuse(
			    out, 400, HSGATE_R_MALFORMED, "bad target byte");
		if (t[i] == '%') {
			int hi, lo;

			if (i + 2 >= n)
				return refuse(
				    out, 400, HSGATE_R_MALFORMED, "bad escape");
			hi = hexval(t[i + 1]);
			lo = hexval(t[i + 2]);
			if (hi < 0 || lo < 0)
				return refuse(
				    out, 400, HSGATE_R_MALFORMED, "bad escape");
			if (hi * 16 + lo < 0x20 || hi * 16 + lo == 0x7f)
				return refuse(out, 400, HSGATE_R_MALFORMED,
				    "control character in target");
			i += 2;
		} else if (t[i] == '?' && !query) {
			query = true;
			args = 1;
		} else if (t[i] == '&' && query) {
			args++;
		}
	}
	if (args > HSGATE_ARGS_MAX)
		return refuse(
		    out, 400, HSGATE_R_MALFORMED, "too many arguments");
	return HSGATE_PASS;
}

/* What the head says about an upgrade, gathered line by line. */
struct hsg_head {
	bool http10, get;
	bool upgrade;      /* an Upgrade header */
	bool upgrade_ws;   /* ... naming websocket */
	bool conn_upgrade; /* a Connection header with the upgrade token */
};

/* True if l[0..n) contains word, case-insensitively. */
static bool
has_word(const unsigned char *l, size_t n, const char *word)
{
	size_t w = strlen(word);

	for (size_t i = 0; i + w <= n; i++)
		if (strncasecmp((const char *)l + i, word, w) == 0)
			return true;
	return false;
}

/* A complete request line, CRLF stripped. */
static enum hsgate_verdict
check_request_line(const unsigned char *l, size_t n, struct hsg_head *hd,
    struct hsgate_result *out)
{
	size_t m = 0, t0, t1;
	enum hsgate_verdict v;

	while (m < n && m <= HSGATE_METHOD_MAX && is_tchar(l[m]))
		m++;
	if (m == 0 || m > HSGATE_METHOD_MAX || m >= n || l[m] != ' ')
		return refuse(out, 400, HSGATE_R_MALFORMED, "bad method");
	t0 = m + 1;
	t1 = t0;
	while (t1 < n && l[t1] != ' ')
		t1++;
	v = check_target(l + t0, t1 - t0, out);
	if (v != HSGATE_PASS)
		return v;
	if (n - t1 != 9 || memcmp(l + t1, " HTTP/1.", 8) != 0 ||
	    (l[n - 1] != '1' && l[n - 1] != '0'))
		return refuse(out, 400, HSGATE_R_MALFORMED, "bad version");
	hd->http10 = l[n - 1] == '0';
	hd->get = m == 3 && memcmp(l, "GET", 3) == 0;
	return HSGATE_PASS;
}

/* A complete header line, CRLF stripped. */
static enum hsgate_verdict
check_header_line(const unsigned char *l, size_t n, struct hsg_head *hd,
    struct hsgate_result *out)
{
	size_t m = 0, v0, v1;

	if (l[0] == ' ' || l[0] == '\t')
		return refuse(out, 400, HSGATE_R_MALFORMED, "folded header");
	while (m < n && is_tchar(l[m]))
		m++;
	if (m == 0 || m == n || l[m] != ':')
		return refuse(out, 400, HSGATE_R_MALFORMED, "bad header name");
	for (size_t i = m + 1; i < n; i++)
		if ((l[i] < 0x20 && l[i] != '\t') || l[i] == 0x7f)
			return refuse(out, 400, HSGATE_R_MALFORMED,
			    "control character in header");
	v0 = m + 1;
	v1 = n;
	while (v0 < v1 && (l[v0] == ' ' || l[v0] == '\t'))
		v0++;
	while (v1 > v0 && (l[v1 - 1] == ' ' || l[v1 - 1] == '\t'))
		v1--;
	if (m == 7 && strncasecmp((const char *)l, "upgrade", 7) == 0) {
		hd->upgrade = true;
		hd->upgrade_ws =
		    v1 - v0 == 9 &&
		    strncasecmp((const char *)l + v0, "websocket", 9) == 0;
	} else if (m == 10 &&
		   strncasecmp((const char *)l, "connection", 10) == 0 &&
		   has_word(l + v0, v1 - v0, "upgrade")) {
		hd->conn_upgrade = true;
	}
	return HSGATE_PASS;
}

enum hsgate_verdict
hsgate_check(const char *buf, size_t len, struct hsgate_result *out)
{
	const unsigned char *b = (const unsigned char *)buf, *p = b, *nl;
	size_t lim = len > HSGATE_HEAD_MAX ? HSGATE_HEAD_MAX : len, left;
	struct hsg_head hd = {0};
	bool first = true;
	unsigned int headers = 0;
	enum hsgate_verdict v;

	memset(out, 0, sizeof(*out));
	for (;;) {
		left = lim - (size_t)(p - b);
		nl = memchr(p, '\n', left);
		if (nl == NULL) {
			/* A line still arriving: refuse what is already
			 * wrong, without waiting for its end. */
			if (!partial_ok(p, left))
				return refuse(out, 400, HSGATE_R_MALFORMED,
				    "control character");
			if (first && left > HSGATE_URI_MAX + 32)
				return refuse(out, 414, HSGATE_R_TOO_LARGE,
				    "URI too long");
			if (!first && left > 0 && (p[0] == ' ' || p[0] == '\t'))
				return refuse(out, 400, HSGATE_R_MALFORMED,
				    "folded header");
			if (len > HSGATE_HEAD_MAX)
				return refuse(out, 431, HSGATE_R_TOO_LARGE,
				    "request header too large");
			return HSGATE_MORE;
		}
		if (nl == p || nl[-1] != '\r')
			return refuse(out, 400, HSGATE_R_MALFORMED, "bare LF");
		if (first) {
			v = check_request_line(
			    p, (size_t)(nl - 1 - p), &hd, out);
			first = false;
		} else if (nl - 1 == p) {
			/* The blank line: the head is complete. An
			 * upgrade lws would half-take (no Connection:
			 * upgrade: dropped without a status) or refuse
			 * in its own way is refused here. */
			if (!hd.upgrade)
				return HSGATE_PASS;
			if (hd.http10)
				return refuse(out, 400, HSGATE_R_MALFORMED,
				    "upgrade needs HTTP/1.1");
			if (!hd.upgrade_ws || !hd.get || !hd.conn_upgrade)
				return refuse(out, 400, HSGATE_R_MALFORMED,
				    "not a websocket upgrade");
			return HSGATE_PASS;
		} else if (++headers > HSGATE_HEADERS_MAX) {
			return refuse(
			    out, 431, HSGATE_R_TOO_LARGE, "too many headers");
		} else {
			v = check_header_line(
			    p, (size_t)(nl - 1 - p), &hd, out);
		}
		if (v != HSGATE_PASS)
			return v;
		p = nl + 1;
	}
}

/* ---- sockets ---- */

static const char *
status_text(unsigned int status)
{
	switch (status) {
	case 400:
		return "Bad Request";
	case 408:
		return "Request Timeout";
	case 414:
		return "URI Too Long";
	case 431:
		return "Request Header Fields Too Large";
	default:
		return "Error";
	}
}

static void
hsg_count(enum hsgate_reason r)
{
	struct worker *w = hsg.w;

	switch (r) {
	case HSGATE_R_MALFORMED:
		w->c.hs_rejected_malformed++;
		break;
	case HSGATE_R_TOO_LARGE:
		w->c.hs_rejected_too_large++;
		break;
	case HSGATE_R_SLOW:
		w->c.hs_rejected_slow++;
		break;
	case HSGATE_R_NONE:
		break;
	}
}

static void
hsg_log(int fd, unsigned int status, const char *why)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char peer[64] = "?";
	uint64_t held;

	if (!log_limit_pass(&hsg.log, clock_mono_ms(), HSGATE_LOG_MS, &held))
		return;
	if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0)
		(void)getnameinfo((struct sockaddr *)&ss, sl, peer,
		    sizeof(peer), NULL, 0, NI_NUMERICHOST);
	if (held > 0)
		log_info("handshake refused: %u %s peer=%s (and %llu more "
			 "refusals since the last line)",
		    status, why, peer, (unsigned long long)held);
	else
		log_info("handshake refused: %u %s peer=%s", status, why, peer);
}

static void
hsg_free(struct hsg_conn *hc)
{
	/* close() also takes the descriptor out of the epoll set. */
	close(hc->fd);
	dlist_remove(&hc->node);
	hsg.n--;
	free(hc);
}

/* Reads and drops what the client sent; false at EOF, error or limit. */
static bool
hsg_drain(struct hsg_conn *hc)
{
	ssize_t r;

	for (;;) {
		r = recv(hc->fd, hsg_peek, sizeof(hsg_peek), MSG_DONTWAIT);
		if (r > 0) {
			hc->dropped += (uint32_t)r;
			if (hc->dropped > HSGATE_LINGER_BYTES)
				return false;
			continue;
		}
		return r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK ||
				    errno == EINTR);
	}
}

/* Answers status, then lingers (or closes at once if it cannot). */
static void
hsg_refuse(struct hsg_conn *hc, const struct hsgate_result *res)
{
	char msg[256];
	int n;

	hsg_count(res->reason);
	hsg_log(hc->fd, res->status, res->why);
	if (!hsg_drain(hc)) {
		hsg_free(hc);
		return;
	}
	n = snprintf(msg, sizeof(msg),
	    "HTTP/1.1 %u %s\r\nContent-Type: text/plain\r\n"
	    "Content-Length: %zu\r\nConnection: close\r\n\r\n%s\n",
	    res->status, status_text(res->status), strlen(res->why) + 1,
	    res->why);
	/* A few hundred bytes into an empty send buffer: one send(). */
	if (send(hc->fd, msg, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL) != n ||
	    shutdown(hc->fd, SHUT_WR) == -1) {
		hsg_free(hc);
		return;
	}
	hc->lingering = true;
	hc->linger_until = clock_mono_ms() + HSGATE_LINGER_MS;
}

/* Complete and well-formed: lws takes it from here. */
static void
hsg_pass(struct hsg_conn *hc)
{
	struct worker *w = hsg.w;
	int fd = hc->fd;

	epoll_ctl(hsg.epfd, EPOLL_CTL_DEL, fd, NULL);
	dlist_remove(&hc->node);
	hsg.n--;
	free(hc);
	/* On failure lws closes fd itself. */
	if (lws_adopt_socket_vhost(w->vh, fd) == NULL)
		log_warnx("lws_adopt_socket_vhost failed: connection dropped "
			  "(fd limit?)");
}

/* New bytes (or EOF: gone in events) on a waiting socket. */
static void
hsg_readable(struct hsg_conn *hc, uint32_t events)
{
	struct hsgate_result res;
	ssize_t r;

	if (hc->lingering) {
		if (!hsg_drain(hc))
			hsg_free(hc);
		return;
	}
	r = recv(hc->fd, hsg_peek, sizeof(hsg_peek), MSG_PEEK | MSG_DONTWAIT);
	if (r < 0) {
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			hsg_free(hc);
		return;
	}
	if (r == 0) {
		/* Gone before its head was complete: nothing to answer. */
		hsg_free(hc);
		return;
	}
	if (hc->first_ms == 0)
		hc->first_ms = clock_mono_ms();
	hc->seen = (uint32_t)r;
	switch (hsgate_check(hsg_peek, (size_t)r, &res)) {
	case HSGATE_PASS:
		hsg_pass(hc);
		break;
	case HSGATE_REFUSE:
		hsg_refuse(hc, &res);
		break;
	case HSGATE_MORE:
		/* The peer has stopped sending: the head will never be
		 * complete (the bytes it sent are still unread, so recv()
		 * never says EOF here). */
		if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
			hsg_free(hc);
		} else if (++hc->pieces > HSGATE_PIECES_MAX) {
			/* Each arrival re-reads the whole head so far: a head
			 * sent in thousands of tiny pieces costs quadratic
			 * time, and no real client sends one that way. */
			res.status = 408;
			res.reason = HSGATE_R_SLOW;
			res.why = "request in too many pieces";
			hsg_refuse(hc, &res);
		}
		break;
	}
}

static void hsg_tick(lws_sorted_usec_list_t *sul);

static void
hsg_arm(void)
{
	if (hsg.tick_armed || hsg.w->ctx == NULL)
		return;
	hsg.tick_armed = true;
	lws_sul_schedule(
	    hsg.w->ctx, 0, &hsg.tick, hsg_tick, HSGATE_TICK_MS * LWS_US_PER_MS);
}

/* Why hc is out of time at now, or NULL. */
static const char *
hsg_late(const struct hsg_conn *hc, uint64_t now)
{
	uint64_t total = (uint64_t)hsg.w->conf->handshake_timeout_s * 1000,
		 since;

	if (now - hc->accepted_ms >= total)
		return hc->first_ms == 0 ? "no request" : "request too slow";
	if (hc->first_ms == 0)
		return NULL;
	since = now - hc->first_ms;
	if (since >= HSGATE_HEAD_MS)
		return "request too slow";
	if (since >= HSGATE_RATE_GRACE_MS &&
	    (uint64_t)hc->seen * 1000 < HSGATE_MIN_RATE * since)
		return "request too slow";
	return NULL;
}

static void
hsg_tick(lws_sorted_usec_list_t *sul)
{
	struct dlist_node *n, *tmp;
	uint64_t now = clock_mono_ms();
	const char *why;

	(void)sul;
	hsg.tick_armed = false;
	DLIST_FOREACH_SAFE(n, tmp, &hsg.conns) {
		struct hsg_conn *hc = DLIST_ENTRY(n, struct hsg_conn, node);
		struct hsgate_result res = {408, HSGATE_R_SLOW, NULL};

		if (hc->lingering) {
			if (now >= hc->linger_until)
				hsg_free(hc);
			continue;
		}
		if ((why = hsg_late(hc, now)) == NULL)
			continue;
		if (hc->first_ms == 0) {
			/* Nothing sent: nothing to answer. */
			hsg_count(HSGATE_R_SLOW);
			hsg_log(hc->fd, 408, why);
			hsg_free(hc);
			continue;
		}
		res.why = why;
		hsg_refuse(hc, &res);
	}
	if (hsg.n > 0)
		hsg_arm();
}

/* Sets up the epoll set and puts it into the lws loop; false if not. */
static bool
hsg_init(struct worker *w)
{
	lws_adopt_desc_t ad;

	hsg.w = w;
	dlist_init(&hsg.conns);
	hsg.epfd = epoll_create1(EPOLL_CLOEXEC);
	if (hsg.epfd == -1) {
		log_warn("epoll_create1: handshakes go straight to lws");
		return false;
	}
	memset(&ad, 0, sizeof(ad));
	ad.vh = w->vh;
	ad.type = LWS_ADOPT_RAW_FILE_DESC;
	ad.fd.filefd = hsg.epfd;
	/* The protocol whose callback is ws_callback() (worker.c). */
	ad.vh_prot_name = "wspush";
	ad.opaque = &hsg;
	hsg.wsi = lws_adopt_descriptor_vhost_via_info(&ad);
	if (hsg.wsi == NULL) {
		/* lws closed the descriptor. */
		hsg.epfd = -1;
		log_warnx("cannot adopt the handshake gate: handshakes go "
			  "straight to lws");
		return false;
	}
	return true;
}

/* How many sockets may wait: half the descriptors the worker may open,
 * so that a flood of waiting sockets never takes the descriptors that
 * established connections (and the accept of genuine clients) need. Read
 * each time: an operator may change the limit of a running process. */
static uint32_t
hsg_pending_max(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1 ||
	    rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur / 2 > UINT32_MAX)
		return UINT32_MAX;
	return (uint32_t)(rl.rlim_cur / 2);
}

/*
 * At the bound, the socket that has waited longest goes (it is the one
 * least likely to be a genuine client, which is through in milliseconds),
 * closed without an answer and counted as slow.
 */
static void
hsg_evict_oldest(void)
{
	struct hsg_conn *old =
	    DLIST_ENTRY(dlist_first(&hsg.conns), struct hsg_conn, node);

	hsg_count(HSGATE_R_SLOW);
	hsg_log(old->fd, 408, "evicted: too many handshakes waiting");
	hsg_free(old);
}

void
hsgate_accept(struct worker *w, int fd)
{
	struct epoll_event ev;
	struct hsg_conn *hc;

	if (hsg.w == NULL && !hsg_init(w))
		hsg.broken = true;
	if (hsg.broken || hsg.wsi == NULL) {
		if (lws_adopt_socket_vhost(w->vh, fd) == NULL)
			log_warnx("lws_adopt_socket_vhost failed: "
				  "connection dropped (fd limit?)");
		return;
	}
	while (hsg.n > 0 && hsg.n >= hsg_pending_max())
		hsg_evict_oldest();
	hc = calloc(1, sizeof(*hc));
	if (hc == NULL) {
		log_warnx("hsgate: out of memory: connection dropped");
		close(fd);
		return;
	}
	hc->fd = fd;
	hc->accepted_ms = clock_mono_ms();
	memset(&ev, 0, sizeof(ev));
	/* Edge-triggered: the bytes stay in the socket (peeked, not read),
	 * so a level-triggered set would report it again at once; each new
	 * arrival is a new edge. */
	ev.events = EPOLLIN | EPOLLRDHUP | EPOLLET;
	ev.data.ptr = hc;
	if (epoll_ctl(hsg.epfd, EPOLL_CTL_ADD, fd, &ev) == -1) {
		log_warn("hsgate: epoll_ctl: connection dropped");
		close(fd);
		free(hc);
		return;
	}
	dlist_insert_tail(&hsg.conns, &hc->node);
	hsg.n++;
	hsg_arm();
}

int
hsgate_service(struct lws *wsi)
{
	struct epoll_event evs[HSGATE_EVENTS];
	int n, i, round;

	if (wsi != hsg.wsi)
		return 0;
	for (round = 0; round < HSGATE_ROUNDS; round++) {
		n = epoll_wait(hsg.epfd, evs, HSGATE_EVENTS, 0);
		for (i = 0; i < n; i++)
			hsg_readable(evs[i].data.ptr, evs[i].events);
		if (n < HSGATE_EVENTS)
			break;
	}
	return 0;
}

void
hsgate_closed(struct lws *wsi)
{
	struct dlist_node *n, *tmp;

	if (wsi != hsg.wsi)
		return;
	/* The context is going away (lws closed the epoll descriptor). */
	hsg.wsi = NULL;
	hsg.epfd = -1;
	hsg.broken = true;
	lws_sul_cancel(&hsg.tick);
	hsg.tick_armed = false;
	DLIST_FOREACH_SAFE(n, tmp, &hsg.conns)
		hsg_free(DLIST_ENTRY(n, struct hsg_conn, node));
}

uint32_t
hsgate_waiting(void)
{
	return hsg.n;
}
