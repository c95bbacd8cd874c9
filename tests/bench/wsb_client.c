/*
 * wsb_client: the benchmark's load client. One thread, epoll, thousands of
 * WebSocket connections to wspush, nchan, Socket.IO (engine.io v4 over the
 * websocket transport) or the bare floor server. It counts every message
 * per connection (loss, duplicates, order) and builds a latency histogram
 * from the publisher's timestamps. The harness (bench.py) drives it with
 * line commands on stdin and reads one JSON line per report on stdout.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "wsb_common.h"

enum mode { MODE_WSPUSH, MODE_NCHAN, MODE_SIO, MODE_FLOOR };

enum cstate {
	CS_IDLE,         /* not started yet */
	CS_CONNECTING,   /* non-blocking connect in progress */
	CS_HTTP,         /* upgrade request sent, waiting for 101 */
	CS_WAIT_WELCOME, /* wspush: waiting for {"op":"welcome"} */
	CS_WAIT_SUB,     /* wspush: waiting for {"op":"subscribed"} */
	CS_WAIT_OPEN,    /* sio: waiting for the engine.io "0{...}" */
	CS_WAIT_NSP,     /* sio: waiting for "40{...}" */
	CS_READY,
	CS_FAILED, /* failed before READY */
	CS_CLOSED  /* closed after READY */
};

/*
 * Why a connection did not become READY (or, dropped: closed after READY
 * but before the READY line). The READY line counts each, so that a
 * shortfall says what happened: SYNs nobody answered (a full accept
 * queue) show as timeout_tcp, a server slow to answer the upgrade as
 * timeout_upgrade, one slow to confirm the subscription as timeout_welcome,
 * a refusal by its HTTP status.
 */
enum why {
	W_CONNREFUSED,  /* connect: ECONNREFUSED */
	W_CONNTIMEDOUT, /* ETIMEDOUT: SYNs or data unanswered */
	W_NOPORT,       /* EADDRNOTAVAIL: no free source port */
	W_CONNOTHER,    /* another connect/socket error */
	W_HTTP,         /* a non-101 answer (also counted by status) */
	W_EOF,          /* the server closed the socket */
	W_RESET,        /* ECONNRESET, EPIPE */
	W_WSCLOSE,      /* the server sent a close frame */
	W_PROTO,        /* a frame or head this client cannot take */
	W_SUBERR,       /* wspush subscribe error, Socket.IO "44" */
	W_TO_TCP,       /* deadline: TCP connect not finished */
	W_TO_UPGRADE,   /* deadline: no HTTP answer to the upgrade */
	W_TO_WELCOME,   /* deadline: wspush welcome not received */
	W_TO_SUB,       /* deadline: wspush subscribed not received */
	W_TO_SIO,       /* deadline: Socket.IO open/namespace not received */
	W_NOT_STARTED,  /* deadline: never started (pacing too slow) */
	W_LOCAL,        /* out of memory here */
	W_N
};

static const char *const why_name[W_N] = {"connect_refused", "connect_timedout",
    "no_source_port", "connect_error", "http", "eof", "reset", "ws_close",
    "protocol", "subscribe_error", "timeout_tcp", "timeout_upgrade",
    "timeout_welcome", "timeout_subscribe", "timeout_sio", "not_started",
    "local"};

#define MAX_FRAME (1u << 20)
#define RBUF_SIZE (256 * 1024)

struct conn {
	int fd;
	uint8_t state;
	uint8_t fragop; /* opcode of a fragmented message being assembled */
	uint8_t why;    /* enum why of a parse failure, for conn_close() */
	uint8_t *buf;   /* unparsed bytes (partial frame or HTTP head) */
	uint32_t blen, bcap;
	uint8_t *frag; /* fragmented message assembly; rare */
	uint32_t flen, fcap;
	int64_t started_us;
	/* Per-phase accounting. */
	uint32_t uniq;
	int64_t max_seq;
};

struct opts {
	enum mode mode;
	const char *host;
	int ports[8];
	int nports;
	uint32_t nconns;
	const char *topic;       /* shared channel, or NULL */
	const char *user_prefix; /* per-connection topic prefix */
	uint32_t user_base;      /* first per-connection index */
	const char *wspush_path; /* "/ws" */
	const char *nchan_path;  /* "/sub/"; "/msub/" also subscribes "all" */
	int src_base, src_count; /* 127.0.0.<src_base + i % src_count> */
	uint32_t max_inflight;
	uint32_t
	    connect_rate; /* connections started per second, 0: no pacing */
	int64_t connect_timeout_us;
	int verbose;
};

