/*
 * wsb_floor: the bare C "floor" server of the benchmark. A master opens the
 * listening socket and forks N workers; each worker accepts WebSocket
 * upgrades (GET /?k=<key>), PSUBSCRIBEs floor:* on Redis, and for every
 * message on floor:<key> frames the payload once and writes that frame to
 * each connection of the key with one write() each. Nothing else: no
 * queues unless the kernel refuses part of a write, no JSON, no protocol.
 * It is the cost of one-frame-per-syscall delivery on this machine.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "wsb_common.h"

#define MAX_PENDING (4u << 20)
#define NBUCKETS 65536u

struct group;

struct fconn {
	int fd;
	int open; /* upgraded */
	char *hs; /* handshake bytes until the upgrade */
	size_t hslen;
	char *pend; /* unsent tail of earlier frames; rare */
	size_t plen, pcap;
	struct group *g;
	struct fconn *prev, *next;
};

struct group {
	char *key;
	struct fconn *head;
	struct group *hnext;
};

static struct fconn **byfd;
static int maxfd;
static struct group *buckets[NBUCKETS];
static int epfd, lfd;
static redisContext *rc;
static uint64_t n_delivered, n_queued, n_killed;

/* ---- SHA-1 and base64, for Sec-WebSocket-Accept ----------------------- */

static uint32_t
rol(uint32_t v, int n)
{
	return (v << n) | (v >> (32 - n));
}

static void
sha1_block(uint32_t h[5], const uint8_t *p)
{
	uint32_t w[80], a, b, c, d, e, t;

	for (int i = 0; i < 16; i++)
		w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
		       (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
	for (int i = 16; i < 80; i++)
		w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
	a = h[0];
	b = h[1];
	c = h[2];
	d = h[3];
	e = h[4];
	for (int i = 0; i < 80; i++) {
		uint32_t f, k;
		if (i < 20) {
			f = (b & c) | (~b & d);
			k = 0x5a827999;
		} else if (i < 40) {
			f = b ^ c ^ d;
			k = 0x6ed9eba1;
		} else if (i < 60) {
			f = (b & c) | (b & d) | (c & d);
			k = 0x8f1bbcdc;
		} else {
			f = b ^ c ^ d;
			k = 0xca62c1d6;
		}
		t = rol(a, 5) + f + e + k + w[i];
		e = d;
		d = c;
		c = rol(b, 30);
		b = a;
		a = t;
	}
	h[0] += a;
	h[1] += b;
	h[2] += c;
	h[3] += d;
	h[4] += e;
}

static void
sha1(const uint8_t *msg, size_t len, uint8_t out[20])
{
	uint32_t h[5] = {
	    0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0};
	uint8_t blk[64];
	size_t i = 0;

	for (; i + 64 <= len; i += 64)
		sha1_block(h, msg + i);
	size_t r = len - i;
	memset(blk, 0, sizeof(blk));
	memcpy(blk, msg + i, r);
	blk[r] = 0x80;
	if (r >= 56) {
		sha1_block(h, blk);
		memset(blk, 0, sizeof(blk));
	}
	uint64_t bits = (uint64_t)len * 8;
	for (int k = 0; k < 8; k++)
		blk[63 - k] = (uint8_t)(bits >> (8 * k));
	sha1_block(h, blk);
	for (int k = 0; k < 5; k++) {
		out[4 * k] = (uint8_t)(h[k] >> 24);
		out[4 * k + 1] = (uint8_t)(h[k] >> 16);
		out[4 * k + 2] = (uint8_t)(h[k] >> 8);
		out[4 * k + 3] = (uint8_t)h[k];
	}
}

static void
base64(const uint8_t *in, size_t n, char *out)
{
	static const char t[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvw"
	    "xyz0123456789+/";
	size_t o = 0;

	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)in[i + 1] << 8;
		if (i + 2 < n)
			v |= in[i + 2];
		out[o++] = t[v >> 18];
		out[o++] = t[(v >> 12) & 63];
		out[o++] = i + 1 < n ? t[(v >> 6) & 63] : '=';
		out[o++] = i + 2 < n ? t[v & 63] : '=';
	}
	out[o] = '\0';
}

