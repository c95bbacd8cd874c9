/*
 * frame.h - a refcounted, immutable WebSocket payload with LWS_PRE bytes of
 * headroom, so lws can write the frame header in place.
 *
 * The fan-out path builds one frame per bus message per worker and queues a
 * reference on every receiving connection (connq.h); the last unref frees
 * it. Control replies use the same type so they queue in order with
 * messages. Worker loop only: the refcount is not atomic.
 */
#ifndef WSP_FRAME_H
#define WSP_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libwebsockets.h>

struct frame {
	uint32_t refs;
	uint32_t len;        /* payload bytes at buf + LWS_PRE */
	uint32_t cap;        /* payload capacity */
	bool binary;         /* send as a binary frame (else text) */
	unsigned char buf[]; /* LWS_PRE headroom, then cap payload bytes */
};

/*
 * Returns a new frame with room for cap payload bytes, len 0 and one
 * reference (the caller's), or NULL on allocation failure. The caller
 * writes into frame_data() and sets len (<= cap) before sharing it.
 */
struct frame *frame_new(size_t cap, bool binary);

/* frame_new() + copy of p[0..len). */
struct frame *frame_new_copy(const void *p, size_t len, bool binary);

static inline unsigned char *
frame_data(struct frame *f)
{
	return f->buf + LWS_PRE;
}

static inline struct frame *
frame_ref(struct frame *f)
{
	f->refs++;
	return f;
}

/* Drops one reference; frees the frame with the last. NULL is a no-op. */
void frame_unref(struct frame *f);

struct bus_msg;

/*
 * Builds the client frame for one bus message, once per worker. envelope
 * delivery: {"op":"msg","to":..,"from":..,"id":..,"data":..} with from and
 * id only when present (and valid UTF-8), data embedded for PAYLOAD_JSON, a
 * JSON string for PAYLOAD_TEXT, "data_b64" for PAYLOAD_BINARY. raw
 * delivery: the payload bytes, a binary frame for PAYLOAD_BINARY. Returns
 * a new frame (one reference) or NULL on allocation failure.
 */
struct frame *frame_build_msg(const struct bus_msg *m, bool raw);

#endif