static struct opts o;
static struct conn *conns;
static int epfd;
static uint8_t rbuf[RBUF_SIZE];

/* Connection progress. */
static uint32_t next_start, n_inflight, n_ready, n_failed, n_dropped;
static uint32_t fail_n[W_N], drop_n[W_N], http_n[600];
static int ready_reported;
static int64_t open_start_us, connect_deadline;
/* Handshake times (socket() to READY), us. */
static uint64_t hs_hist[WSB_HIST_BUCKETS];

/* Phase accounting. */
static uint64_t phase_id = UINT64_MAX;
static uint64_t phase_expect;
static uint64_t *bits; /* nconns * words */
static size_t bits_words;
static uint64_t st_uniq, st_dup, st_reorder, st_stray, st_bad, st_other;
/* Messages of an earlier phase: that phase's window closed before they
 * came (slow, not lost); they also keep this phase's WAIT from going
 * quiet, since a connection's messages arrive in order. */
static uint64_t st_late;
static int64_t last_any_us;
static uint64_t st_closed, st_pings;
static uint32_t phase_conns;
static int64_t first_recv_us, last_recv_us, phase_start_us;
static uint64_t hist[WSB_HIST_BUCKETS];

/* WAIT command in progress. */
static int waiting;
static int64_t wait_start_us, wait_quiet_us, wait_max_us;

static char inbuf[4096];
static size_t inlen;

static void die(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));

static void
die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "wsb_client: ");
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

static const char *
topic_of(uint32_t i, char *buf, size_t len)
{
	if (o.topic != NULL)
		return o.topic;
	snprintf(buf, len, "%s%" PRIu32, o.user_prefix, o.user_base + i);
	return buf;
}

/* Sends one masked client frame; control replies are tiny, so a short
 * write is treated as a failure of the connection. */
static int
send_frame(struct conn *c, int opcode, const void *data, size_t len)
{
	uint8_t f[1024];
	static const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
	size_t h = 0, i;

	if (len > sizeof(f) - 8)
		return -1;
	f[h++] = (uint8_t)(0x80 | opcode);
	if (len < 126) {
		f[h++] = (uint8_t)(0x80 | len);
	} else {
		f[h++] = 0x80 | 126;
		f[h++] = (uint8_t)(len >> 8);
		f[h++] = (uint8_t)len;
	}
	memcpy(f + h, key, 4);
	h += 4;
	for (i = 0; i < len; i++)
		f[h + i] = ((const uint8_t *)data)[i] ^ key[i & 3];
	if (write(c->fd, f, h + len) != (ssize_t)(h + len))
		return -1;
	return 0;
}

static enum why
why_errno(int e)
{
	switch (e) {
	case ECONNREFUSED:
		return W_CONNREFUSED;
	case ETIMEDOUT:
		return W_CONNTIMEDOUT;
	case EADDRNOTAVAIL:
		return W_NOPORT;
	case ECONNRESET:
	case EPIPE:
		return W_RESET;
	default:
		return W_CONNOTHER;
	}
}

/* Closes connection i; why says why, if it was not READY yet (or is
 * dropped before the READY line). */
static void
conn_close(uint32_t i, enum why why)
{
	struct conn *c = &conns[i];

	if (c->fd >= 0) {
		epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
		close(c->fd);
		c->fd = -1;
	}
	free(c->buf);
	c->buf = NULL;
	c->blen = c->bcap = 0;
	free(c->frag);
	c->frag = NULL;
	c->flen = c->fcap = 0;
	if (c->state == CS_READY) {
		c->state = CS_CLOSED;
		n_ready--;
		st_closed++;
		if (!ready_reported) {
			n_dropped++;
			drop_n[why]++;
		}
		if (o.verbose || !ready_reported)
			fprintf(stderr, "wsb_client: conn %u closed (%s)\n", i,
			    why_name[why]);
	} else if (c->state != CS_FAILED && c->state != CS_CLOSED) {
		c->state = CS_FAILED;
		n_inflight--;
		n_failed++;
		fail_n[why]++;
		fprintf(stderr, "wsb_client: conn %u failed: %s\n", i,
		    why_name[why]);
	}
}