/* ---- groups ------------------------------------------------------------ */

static uint32_t
hash(const char *s, size_t n)
{
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < n; i++)
		h = (h ^ (uint8_t)s[i]) * 16777619u;
	return h;
}

static struct group *
group_find(const char *key, size_t n, int create)
{
	uint32_t b = hash(key, n) & (NBUCKETS - 1);
	struct group *g;

	for (g = buckets[b]; g != NULL; g = g->hnext)
		if (strlen(g->key) == n && memcmp(g->key, key, n) == 0)
			return g;
	if (!create)
		return NULL;
	g = calloc(1, sizeof(*g));
	if (g == NULL || (g->key = strndup(key, n)) == NULL) {
		free(g);
		return NULL;
	}
	g->hnext = buckets[b];
	buckets[b] = g;
	return g;
}

/* ---- connections -------------------------------------------------------- */

static void
conn_close(struct fconn *c)
{
	if (c->g != NULL) {
		if (c->prev != NULL)
			c->prev->next = c->next;
		else
			c->g->head = c->next;
		if (c->next != NULL)
			c->next->prev = c->prev;
	}
	epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	byfd[c->fd] = NULL;
	free(c->hs);
	free(c->pend);
	free(c);
}

static int
pend_append(struct fconn *c, const char *d, size_t n)
{
	if (c->plen + n > MAX_PENDING)
		return -1;
	if (c->plen + n > c->pcap) {
		size_t nc = c->pcap ? c->pcap * 2 : 4096;
		while (nc < c->plen + n)
			nc *= 2;
		char *np = realloc(c->pend, nc);
		if (np == NULL)
			return -1;
		c->pend = np;
		c->pcap = nc;
	}
	memcpy(c->pend + c->plen, d, n);
	c->plen += n;
	return 0;
}

