/*
 * send.h - the write path: a connection's queued frames to its socket.
 *
 * Message path: Redis -> bridge -> bus -> busrx -> deliver -> conn -> send.
 * Frames are only queued by conn.c, which marks the connection in the
 * worker's flush list; when the loop pass is over (a bus batch, a client
 * message, a timer), the worker calls send_flush_pending(), which writes
 * every marked queue straight from the loop: one send per connection per
 * pass with the queued frames coalesced (send_pack()), and no POLLOUT
 * round trip while the socket takes everything. Only what a choked socket
 * could not take waits for LWS_CALLBACK_SERVER_WRITEABLE
 * (send_writeable()), which also sends the close frame of a connection
 * being closed. Worker loop only.
 */
#ifndef WSP_SEND_H
#define WSP_SEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct conn;
struct connq;
struct worker;

/*
 * Frames per write: per writeable callback, and per pass for a connection.
 * It matches BUSRX_BATCH (envelopes taken from the bus per wakeup): with a
 * smaller cap a connection that receives a whole batch falls behind by
 * the difference every loop turn even though its socket is not choked,
 * and a burst would hit max_queued_bytes several times sooner than the
 * client's real speed warrants. A choked socket still stops the loop early
 * (lws_partial_buffered).
 */
#define SEND_BATCH 256
/*
 * Queued frames are copied into one send of at most this many bytes
 * (headers included): a burst costs one syscall per connection per loop
 * pass instead of one per frame. A larger frame is written on its own.
 */
#define SEND_COALESCE_MAX (64 * 1024)

/* Writes the unmasked server frame header for a payload of len bytes at
 * p; returns its size (2, 4 or 10 bytes). */
size_t send_header(unsigned char *p, uint64_t len, bool binary);

/* The size send_header() writes for len. */
static inline size_t
send_header_len(uint64_t len)
{
	return len < 126 ? 2 : len < 65536 ? 4 : 10;
}

/*
 * How many of q's oldest frames (at most max_frames) go into one send:
 * as many as fit SEND_COALESCE_MAX with their headers, at least one (a
 * frame too large to copy goes alone). *wire is set to their bytes on the
 * wire, *payload to their payload bytes. q must not be empty.
 */
uint32_t send_pack(const struct connq *q, uint32_t max_frames, size_t *wire,
    uint64_t *payload);

/* Copies q's n oldest frames, framed, to buf (send_pack()'s *wire
 * bytes); returns the bytes written. */
size_t send_copy(const struct connq *q, uint32_t n, unsigned char *buf);

/* LWS_CALLBACK_SERVER_WRITEABLE: sends the close frame of a closing
 * connection, or writes queued frames (at most SEND_BATCH). Returns -1
 * when lws must close the connection. */
int send_writeable(struct conn *c);

/*
 * A WebSocket ping to c (keepalive.c): written at once when nothing is
 * queued or held for c, otherwise right after its queue drains, so it
 * never splits a frame. Nothing for a connection that is closing.
 */
void send_ping(struct conn *c);

/*
 * After each pass of the worker's loop, outside every lws callback: lets
 * closing connections leave their memberships (conn_release()) and writes
 * the queue of every connection marked meanwhile. Safe for plain ws over
 * TCP in lws 4.1.6: lws_write() appends to the wsi's buflist when output
 * is already pending and buffers the unsent tail of a short send()
 * itself, asking for POLLOUT; a socket with buffered output, or closing,
 * is left to the writeable callback. A failing send kills the connection
 * asynchronously.
 */
void send_flush_pending(struct worker *w);

#endif