static void
conn_set_ready(struct conn *c)
{
	int64_t t = wsb_now_us() - c->started_us;

	hs_hist[wsb_hist_bucket(t < 0 ? 0 : (uint64_t)t)]++;
	c->state = CS_READY;
	n_inflight--;
	n_ready++;
}

static int
conn_start(uint32_t i)
{
	struct conn *c = &conns[i];
	struct sockaddr_in src, dst;
	int fd, one = 1;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1) {
		fprintf(stderr, "wsb_client: socket: %s\n", strerror(errno));
		return -1;
	}
	c->why = W_PROTO;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (o.src_count > 0) {
		setsockopt(
		    fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
		memset(&src, 0, sizeof(src));
		src.sin_family = AF_INET;
		src.sin_addr.s_addr = htonl(
		    (127u << 24) |
		    (uint32_t)(o.src_base + (int)(i % (uint32_t)o.src_count)));
		if (bind(fd, (struct sockaddr *)&src, sizeof(src)) == -1) {
			fprintf(
			    stderr, "wsb_client: bind: %s\n", strerror(errno));
			close(fd);
			return -1;
		}
	}
	memset(&dst, 0, sizeof(dst));
	dst.sin_family = AF_INET;
	dst.sin_port = htons((uint16_t)o.ports[i % (uint32_t)o.nports]);
	if (inet_pton(AF_INET, o.host, &dst.sin_addr) != 1)
		die("bad host %s", o.host);
	c->fd = fd;
	c->state = CS_CONNECTING;
	c->started_us = wsb_now_us();
	n_inflight++;
	if (connect(fd, (struct sockaddr *)&dst, sizeof(dst)) == -1 &&
	    errno != EINPROGRESS) {
		int e = errno;
		fprintf(stderr, "wsb_client: connect: %s\n", strerror(e));
		conn_close(i, why_errno(e));
		return 0;
	}
	struct epoll_event ev = {.events = EPOLLOUT, .data.u32 = i};
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) == -1)
		die("epoll_ctl: %s", strerror(errno));
	return 0;
}

static void
send_upgrade(uint32_t i)
{
	struct conn *c = &conns[i];
	char req[1024], tb[300];
	const char *topic = topic_of(i, tb, sizeof(tb));
	char path[600];
	int n, err = 0;
	socklen_t el = sizeof(err);

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el) == -1 ||
	    err != 0) {
		fprintf(stderr, "wsb_client: connect: %s\n", strerror(err));
		conn_close(i, why_errno(err));
		return;
	}
	switch (o.mode) {
	case MODE_WSPUSH:
		if (o.topic != NULL)
			snprintf(path, sizeof(path), "%s?user=c%" PRIu32,
			    o.wspush_path, o.user_base + i);
		else
			snprintf(path, sizeof(path), "%s?user=%s",
			    o.wspush_path, topic);
		break;
	case MODE_NCHAN:
		snprintf(path, sizeof(path), "%s%s", o.nchan_path, topic);
		break;
	case MODE_SIO:
		snprintf(path, sizeof(path),
		    "/socket.io/?EIO=4&transport=websocket&room=%s", topic);
		break;
	case MODE_FLOOR:
		snprintf(path, sizeof(path), "/?k=%s", topic);
		break;
	}
	n = snprintf(req, sizeof(req),
	    "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
	    "Connection: Upgrade\r\n"
	    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	    "Sec-WebSocket-Version: 13\r\n\r\n",
	    path, o.host, o.ports[i % (uint32_t)o.nports]);
	if (write(c->fd, req, (size_t)n) != n) {
		conn_close(i, why_errno(errno));
		return;
	}
	c->state = CS_HTTP;
	struct epoll_event ev = {.events = EPOLLIN, .data.u32 = i};
	epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static int
buf_append(
    uint8_t **b, uint32_t *len, uint32_t *cap, const uint8_t *d, size_t n)
{
	if (*len + n > MAX_FRAME + 16)
		return -1;
	if (*len + n > *cap) {
		uint32_t nc = *cap ? *cap : 256;
		while (nc < *len + n)
			nc *= 2;
		uint8_t *nb = realloc(*b, nc);
		if (nb == NULL)
			return -1;
		*b = nb;
		*cap = nc;
	}
	memcpy(*b + *len, d, n);
	*len += (uint32_t)n;
	return 0;
}