static void
want_out(struct fconn *c, int on)
{
	struct epoll_event ev = {
	    .events = EPOLLIN | (on ? EPOLLOUT : 0u), .data.fd = c->fd};
	epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

/* The hot path: one write() per connection. */
static void
deliver(struct group *g, const char *frame, size_t len)
{
	struct fconn *c, *next;

	for (c = g->head; c != NULL; c = next) {
		next = c->next;
		if (c->plen > 0) {
			if (pend_append(c, frame, len) == -1) {
				n_killed++;
				conn_close(c);
			}
			n_queued++;
			continue;
		}
		ssize_t n = write(c->fd, frame, len);
		if (n == (ssize_t)len) {
			n_delivered++;
			continue;
		}
		if (n == -1 && errno != EAGAIN) {
			conn_close(c);
			continue;
		}
		if (n < 0)
			n = 0;
		n_queued++;
		if (pend_append(c, frame + n, len - (size_t)n) == -1) {
			n_killed++;
			conn_close(c);
			continue;
		}
		want_out(c, 1);
	}
}

static void
on_writable(struct fconn *c)
{
	ssize_t n = write(c->fd, c->pend, c->plen);

	if (n == -1) {
		if (errno != EAGAIN)
			conn_close(c);
		return;
	}
	memmove(c->pend, c->pend + n, c->plen - (size_t)n);
	c->plen -= (size_t)n;
	if (c->plen == 0)
		want_out(c, 0);
}

static const char *
header(const char *req, const char *end, const char *name, size_t *vlen)
{
	size_t nl = strlen(name);

	for (const char *p = req; p + nl < end; p++) {
		if (p[-1] != '\n' || strncasecmp(p, name, nl) != 0)
			continue;
		p += nl;
		while (p < end && *p == ' ')
			p++;
		const char *e = p;
		while (e < end && *e != '\r')
			e++;
		*vlen = (size_t)(e - p);
		return p;
	}
	return NULL;
}

static void
handshake(struct fconn *c)
{
	char *end = memmem(c->hs, c->hslen, "\r\n\r\n", 4);
	char key[128], acc[64], resp[256];
	uint8_t dig[20];
	size_t kl;

	if (end == NULL)
		return;
	const char *k = header(c->hs + 1, end, "Sec-WebSocket-Key:", &kl);
	const char *q = memmem(c->hs, (size_t)(end - c->hs), "?k=", 3);
	if (k == NULL || kl > 64 || q == NULL ||
	    strncmp(c->hs, "GET ", 4) != 0) {
		conn_close(c);
		return;
	}
	q += 3;
	const char *qe = q;
	while (qe < end && *qe != ' ' && *qe != '&')
		qe++;
	memcpy(key, k, kl);
	memcpy(key + kl, "258EAFA5-E914-47DA-95CA-C5AB0DC85B11", 36);
	sha1((const uint8_t *)key, kl + 36, dig);
	base64(dig, 20, acc);
	int n = snprintf(resp, sizeof(resp),
	    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
	    "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
	    acc);
	struct group *g = group_find(q, (size_t)(qe - q), 1);
	if (g == NULL || write(c->fd, resp, (size_t)n) != n) {
		conn_close(c);
		return;
	}
	free(c->hs);
	c->hs = NULL;
	c->open = 1;
	c->g = g;
	c->next = g->head;
	if (g->head != NULL)
		g->head->prev = c;
	g->head = c;
}

static void
on_readable(struct fconn *c)
{
	char tmp[4096];

	if (c->open) {
		/* Clients send nothing but pongs and close frames here. */
		ssize_t n = read(c->fd, tmp, sizeof(tmp));
		if (n == 0 || (n == -1 && errno != EAGAIN))
			conn_close(c);
		else if (n > 0 && (tmp[0] & 0x0f) == 0x8)
			conn_close(c);
		return;
	}
	if (c->hs == NULL && (c->hs = malloc(4096)) == NULL) {
		conn_close(c);
		return;
	}
	ssize_t n = read(c->fd, c->hs + c->hslen, 4095 - c->hslen);
	if (n == 0 || (n == -1 && errno != EAGAIN)) {
		conn_close(c);
		return;
	}
	if (n < 0)
		return;
	c->hslen += (size_t)n;
	c->hs[c->hslen] = '\0';
	handshake(c);
	if (byfd[c->fd] == c && !c->open && c->hslen >= 4095)
		conn_close(c);
}

static void
on_accept(void)
{
	for (int k = 0; k < 64; k++) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd == -1)
			return;
		if (fd >= maxfd) {
			close(fd);
			continue;
		}
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		struct fconn *c = calloc(1, sizeof(*c));
		if (c == NULL) {
			close(fd);
			continue;
		}
		c->fd = fd;
		byfd[fd] = c;
		struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
		epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
	}
}

static void
on_redis(void)
{
	static char frame[1 << 20];
	redisReply *r;

	if (redisBufferRead(rc) != REDIS_OK) {
		fprintf(stderr, "wsb_floor: redis: %s\n", rc->errstr);
		exit(1);
	}
	for (;;) {
		r = NULL;
		if (redisGetReplyFromReader(rc, (void **)&r) != REDIS_OK) {
			fprintf(stderr, "wsb_floor: redis: %s\n", rc->errstr);
			exit(1);
		}
		if (r == NULL)
			return;
		if (r->type == REDIS_REPLY_ARRAY && r->elements == 4 &&
		    strcmp(r->element[0]->str, "pmessage") == 0) {
			redisReply *ch = r->element[2], *pl = r->element[3];
			struct group *g = NULL;
			if (ch->len > 6)
				g = group_find(ch->str + 6, ch->len - 6, 0);
			size_t n = pl->len, h = 0;
			if (g != NULL && n + 10 <= sizeof(frame)) {
				frame[h++] = (char)0x81;
				if (n < 126) {
					frame[h++] = (char)n;
				} else if (n < 65536) {
					frame[h++] = 126;
					frame[h++] = (char)(n >> 8);
					frame[h++] = (char)n;
				} else {
					frame[h++] = 127;
					for (int k = 7; k >= 0; k--)
						frame[h++] =
						    (char)((uint64_t)n >>
							   (8 * k));
				}
				memcpy(frame + h, pl->str, n);
				deliver(g, frame, h + n);
			}
		}
		freeReplyObject(r);
	}
}

