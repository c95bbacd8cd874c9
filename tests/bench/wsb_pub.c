/*
 * wsb_pub: the benchmark's publisher. Sends COUNT payloads of SIZE bytes,
 * each {"s":<phase*1e9+seq>,"t":<send time, us>,"p":"xx..."}, at a fixed
 * rate or unpaced, to one channel or round-robin over N per-user topics
 * (the sequence then counts per user). Paths: Redis PUBLISH for wspush, the
 * floor server and Socket.IO (the redis-adapter's msgpack format, as
 * @socket.io/redis-emitter writes it), HTTP POST to nchan's publisher
 * location (nchan then stores and fans out through Redis). Prints one JSON
 * line with what was sent.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "wsb_common.h"

enum mode { MODE_WSPUSH, MODE_NCHAN, MODE_SIO, MODE_FLOOR };

static enum mode mode = MODE_WSPUSH;
static const char *host = "127.0.0.1";
static int port;
static const char *topic;
static int to_all; /* --all: wspush's "all" address, nchan's channel "all" */
static const char *user_prefix;
static uint32_t users, user_base;
static uint64_t phase, count = 1;
static double rate; /* messages per second; 0 = unpaced */
static uint32_t size = 100, window = 1000;
static const char *prefix = "wspush";
static uint64_t n_ok, n_err;

struct buf {
	char *p;
	size_t len, cap;
};

static void
buf_put(struct buf *b, const void *d, size_t n)
{
	if (b->len + n > b->cap) {
		size_t nc = b->cap ? b->cap * 2 : 4096;
		while (nc < b->len + n)
			nc *= 2;
		b->p = realloc(b->p, nc);
		if (b->p == NULL) {
			fprintf(stderr, "wsb_pub: out of memory\n");
			exit(2);
		}
		b->cap = nc;
	}
	memcpy(b->p + b->len, d, n);
	b->len += n;
}

static void
buf_byte(struct buf *b, uint8_t c)
{
	buf_put(b, &c, 1);
}

static void
mp_str(struct buf *b, const char *s, size_t n)
{
	if (n < 32) {
		buf_byte(b, (uint8_t)(0xa0 | n));
	} else if (n < 256) {
		buf_byte(b, 0xd9);
		buf_byte(b, (uint8_t)n);
	} else {
		buf_byte(b, 0xda);
		buf_byte(b, (uint8_t)(n >> 8));
		buf_byte(b, (uint8_t)n);
	}
	buf_put(b, s, n);
}

static void
mp_u64(struct buf *b, uint64_t v)
{
	buf_byte(b, 0xcf);
	for (int k = 7; k >= 0; k--)
		buf_byte(b, (uint8_t)(v >> (k * 8)));
}

/* The JSON payload; the padding makes it exactly `size` bytes when the
 * numbers leave room. */
static size_t
make_json(char *out, size_t cap, uint64_t s, uint64_t t, size_t *padlen)
{
	int h = snprintf(
	    out, cap, "{\"s\":%" PRIu64 ",\"t\":%" PRIu64 ",\"p\":\"", s, t);
	size_t pad = size > (size_t)h + 2 ? size - (size_t)h - 2 : 0;
	if ((size_t)h + pad + 3 > cap)
		pad = 0;
	memset(out + h, 'x', pad);
	memcpy(out + h + pad, "\"}", 3);
	*padlen = pad;
	return (size_t)h + pad + 2;
}

/* [uid, packet, opts] as the redis-adapter's broadcast() encodes it. */
static void
make_sio(struct buf *b, const char *room, uint64_t s, uint64_t t, size_t padlen)
{
	static char pad[4096];

	if (pad[0] == 0)
		memset(pad, 'x', sizeof(pad));
	b->len = 0;
	buf_byte(b, 0x93);
	mp_str(b, "emitter", 7);
	buf_byte(b, 0x83);
	mp_str(b, "type", 4);
	buf_byte(b, 2);
	mp_str(b, "data", 4);
	buf_byte(b, 0x92);
	mp_str(b, "msg", 3);
	buf_byte(b, 0x83);
	mp_str(b, "s", 1);
	mp_u64(b, s);
	mp_str(b, "t", 1);
	mp_u64(b, t);
	mp_str(b, "p", 1);
	mp_str(b, pad, padlen < sizeof(pad) ? padlen : sizeof(pad));
	mp_str(b, "nsp", 3);
	mp_str(b, "/", 1);
	buf_byte(b, 0x83);
	mp_str(b, "rooms", 5);
	buf_byte(b, 0x91);
	mp_str(b, room, strlen(room));
	mp_str(b, "except", 6);
	buf_byte(b, 0x90);
	mp_str(b, "flags", 5);
	buf_byte(b, 0x80);
}