static uint64_t
parse_u64(const uint8_t **pp, const uint8_t *end, int *ok)
{
	const uint8_t *p = *pp;
	uint64_t v = 0;
	int nd = 0;

	while (p < end && *p >= '0' && *p <= '9' && nd < 19) {
		v = v * 10 + (uint64_t)(*p - '0');
		p++;
		nd++;
	}
	*ok = nd > 0;
	*pp = p;
	return v;
}

/* A data message: find {"s":S,"t":T in the text, wherever the server's
 * envelope put the payload. */
static void
account(uint32_t i, const uint8_t *d, size_t len, int64_t now)
{
	struct conn *c = &conns[i];
	const uint8_t *p, *end = d + len;
	uint64_t s, t, ph, seq;
	int ok;

	p = memmem(d, len, "{\"s\":", 5);
	if (p == NULL) {
		st_other++;
		return;
	}
	p += 5;
	s = parse_u64(&p, end, &ok);
	if (!ok || end - p < 5 || memcmp(p, ",\"t\":", 5) != 0) {
		st_bad++;
		return;
	}
	p += 5;
	t = parse_u64(&p, end, &ok);
	if (!ok) {
		st_bad++;
		return;
	}
	ph = s / WSB_PHASE_MUL;
	seq = s % WSB_PHASE_MUL;
	last_any_us = now;
	if (ph != phase_id) {
		if (phase_id != UINT64_MAX && ph < phase_id)
			st_late++;
		else
			st_stray++;
		return;
	}
	if (seq >= phase_expect) {
		st_bad++;
		return;
	}
	uint64_t *w = &bits[(size_t)i * bits_words + seq / 64];
	uint64_t m = 1ull << (seq % 64);
	if (*w & m) {
		st_dup++;
		return;
	}
	*w |= m;
	c->uniq++;
	st_uniq++;
	if ((int64_t)seq < c->max_seq)
		st_reorder++;
	else
		c->max_seq = (int64_t)seq;
	int64_t lat = now - (int64_t)t;
	hist[wsb_hist_bucket(lat < 0 ? 0 : (uint64_t)lat)]++;
	if (first_recv_us == 0)
		first_recv_us = now;
	last_recv_us = now;
}

static void
on_message(uint32_t i, const uint8_t *d, size_t len, int64_t now)
{
	struct conn *c = &conns[i];

	switch (c->state) {
	case CS_WAIT_WELCOME:
		if (memmem(d, len, "\"welcome\"", 9) == NULL)
			return;
		if (o.topic == NULL) {
			conn_set_ready(c);
			return;
		}
		{
			char m[400];
			int n = snprintf(m, sizeof(m),
			    "{\"op\":\"subscribe\",\"channel\":\"%s\",\"ref\":"
			    "1}",
			    o.topic);
			if (send_frame(c, 1, m, (size_t)n) == -1) {
				conn_close(i, W_RESET);
				return;
			}
		}
		c->state = CS_WAIT_SUB;
		return;
	case CS_WAIT_SUB:
		if (memmem(d, len, "\"subscribed\"", 12) != NULL)
			conn_set_ready(c);
		else if (memmem(d, len, "\"error\"", 7) != NULL) {
			fprintf(stderr, "wsb_client: subscribe: %.*s\n",
			    (int)len, (const char *)d);
			conn_close(i, W_SUBERR);
		}
		return;
	case CS_WAIT_OPEN:
		if (len >= 1 && d[0] == '0') {
			if (send_frame(c, 1, "40", 2) == -1) {
				conn_close(i, W_RESET);
				return;
			}
			c->state = CS_WAIT_NSP;
		}
		return;
	case CS_WAIT_NSP:
		if (len >= 2 && d[0] == '4' && d[1] == '0')
			conn_set_ready(c);
		else if (len >= 2 && d[0] == '4' && d[1] == '4')
			conn_close(i, W_SUBERR);
		else if (len == 1 && d[0] == '2')
			send_frame(c, 1, "3", 1);
		return;
	case CS_READY:
		if (o.mode == MODE_SIO && len == 1 && d[0] == '2') {
			st_pings++;
			if (send_frame(c, 1, "3", 1) == -1)
				conn_close(i, W_RESET);
			return;
		}
		account(i, d, len, now);
		return;
	default:
		return;
	}
}

/* Parses the HTTP response head; returns bytes consumed, 0 if more is
 * needed, -1 on failure. */
