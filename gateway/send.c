/*
 * send.c - queued frames to the socket, coalesced, after each loop pass
 * (see send.h).
 */
#include "send.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include <libwebsockets.h>

#include "conn.h"
#include "connq.h"
#include "worker.h"

/* Per-process buffer for coalesced sends (workers are single-threaded),
 * with lws' headroom in front. */
static unsigned char send_buf[LWS_PRE + SEND_COALESCE_MAX];

/*
 * A server's ping: FIN + opcode 9 and a 2-byte payload. Not empty: lws
 * 4.1.6 does not pass a PONG without payload to the protocol callback,
 * and keepalive.c needs to see the answer. Never written to (lws copies a
 * short write's tail, it does not modify the buffer).
 */
static unsigned char send_ping_frame[LWS_PRE + 4] = {
    [LWS_PRE] = 0x89, 2, 'k', 'a'};

size_t
send_header(unsigned char *p, uint64_t len, bool binary)
{
	int i;

	p[0] = 0x80 | (binary ? 0x2 : 0x1); /* FIN, text or binary */
	if (len < 126) {
		p[1] = (unsigned char)len;
		return 2;
	}
	if (len < 65536) {
		p[1] = 126;
		p[2] = (unsigned char)(len >> 8);
		p[3] = (unsigned char)len;
		return 4;
	}
	p[1] = 127;
	for (i = 0; i < 8; i++)
		p[2 + i] = (unsigned char)(len >> (56 - 8 * i));
	return 10;
}

uint32_t
send_pack(
    const struct connq *q, uint32_t max_frames, size_t *wire, uint64_t *payload)
{
	const struct frame *f;
	size_t total = 0, fl;
	uint64_t bytes = 0;
	uint32_t n;

	for (n = 0; n < q->count && n < max_frames; n++) {
		f = connq_at(q, n);
		fl = send_header_len(f->len) + f->len;
		if (total + fl > SEND_COALESCE_MAX)
			break;
		total += fl;
		bytes += f->len;
	}
	if (n == 0) {
		/* Too large to copy: on its own. */
		f = connq_at(q, 0);
		n = 1;
		total = send_header_len(f->len) + f->len;
		bytes = f->len;
	}
	*wire = total;
	*payload = bytes;
	return n;
}

size_t
send_copy(const struct connq *q, uint32_t n, unsigned char *buf)
{
	struct frame *f;
	size_t off = 0;
	uint32_t i;

	for (i = 0; i < n; i++) {
		f = connq_at(q, i);
		off += send_header(buf + off, f->len, f->binary);
		memcpy(buf + off, frame_data(f), f->len);
		off += f->len;
	}
	return off;
}

/*
 * Sends p[0..len) (whole frames, already framed) on c's socket while lws
 * holds no output of its own for it: straight to send(), the common case,
 * without lws' per-write work. What the socket does not take is handed to
 * lws_write(), which tries once more, keeps the rest in the wsi's buflist
 * (in order, before anything written later) and asks for POLLOUT. Returns
 * 0, or -1 when the socket failed.
 */
static int
send_bytes(struct conn *c, unsigned char *p, size_t len)
{
	ssize_t r = send(lws_get_socket_fd(c->wsi), p, len, MSG_NOSIGNAL);

	if (r == (ssize_t)len)
		return 0;
	if (r < 0) {
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			return -1;
		r = 0;
	}
	return lws_write(c->wsi, p + r, len - (size_t)r, LWS_WRITE_RAW) <
		       (int)(len - (size_t)r)
		   ? -1
		   : 0;
}

/*
 * Writes up to SEND_BATCH queued frames, several per send when they fit
 * SEND_COALESCE_MAX together, and stops early once lws holds output back
 * (the socket took less than offered). lws_write() never needs a retry: a
 * short send()'s tail goes to the wsi's buflist. Returns 0, or -1 after a
 * failed send.
 */