static void
worker(const char *rhost, int rport)
{
	struct epoll_event evs[256];
	struct rlimit rl;

	prctl(PR_SET_PDEATHSIG, SIGTERM);
	getrlimit(RLIMIT_NOFILE, &rl);
	maxfd = (int)rl.rlim_cur;
	byfd = calloc((size_t)maxfd, sizeof(*byfd));
	epfd = epoll_create1(EPOLL_CLOEXEC);
	rc = redisConnect(rhost, rport);
	if (byfd == NULL || epfd == -1 || rc == NULL || rc->err) {
		fprintf(stderr, "wsb_floor: worker setup failed\n");
		exit(1);
	}
	redisReply *r = redisCommand(rc, "PSUBSCRIBE floor:*");
	if (r == NULL) {
		fprintf(stderr, "wsb_floor: PSUBSCRIBE failed\n");
		exit(1);
	}
	freeReplyObject(r);
	struct epoll_event ev = {
	    .events = EPOLLIN | EPOLLEXCLUSIVE, .data.fd = lfd};
	epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &ev);
	ev.events = EPOLLIN;
	ev.data.fd = rc->fd;
	epoll_ctl(epfd, EPOLL_CTL_ADD, rc->fd, &ev);
	for (;;) {
		int n = epoll_wait(epfd, evs, 256, -1);
		for (int k = 0; k < n; k++) {
			int fd = evs[k].data.fd;
			if (fd == lfd) {
				on_accept();
			} else if (fd == rc->fd) {
				on_redis();
			} else if (fd < maxfd && byfd[fd] != NULL) {
				struct fconn *c = byfd[fd];
				if (evs[k].events & EPOLLOUT)
					on_writable(c);
				if (byfd[fd] == c &&
				    (evs[k].events &
					(EPOLLIN | EPOLLERR | EPOLLHUP)))
					on_readable(c);
			}
		}
	}
}

static volatile sig_atomic_t stop;

static void
on_signal(int sig)
{
	stop = 1;
}

int
main(int argc, char **argv)
{
	int port = 0, rport = 6379, nworkers = 2, one = 1;
	const char *rhost = "127.0.0.1";
	pid_t pids[64];

	for (int i = 1; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--port") == 0)
			port =
			    (int)wsb_parse_num(argv[i + 1], 1, 65535, "port");
		else if (strcmp(argv[i], "--redis-port") == 0)
			rport = (int)wsb_parse_num(
			    argv[i + 1], 1, 65535, "redis-port");
		else if (strcmp(argv[i], "--workers") == 0)
			nworkers =
			    (int)wsb_parse_num(argv[i + 1], 1, 64, "workers");
		else
			port = 0, i = argc;
	}
	if (port == 0) {
		fprintf(stderr, "usage: wsb_floor --port P [--redis-port R] "
				"[--workers N]\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {
	    .sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (lfd == -1 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) == -1 ||
	    listen(lfd, 4096) == -1) {
		fprintf(stderr, "wsb_floor: listen on %d: %s\n", port,
		    strerror(errno));
		return 1;
	}
	for (int w = 0; w < nworkers; w++) {
		pids[w] = fork();
		if (pids[w] == 0)
			worker(rhost, rport);
	}
	struct sigaction sa = {.sa_handler = on_signal};
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	while (!stop) {
		int st;
		pid_t p = waitpid(-1, &st, 0);
		if (p > 0) {
			fprintf(
			    stderr, "wsb_floor: worker %d exited\n", (int)p);
			break;
		}
	}
	for (int w = 0; w < nworkers; w++)
		kill(pids[w], SIGTERM);
	for (int w = 0; w < nworkers; w++)
		waitpid(pids[w], NULL, 0);
	return 0;
}