static long
parse_http(uint32_t i, const uint8_t *d, size_t len)
{
	struct conn *c = &conns[i];
	const uint8_t *e = memmem(d, len, "\r\n\r\n", 4);

	if (e == NULL) {
		c->why = W_PROTO;
		return len > 8192 ? -1 : 0;
	}
	if (len < 12 || memcmp(d, "HTTP/1.1 101", 12) != 0) {
		int status = 0;
		if (sscanf((const char *)d, "HTTP/1.%*d %d", &status) == 1 &&
		    status > 0 && status < 600)
			http_n[status]++;
		c->why = W_HTTP;
		fprintf(stderr, "wsb_client: upgrade refused: %.*s\n",
		    (int)(memchr(d, '\r', len)
			      ? (const uint8_t *)memchr(d, '\r', len) - d
			      : 0),
		    (const char *)d);
		return -1;
	}
	switch (o.mode) {
	case MODE_WSPUSH:
		c->state = CS_WAIT_WELCOME;
		break;
	case MODE_SIO:
		c->state = CS_WAIT_OPEN;
		break;
	default:
		conn_set_ready(c);
		break;
	}
	return (long)(e + 4 - d);
}

/* Parses as many whole frames as d holds; returns bytes consumed or -1. */
static long
parse_frames(uint32_t i, uint8_t *d, size_t len, int64_t now)
{
	struct conn *c = &conns[i];
	size_t off = 0;

	while (c->fd >= 0) {
		if (c->state == CS_HTTP) {
			long n = parse_http(i, d + off, len - off);
			if (n <= 0)
				return n < 0 ? -1 : (long)off;
			off += (size_t)n;
			continue;
		}
		if (len - off < 2)
			break;
		uint8_t b0 = d[off], b1 = d[off + 1];
		size_t h = 2;
		uint64_t pl = b1 & 0x7f;
		if (pl == 126) {
			if (len - off < 4)
				break;
			pl = (uint64_t)d[off + 2] << 8 | d[off + 3];
			h = 4;
		} else if (pl == 127) {
			if (len - off < 10)
				break;
			pl = 0;
			for (int k = 0; k < 8; k++)
				pl = pl << 8 | d[off + 2 + k];
			h = 10;
		}
		if (pl > MAX_FRAME) {
			c->why = W_PROTO;
			return -1;
		}
		uint8_t *mk = NULL;
		if (b1 & 0x80) {
			if (len - off < h + 4)
				break;
			mk = d + off + h;
			h += 4;
		}
		if (len - off < h + pl)
			break;
		uint8_t *p = d + off + h;
		if (mk != NULL)
			for (uint64_t k = 0; k < pl; k++)
				p[k] ^= mk[k & 3];
		int op = b0 & 0x0f, fin = b0 & 0x80;
		off += h + pl;
		switch (op) {
		case 0x0:
			c->why = W_PROTO;
			if (c->fragop == 0)
				return -1;
			if (buf_append(&c->frag, &c->flen, &c->fcap, p, pl))
				return -1;
			if (fin) {
				on_message(i, c->frag, c->flen, now);
				c->flen = 0;
				c->fragop = 0;
			}
			break;
		case 0x1:
		case 0x2:
			if (fin) {
				on_message(i, p, pl, now);
			} else {
				c->fragop = (uint8_t)op;
				c->flen = 0;
				c->why = W_PROTO;
				if (buf_append(
					&c->frag, &c->flen, &c->fcap, p, pl))
					return -1;
			}
			break;
		case 0x8:
			c->why = W_WSCLOSE;
			return -1;
		case 0x9:
			st_pings++;
			c->why = W_RESET;
			if (send_frame(c, 0xA, p, pl) == -1)
				return -1;
			break;
		default:
			break;
		}
	}
	return (long)off;
}