static const char *
target(uint64_t i, uint64_t *seq, char *tb, size_t len)
{
	if (topic != NULL) {
		*seq = i;
		return topic;
	}
	snprintf(tb, len, "%s%" PRIu64, user_prefix,
	    (uint64_t)user_base + i % users);
	*seq = i / users;
	return tb;
}

/* ---- Redis paths ------------------------------------------------------ */

static redisContext *rc;

static void
redis_append(uint64_t i)
{
	char tb[300], ch[600], js[8192];
	uint64_t seq;
	const char *t = target(i, &seq, tb, sizeof(tb));
	size_t padlen, jl;
	uint64_t s = phase * WSB_PHASE_MUL + seq;
	static struct buf mb;

	uint64_t ts = (uint64_t)wsb_now_us();

	jl = make_json(js, sizeof(js), s, ts, &padlen);
	switch (mode) {
	case MODE_WSPUSH:
		if (to_all)
			snprintf(ch, sizeof(ch), "%s:all", prefix);
		else
			snprintf(ch, sizeof(ch), "%s:%s:%s", prefix,
			    topic != NULL ? "channel" : "user", t);
		redisAppendCommand(rc, "PUBLISH %s %b", ch, js, jl);
		break;
	case MODE_FLOOR:
		snprintf(ch, sizeof(ch), "floor:%s", t);
		redisAppendCommand(rc, "PUBLISH %s %b", ch, js, jl);
		break;
	case MODE_SIO:
		/* Same numbers and padding as the JSON text: Socket.IO sends
		 * that text to its clients. */
		make_sio(&mb, t, s, ts, padlen);
		snprintf(ch, sizeof(ch), "socket.io#/#%s#", t);
		redisAppendCommand(rc, "PUBLISH %s %b", ch, mb.p, mb.len);
		break;
	default:
		break;
	}
}

static void
redis_collect(uint64_t n)
{
	for (uint64_t k = 0; k < n; k++) {
		redisReply *r = NULL;
		if (redisGetReply(rc, (void **)&r) != REDIS_OK) {
			fprintf(stderr, "wsb_pub: redis: %s\n", rc->errstr);
			exit(1);
		}
		if (r->type == REDIS_REPLY_INTEGER)
			n_ok++;
		else
			n_err++;
		freeReplyObject(r);
	}
}

/* ---- nchan HTTP path --------------------------------------------------- */

static int hfd = -1;
static struct buf hin;