static int
send_queue(struct conn *c)
{
	struct worker *w = c->w;
	struct frame *f;
	uint32_t k = 0, n, i;
	size_t wire, hl;
	uint64_t bytes;

	while (!connq_empty(&c->q) && k < SEND_BATCH) {
		if (lws_partial_buffered(c->wsi))
			break; /* lws still holds output: it calls back */
		n = send_pack(&c->q, SEND_BATCH - k, &wire, &bytes);
		if (n == 1) {
			/* One frame, or one too large to copy: framed in
			 * place in its headroom (the header is the same for
			 * every connection that shares the frame). */
			f = connq_peek(&c->q);
			hl = send_header_len(f->len);
			send_header(frame_data(f) - hl, f->len, f->binary);
			if (send_bytes(c, frame_data(f) - hl, hl + f->len) ==
			    -1)
				return -1;
		} else {
			send_copy(&c->q, n, send_buf + LWS_PRE);
			if (send_bytes(c, send_buf + LWS_PRE, wire) == -1)
				return -1;
		}
		for (i = 0; i < n; i++)
			frame_unref(connq_pop(&c->q));
		k += n;
		w->c.frames_out += n;
		w->c.bytes_out += bytes;
	}
	if (c->ping_due && connq_empty(&c->q) &&
	    !lws_partial_buffered(c->wsi)) {
		c->ping_due = false;
		return send_bytes(c, send_ping_frame + LWS_PRE, 4);
	}
	return 0;
}

/* A direct write failed: lws kills the socket asynchronously; the frames
 * left go with it (counted by conn_free()). */
static void
send_failed(struct conn *c)
{
	c->dead = true;
	c->reason = "error";
	lws_set_timeout(
	    c->wsi, PENDING_TIMEOUT_USER_REASON_BASE + 2, LWS_TO_KILL_ASYNC);
}

void
send_ping(struct conn *c)
{
	if (c->close_code != 0 || c->peer_closed || c->dead)
		return;
	c->ping_due = true;
	if (!connq_empty(&c->q) || lws_partial_buffered(c->wsi)) {
		lws_callback_on_writable(c->wsi); /* after the queue */
		return;
	}
	if (send_queue(c) == -1)
		send_failed(c);
}

static const char *
send_close_text(int code)
{
	switch (code) {
	case 1001:
		return "going away";
	case 1008:
		return "policy violation";
	case 1009:
		return "message too big";
	case 1013:
		return "try again later";
	case 4001:
		return "unauthorized";
	default:
		return "";
	}
}

int
send_writeable(struct conn *c)
{
	if (c->close_code != 0) {
		const char *t = c->close_msg != NULL
				    ? c->close_msg
				    : send_close_text(c->close_code);

		lws_close_reason(c->wsi, (enum lws_close_status)c->close_code,
		    (unsigned char *)(uintptr_t)t, strlen(t));
		return -1;
	}
	if (send_queue(c) == -1) {
		c->reason = "error";
		return -1;
	}
	if (!connq_empty(&c->q))
		lws_callback_on_writable(c->wsi);
	return 0;
}

/* Writes c's queue from outside its callbacks (see send_flush_pending()). */
static void
send_flush(struct conn *c)
{
	if (c->close_code != 0 && !c->left)
		conn_release(c);
	if (connq_empty(&c->q) || c->dead)
		return;
	/*
	 * Closing by us (the writeable callback sends the close frame) or
	 * by the peer, or lws still holds output (the writeable callback
	 * goes on once that is sent). Not checked, to keep the wsi's ws
	 * part out of the hot path (lws_get_close_length(), a cache miss
	 * per delivery): lws closing after a client's protocol error (bad
	 * UTF-8, bad opcode); frames written between its close frame and
	 * the client's close echo are ignored by the client.
	 */
	if (c->close_code != 0 || c->peer_closed ||
	    lws_partial_buffered(c->wsi)) {
		lws_callback_on_writable(c->wsi);
		return;
	}
	if (send_queue(c) == -1) {
		send_failed(c);
		return;
	}
	if (!connq_empty(&c->q))
		lws_callback_on_writable(c->wsi);
}

void
send_flush_pending(struct worker *w)
{
	struct dlist_node *n;

	while ((n = dlist_first(&w->flush)) != NULL) {
		dlist_remove(n);
		send_flush(DLIST_ENTRY(n, struct conn, flush_node));
	}
}