static void
on_readable(uint32_t i)
{
	struct conn *c = &conns[i];
	ssize_t n;
	long used;
	int64_t now;

	n = read(c->fd, rbuf, sizeof(rbuf));
	if (n == 0) {
		conn_close(i, W_EOF);
		return;
	}
	if (n == -1 && errno != EAGAIN && errno != EINTR) {
		conn_close(i, why_errno(errno));
		return;
	}
	if (n == -1)
		return;
	now = wsb_now_us();
	if (c->blen == 0) {
		used = parse_frames(i, rbuf, (size_t)n, now);
		if (used < 0) {
			conn_close(i, (enum why)c->why);
			return;
		}
		if (c->fd >= 0 && (size_t)used < (size_t)n &&
		    buf_append(&c->buf, &c->blen, &c->bcap, rbuf + used,
			(size_t)n - (size_t)used) == -1)
			conn_close(i, W_LOCAL);
		return;
	}
	if (buf_append(&c->buf, &c->blen, &c->bcap, rbuf, (size_t)n) == -1) {
		conn_close(i, W_LOCAL);
		return;
	}
	used = parse_frames(i, c->buf, c->blen, now);
	if (used < 0) {
		conn_close(i, (enum why)c->why);
		return;
	}
	if (c->fd >= 0) {
		memmove(c->buf, c->buf + used, c->blen - (size_t)used);
		c->blen -= (uint32_t)used;
	}
}

static void
report(void)
{
	int first = 1;

	printf("{\"phase\":%" PRIu64 ",\"conns\":%u,\"ready\":%u,"
	       "\"expect\":%" PRIu64 ",\"uniq\":%" PRIu64 ",\"dup\":%" PRIu64
	       ",\"reorder\":%" PRIu64 ",\"stray\":%" PRIu64
	       ",\"late\":%" PRIu64 ",\"bad\":%" PRIu64 ",\"other\":%" PRIu64
	       ",\"closed\":%" PRIu64 ",\"pings\":%" PRIu64
	       ",\"start_us\":%" PRId64 ",\"first_us\":%" PRId64
	       ",\"last_us\":%" PRId64 ",\"hist\":[",
	    phase_id == UINT64_MAX ? 0 : phase_id, phase_conns, n_ready,
	    phase_expect, st_uniq, st_dup, st_reorder, st_stray, st_late,
	    st_bad, st_other, st_closed, st_pings, phase_start_us,
	    first_recv_us, last_recv_us);
	for (int b = 0; b < WSB_HIST_BUCKETS; b++) {
		if (hist[b] == 0)
			continue;
		printf("%s[%d,%" PRIu64 "]", first ? "" : ",", b, hist[b]);
		first = 0;
	}
	printf("]}\n");
	fflush(stdout);
}

static void
phase_begin(uint64_t id, uint64_t expect)
{
	free(bits);
	bits_words = (size_t)((expect + 63) / 64);
	if (bits_words == 0)
		bits_words = 1;
	bits = calloc((size_t)o.nconns * bits_words, sizeof(uint64_t));
	if (bits == NULL)
		die("out of memory for %" PRIu64 " x %u bitmap", expect,
		    o.nconns);
	phase_id = id;
	phase_expect = expect;
	st_uniq = st_dup = st_reorder = st_stray = st_bad = st_other = 0;
	st_late = 0;
	st_closed = st_pings = 0;
	first_recv_us = last_recv_us = 0;
	phase_start_us = wsb_now_us();
	memset(hist, 0, sizeof(hist));
	for (uint32_t i = 0; i < o.nconns; i++) {
		conns[i].uniq = 0;
		conns[i].max_seq = -1;
	}
	phase_conns = n_ready;
}

static void
handle_command(char *line)
{
	unsigned long long a, b;

	if (sscanf(line, "PHASE %llu %llu", &a, &b) == 2) {
		phase_begin(a, b);
		printf("OK\n");
		fflush(stdout);
	} else if (sscanf(line, "WAIT %llu %llu", &a, &b) == 2) {
		waiting = 1;
		wait_start_us = wsb_now_us();
		wait_quiet_us = (int64_t)a * 1000;
		wait_max_us = (int64_t)b * 1000;
	} else if (strcmp(line, "REPORT") == 0) {
		report();
	} else if (strcmp(line, "QUIT") == 0) {
		exit(0);
	} else {
		fprintf(stderr, "wsb_client: unknown command: %s\n", line);
	}
}

static void
on_stdin(void)
{
	ssize_t n = read(0, inbuf + inlen, sizeof(inbuf) - 1 - inlen);
	char *nl;

	if (n <= 0)
		exit(0); /* the harness went away: sockets close with us */
	inlen += (size_t)n;
	inbuf[inlen] = '\0';
	while ((nl = memchr(inbuf, '\n', inlen)) != NULL) {
		*nl = '\0';
		handle_command(inbuf);
		size_t rest = inlen - (size_t)(nl + 1 - inbuf);
		memmove(inbuf, nl + 1, rest);
		inlen = rest;
	}
	if (inlen == sizeof(inbuf) - 1)
		inlen = 0;
}