static void
http_open(void)
{
	struct sockaddr_in a;
	int one = 1;

	hfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)port);
	inet_pton(AF_INET, host, &a.sin_addr);
	if (hfd == -1 || connect(hfd, (struct sockaddr *)&a, sizeof(a)) == -1) {
		fprintf(stderr, "wsb_pub: connect %s:%d: %s\n", host, port,
		    strerror(errno));
		exit(1);
	}
	setsockopt(hfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static void
http_append(struct buf *out, uint64_t i)
{
	char tb[300], js[8192], head[512];
	uint64_t seq;
	const char *t = target(i, &seq, tb, sizeof(tb));
	size_t padlen, jl;

	jl = make_json(js, sizeof(js), phase * WSB_PHASE_MUL + seq,
	    (uint64_t)wsb_now_us(), &padlen);
	int h = snprintf(head, sizeof(head),
	    "POST /pub/%s HTTP/1.1\r\nHost: %s\r\n"
	    "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
	    t, host, jl);
	buf_put(out, head, (size_t)h);
	buf_put(out, js, jl);
}

static void
http_flush(struct buf *out)
{
	size_t off = 0;

	while (off < out->len) {
		ssize_t n = write(hfd, out->p + off, out->len - off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			fprintf(
			    stderr, "wsb_pub: write: %s\n", strerror(errno));
			exit(1);
		}
		off += (size_t)n;
	}
	out->len = 0;
}

/* Reads n responses (status line, Content-Length body). */
static void
http_collect(uint64_t n)
{
	char tmp[65536];

	while (n > 0) {
		char *e =
		    hin.len ? memmem(hin.p, hin.len, "\r\n\r\n", 4) : NULL;
		if (e != NULL) {
			size_t hl = (size_t)(e + 4 - hin.p), cl = 0;
			int status = 0;
			sscanf(hin.p, "HTTP/1.%*d %d", &status);
			for (char *p = hin.p; p < e; p++) {
				if ((p == hin.p || p[-1] == '\n') &&
				    strncasecmp(p, "content-length:", 15) == 0)
					cl = strtoul(p + 15, NULL, 10);
			}
			if (hin.len >= hl + cl) {
				if (status >= 200 && status < 300)
					n_ok++;
				else
					n_err++;
				memmove(
				    hin.p, hin.p + hl + cl, hin.len - hl - cl);
				hin.len -= hl + cl;
				n--;
				continue;
			}
		}
		ssize_t r = read(hfd, tmp, sizeof(tmp));
		if (r == -1 && errno == EINTR)
			continue;
		if (r <= 0) {
			fprintf(stderr, "wsb_pub: nchan closed the publisher "
					"connection\n");
			exit(1);
		}
		buf_put(&hin, tmp, (size_t)r);
	}
}

/* ---- main -------------------------------------------------------------- */

static void
sleep_until(int64_t t)
{
	int64_t d = t - wsb_now_us();

	if (d > 0) {
		struct timespec ts = {
		    (time_t)(d / 1000000), (long)(d % 1000000) * 1000};
		nanosleep(&ts, NULL);
	}
}

static void
usage(void)
{
	fprintf(stderr,
	    "usage: wsb_pub --mode wspush|nchan|sio|floor --port P\n"
	    "       (--topic NAME (*all*: every connection) | --users N "
	    "--user-prefix PFX "
	    "[--user-base K])\n"
	    "       --phase ID --count N [--rate MSG_PER_S (0 = unpaced)]\n"
	    "       [--size 100] [--window 1000] [--prefix wspush] "
	    "[--host 127.0.0.1]\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	for (int i = 1; i < argc; i += 2) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (v == NULL)
			usage();
		if (strcmp(a, "--mode") == 0) {
			if (strcmp(v, "wspush") == 0)
				mode = MODE_WSPUSH;
			else if (strcmp(v, "nchan") == 0)
				mode = MODE_NCHAN;
			else if (strcmp(v, "sio") == 0)
				mode = MODE_SIO;
			else if (strcmp(v, "floor") == 0)
				mode = MODE_FLOOR;
			else
				usage();
		} else if (strcmp(a, "--host") == 0) {
			host = v;
		} else if (strcmp(a, "--port") == 0) {
			port = (int)wsb_parse_num(v, 1, 65535, "port");
		} else if (strcmp(a, "--topic") == 0) {
			topic = v;
			to_all = strcmp(v, "*all*") == 0;
			if (to_all)
				topic = "all";
		} else if (strcmp(a, "--users") == 0) {
			users =
			    (uint32_t)wsb_parse_num(v, 1, 10000000, "users");
		} else if (strcmp(a, "--user-prefix") == 0) {
			user_prefix = v;
		} else if (strcmp(a, "--user-base") == 0) {
			user_base = (uint32_t)wsb_parse_num(
			    v, 0, 1000000000, "user-base");
		} else if (strcmp(a, "--phase") == 0) {
			phase = (uint64_t)wsb_parse_num(v, 0, 1000000, "phase");
		} else if (strcmp(a, "--count") == 0) {
			count =
			    (uint64_t)wsb_parse_num(v, 1, 100000000, "count");
		} else if (strcmp(a, "--rate") == 0) {
			char *end;
			rate = strtod(v, &end);
			if (end == v || *end != '\0' || rate < 0 || rate > 1e7)
				usage();
		} else if (strcmp(a, "--size") == 0) {
			size = (uint32_t)wsb_parse_num(v, 1, 4000, "size");
		} else if (strcmp(a, "--window") == 0) {
			window =
			    (uint32_t)wsb_parse_num(v, 1, 1000000, "window");
		} else if (strcmp(a, "--prefix") == 0) {
			prefix = v;
		} else {
			usage();
		}
	}
	if (port == 0 || (topic == NULL) == (users == 0 || !user_prefix))
		usage();
	if (mode == MODE_NCHAN) {
		http_open();
	} else {
		rc = redisConnect(host, port);
		if (rc == NULL || rc->err) {
			fprintf(stderr, "wsb_pub: redis %s:%d: %s\n", host,
			    port, rc ? rc->errstr : "out of memory");
			return 1;
		}
	}

	struct buf out = {0};
	int64_t t0 = wsb_now_us();
	uint64_t i = 0;
	while (i < count) {
		uint64_t due;
		if (rate == 0) {
			due = i + window;
		} else {
			int64_t el = wsb_now_us() - t0;
			due = (uint64_t)((double)el * rate / 1e6) + 1;
			if (due <= i) {
				sleep_until(
				    t0 + (int64_t)((double)i * 1e6 / rate));
				continue;
			}
			if (due > i + window)
				due = i + window;
		}
		if (due > count)
			due = count;
		uint64_t n = due - i;
		for (; i < due; i++) {
			if (mode == MODE_NCHAN)
				http_append(&out, i);
			else
				redis_append(i);
		}
		if (mode == MODE_NCHAN) {
			http_flush(&out);
			http_collect(n);
		} else {
			redis_collect(n);
		}
	}
	int64_t t1 = wsb_now_us();
	printf("{\"sent\":%" PRIu64 ",\"ok\":%" PRIu64 ",\"err\":%" PRIu64
	       ",\"start_us\":%" PRId64 ",\"end_us\":%" PRId64 "}\n",
	    count, n_ok, n_err, t0, t1);
	return n_err == 0 ? 0 : 1;
}
