/*
 * bus.h - the bridge's end of the node bus: nng sockets towards the
 * gateway workers. The bus is one stream per worker slot: an nng PUB
 * listening on ipc://<runtime_dir>/bus<slot>.ipc, dialled by the worker(s)
 * of that slot (two generations during a rolling reload), each stream
 * with its own MSG sequence numbers and heartbeats. A message goes only to
 * the streams of the slots that want it, so a worker no longer wakes up
 * for messages it has no target for. The upstream (PULL, listens on
 * up.ipc) carries the workers' envelopes to the bridge.
 *
 * Bus envelopes are appended to the stream's pending batch, sent as one
 * nng message when it holds BUS_BATCH_MAX envelopes or BUS_BATCH_BYTES,
 * and at the end of every loop iteration (a loop hook), so batching only
 * happens under load and never adds latency. Upstream messages are
 * drained from the PULL socket's RECVFD (at most BUS_DRAIN_MAX per wakeup)
 * and decoded; each envelope is handed to the recv callback with the nng
 * pipe it came on. Pipe removals (an nng thread) are passed to the loop
 * through an eventfd. Every listener repairs itself (ipc_listener.h).
 * Does not interpret envelopes. Loop thread only, except the pipe
 * notifier.
 */
#ifndef WSP_BUS_H
#define WSP_BUS_H

#include <stdbool.h>
#include <stdint.h>

#include "envelope.h"
#include "loop.h"

#define BUS_BATCH_MAX 64
#define BUS_BATCH_BYTES (64 * 1024)
#define BUS_DRAIN_MAX 256
#define BUS_SENDBUF 8192
#define BUS_RECVMAXSZ (1024 * 1024)
/* Worker slots are 1..BUS_SLOTS_MAX (the gateway's workers limit). */
#define BUS_SLOTS_MAX 256

struct bus;

/* One decoded upstream envelope; env borrows the nng message for the call. */
typedef void bus_recv_fn(void *arg, uint32_t pipe_id, const struct up_env *env);
/* An upstream pipe (a worker's PUSH connection) closed. */
typedef void bus_pipe_fn(void *arg, uint32_t pipe_id);
/* An upstream message or envelope was unusable; reason is a drop name. */
typedef void bus_drop_fn(void *arg, const char *reason);

struct bus_cbs {
	bus_recv_fn *recv;
	bus_pipe_fn *pipe_removed;
	bus_drop_fn *drop;
	void *arg;
};

struct bus_stats {
	uint64_t bus_envelopes;     /* envelopes put on the bus (all slots) */
	uint64_t bus_messages;      /* nng messages sent (batches) */
	uint64_t bus_send_errors;   /* nng_sendmsg failures (batch lost) */
	uint64_t up_messages;       /* nng messages received */
	uint64_t up_envelopes;      /* upstream envelopes decoded */
	uint64_t listener_restarts; /* listeners recreated by the check */
	uint64_t msg_seqs;          /* sum of every stream's last MSG seq */
	uint32_t streams;           /* slot streams open */
};

/*
 * Listens on up_url and on one bus stream per slot 1..slots (bus_url is
 * the node's "ipc://<dir>/bus.ipc"; slot s listens on bus_slot_url() of
 * it), all ipc:// with mode 0660, and watches them in loop. Returns a new
 * bus, or NULL with a message naming the failing call in err. Free with
 * bus_close().
 */
struct bus *bus_open(struct loop *loop, const char *bus_url, const char *up_url,
    uint32_t slots, const struct bus_cbs *cbs, char *err, size_t errlen);

/* Sends what is batched, stops watching and closes every socket. NULL ok. */
void bus_close(struct bus *b);

/*
 * Opens the stream of slot (a worker of a slot beyond the ones opened at
 * start, e.g. after the gateway's worker count grew). 0 if it is open,
 * -1 if slot is out of range or it cannot be opened (logged).
 */
int bus_slot_open(struct bus *b, uint32_t slot);

/*
 * Appends a history range answer (or one chunk of it) to the stream of
 * r->slot only: it is meant for one worker (r->slot, r->gen) and consumes
 * no MSG seq. 0, or -1 if the stream is not open or r cannot be encoded.
 */
int bus_send_range(struct bus *b, const struct bus_range *r);

/* True if slot's stream is open. */
bool bus_slot_is_open(const struct bus *b, uint32_t slot);

/*
 * Appends one MSG to slot's stream: m->seq is set to the stream's next
 * sequence number (m->epoch is the caller's). The envelope is borrowed for
 * the call. Returns 0, or -1 if the stream is not open or m could not be
 * encoded (counted by the caller; no sequence number is consumed).
 */
int bus_send_msg(struct bus *b, uint32_t slot, struct bus_msg *m);

/* Appends m to every open stream, each with its own seq. Returns the
 * number of streams it went to; -1 if any failed. */
int bus_send_msg_all(struct bus *b, struct bus_msg *m);

/* Appends an ACK to the stream of a->slot. 0, or -1 as above. */
int bus_send_ack(struct bus *b, const struct bus_ack *a);

/* Appends a HEARTBEAT to every open stream, with that stream's last_seq
 * (hb->last_seq is overwritten). Returns the number of streams. */
int bus_send_heartbeat(struct bus *b, struct bus_heartbeat *hb);

/*
 * Appends one envelope of any kind to slot's stream only: enc writes it
 * into out (all or nothing; 0 or -1) from env. It consumes no MSG sequence
 * number, like an ACK: for answers meant for one worker. Returns 0, or -1
 * if the stream is not open or enc failed.
 */
typedef int bus_encode_fn(msgpack_sbuffer *out, const void *env);
int bus_send_worker(
    struct bus *b, uint32_t slot, bus_encode_fn *enc, const void *env);

/* Slot's last MSG sequence number (0: none, or not open). */
uint64_t bus_slot_last_seq(const struct bus *b, uint32_t slot);

/* Sends every pending batch now (also done by the loop hook). */
void bus_flush(struct bus *b);

/* A snapshot of the counters. */
void bus_stats(const struct bus *b, struct bus_stats *out);

#endif