/*
 * "READY ok failed dropped=N fail_<why>=N... drop_<why>=N... http_<s>=N...
 * hs_p50_ms= hs_p99_ms= hs_max_ms= open_s=": ok + failed + dropped is
 * --conns. The harness reads the first two numbers; the rest is for the
 * log.
 */
static void
ready_report(int64_t now)
{
	printf("READY %u %u dropped=%u", n_ready, n_failed, n_dropped);
	for (int w = 0; w < W_N; w++)
		if (fail_n[w] != 0)
			printf(" fail_%s=%u", why_name[w], fail_n[w]);
	for (int w = 0; w < W_N; w++)
		if (drop_n[w] != 0)
			printf(" drop_%s=%u", why_name[w], drop_n[w]);
	for (int st = 0; st < 600; st++)
		if (http_n[st] != 0)
			printf(" http_%d=%u", st, http_n[st]);
	if (wsb_hist_quantile(hs_hist, 1.0) >= 0) /* some handshake done */
		printf(" hs_p50_ms=%.1f hs_p99_ms=%.1f hs_max_ms=%.1f",
		    wsb_hist_quantile(hs_hist, 0.5) / 1000,
		    wsb_hist_quantile(hs_hist, 0.99) / 1000,
		    wsb_hist_quantile(hs_hist, 1.0) / 1000);
	printf(" open_s=%.1f\n", (double)(now - open_start_us) / 1e6);
	fflush(stdout);
	ready_reported = 1;
}

static enum why
why_deadline(uint8_t state)
{
	switch (state) {
	case CS_CONNECTING:
		return W_TO_TCP;
	case CS_HTTP:
		return W_TO_UPGRADE;
	case CS_WAIT_WELCOME:
		return W_TO_WELCOME;
	case CS_WAIT_SUB:
		return W_TO_SUB;
	default:
		return W_TO_SIO;
	}
}

static void
tick(int64_t now)
{
	/* --connect-rate: at most rate * elapsed started so far (plus one),
	 * and never more than --inflight unfinished at once. */
	uint32_t allowed = o.nconns;
	if (o.connect_rate > 0) {
		double a = (double)o.connect_rate *
			       (double)(now - open_start_us) / 1e6 +
			   1;
		if (a < (double)allowed)
			allowed = (uint32_t)a;
	}
	while (next_start < allowed && n_inflight < o.max_inflight)
		if (conn_start(next_start++) == -1)
			die("cannot open connection %u", next_start - 1);
	if (!ready_reported && next_start == o.nconns && n_inflight == 0)
		ready_report(now);
	if (!ready_reported && now > connect_deadline) {
		for (uint32_t i = 0; i < next_start; i++)
			if (conns[i].fd >= 0 && conns[i].state != CS_READY)
				conn_close(i, why_deadline(conns[i].state));
		n_failed += o.nconns - next_start;
		fail_n[W_NOT_STARTED] += o.nconns - next_start;
		next_start = o.nconns;
		ready_report(now);
	}
	if (waiting) {
		uint64_t want = phase_expect * phase_conns;
		/* Quiet: nothing of this phase nor of an earlier one (which
		 * the connections still had to get through first). */
		int64_t last =
		    last_recv_us > last_any_us ? last_recv_us : last_any_us;
		if (wait_start_us > last)
			last = wait_start_us;
		if (st_uniq >= want || now - last >= wait_quiet_us ||
		    now - wait_start_us >= wait_max_us) {
			waiting = 0;
			report();
		}
	}
}

static void
usage(void)
{
	fprintf(stderr,
	    "usage: wsb_client --mode wspush|nchan|sio|floor --port P[,P2] "
	    "--conns N\n"
	    "       (--topic NAME | --user-prefix PFX [--user-base K])\n"
	    "       [--host 127.0.0.1] [--path /ws] [--nchan-path /sub/] "
	    "[--src-base 2] "
	    "[--src-count 16]\n"
	    "       [--inflight 200] [--connect-rate 0 (per s)] "
	    "[--connect-timeout-s 60] [-v]\n"
	    "stdin: PHASE id expect | WAIT quiet_ms max_ms | REPORT | QUIT\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	struct epoll_event evs[512];

	o.host = "127.0.0.1";
	o.wspush_path = "/ws";
	o.nchan_path = "/sub/";
	o.src_base = 2;
	o.src_count = 16;
	o.max_inflight = 200;
	o.connect_timeout_us = 60 * 1000000LL;
	o.mode = MODE_WSPUSH;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(a, "-v") == 0) {
			o.verbose = 1;
			continue;
		}
		if (v == NULL)
			usage();
		i++;
		if (strcmp(a, "--mode") == 0) {
			if (strcmp(v, "wspush") == 0)
				o.mode = MODE_WSPUSH;
			else if (strcmp(v, "nchan") == 0)
				o.mode = MODE_NCHAN;
			else if (strcmp(v, "sio") == 0)
				o.mode = MODE_SIO;
			else if (strcmp(v, "floor") == 0)
				o.mode = MODE_FLOOR;
			else
				usage();
		} else if (strcmp(a, "--host") == 0) {
			o.host = v;
		} else if (strcmp(a, "--port") == 0) {
			char *dup = strdup(v), *save = NULL, *tok;
			for (tok = strtok_r(dup, ",", &save);
			     tok != NULL && o.nports < 8;
			     tok = strtok_r(NULL, ",", &save))
				o.ports[o.nports++] =
				    (int)wsb_parse_num(tok, 1, 65535, "port");
			free(dup);
		} else if (strcmp(a, "--conns") == 0) {
			o.nconns =
			    (uint32_t)wsb_parse_num(v, 1, 1000000, "conns");
		} else if (strcmp(a, "--topic") == 0) {
			o.topic = v;
		} else if (strcmp(a, "--user-prefix") == 0) {
			o.user_prefix = v;
		} else if (strcmp(a, "--user-base") == 0) {
			o.user_base = (uint32_t)wsb_parse_num(
			    v, 0, UINT32_MAX / 2, "user-base");
		} else if (strcmp(a, "--nchan-path") == 0) {
			o.nchan_path = v;
		} else if (strcmp(a, "--path") == 0) {
			o.wspush_path = v;
		} else if (strcmp(a, "--src-base") == 0) {
			o.src_base = (int)wsb_parse_num(v, 1, 254, "src-base");
		} else if (strcmp(a, "--src-count") == 0) {
			o.src_count =
			    (int)wsb_parse_num(v, 0, 250, "src-count");
		} else if (strcmp(a, "--inflight") == 0) {
			o.max_inflight =
			    (uint32_t)wsb_parse_num(v, 1, 100000, "inflight");
		} else if (strcmp(a, "--connect-rate") == 0) {
			o.connect_rate = (uint32_t)wsb_parse_num(
			    v, 0, 10000000, "connect-rate");
		} else if (strcmp(a, "--connect-timeout-s") == 0) {
			o.connect_timeout_us =
			    wsb_parse_num(v, 1, 3600, "connect-timeout-s") *
			    1000000LL;
		} else {
			usage();
		}
	}
	if (o.nports == 0 || o.nconns == 0 ||
	    (o.topic == NULL) == (o.user_prefix == NULL))
		usage();
	if (o.src_base + o.src_count > 255)
		die("source addresses past 127.0.0.254");
	signal(SIGPIPE, SIG_IGN);
	conns = calloc(o.nconns, sizeof(*conns));
	if (conns == NULL)
		die("out of memory");
	for (uint32_t i = 0; i < o.nconns; i++) {
		conns[i].fd = -1;
		conns[i].max_seq = -1;
	}
	epfd = epoll_create1(EPOLL_CLOEXEC);
	if (epfd == -1)
		die("epoll_create1: %s", strerror(errno));
	fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
	struct epoll_event sev = {.events = EPOLLIN, .data.u32 = UINT32_MAX};
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, 0, &sev) == -1)
		die("epoll_ctl(stdin): %s", strerror(errno));
	open_start_us = wsb_now_us();
	connect_deadline = open_start_us + o.connect_timeout_us;
	for (;;) {
		int n = epoll_wait(epfd, evs, 512, 20);
		if (n == -1 && errno != EINTR)
			die("epoll_wait: %s", strerror(errno));
		for (int k = 0; k < n; k++) {
			uint32_t i = evs[k].data.u32;
			if (i == UINT32_MAX) {
				on_stdin();
				continue;
			}
			if (i >= o.nconns || conns[i].fd < 0)
				continue;
			if (conns[i].state == CS_CONNECTING)
				send_upgrade(i);
			else
				on_readable(i);
		}
		tick(wsb_now_us());
	}
}
