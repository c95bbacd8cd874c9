/*
 * bus.h - the bridge's end of the node bus: two nng sockets towards the
 * gateway workers. The bus (PUB, listens on ipc://<runtime_dir>/bus.ipc)
 * carries MSG/ACK/HEARTBEAT envelopes to every worker; the upstream (PULL,
 * listens on up.ipc) carries the workers' envelopes to the bridge.
 *
 * Bus envelopes are appended to a pending batch that is sent as one nng
 * message when it holds BUS_BATCH_MAX envelopes or BUS_BATCH_BYTES, and at
 * the end of every loop iteration (a loop hook), so batching only happens
 * under load and never adds latency. Upstream messages are drained from the
 * PULL socket's RECVFD (at most BUS_DRAIN_MAX per wakeup) and decoded; each
 * envelope is handed to the recv callback with the nng pipe it came on.
 * Pipe removals (an nng thread) are passed to the loop through an eventfd.
 * Both listeners repair themselves (ipc_listener.h). Does not interpret
 * envelopes. Loop thread only, except the pipe notifier.
 */
#ifndef WSP_BUS_H
#define WSP_BUS_H

#include <stdint.h>

#include "envelope.h"
#include "loop.h"

#define BUS_BATCH_MAX 64
#define BUS_BATCH_BYTES (64 * 1024)
#define BUS_DRAIN_MAX 256
#define BUS_SENDBUF 8192
#define BUS_RECVMAXSZ (1024 * 1024)

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
	uint64_t bus_envelopes;     /* envelopes put on the bus */
	uint64_t bus_messages;      /* nng messages sent (batches) */
	uint64_t bus_send_errors;   /* nng_sendmsg failures (batch lost) */
	uint64_t up_messages;       /* nng messages received */
	uint64_t up_envelopes;      /* upstream envelopes decoded */
	uint64_t listener_restarts; /* listeners recreated by the check */
};

/*
 * Listens on the bus and upstream URLs (ipc://...; mode 0660) and watches
 * them in loop. Returns a new bus, or NULL with a message naming the
 * failing call in err. Free with bus_close().
 */
struct bus *bus_open(struct loop *loop, const char *bus_url, const char *up_url,
    const struct bus_cbs *cbs, char *err, size_t errlen);

/* Sends what is batched, stops watching and closes both sockets. NULL ok. */
void bus_close(struct bus *b);

/*
 * Append one envelope to the bus batch (borrowed for the call). Return 0,
 * or -1 if it could not be encoded (counted by the caller).
 */
int bus_send_msg(struct bus *b, const struct bus_msg *m);
int bus_send_ack(struct bus *b, const struct bus_ack *a);
int bus_send_heartbeat(struct bus *b, const struct bus_heartbeat *hb);
int bus_send_range(struct bus *b, const struct bus_range *r);

/* Sends the pending batch now (also done by the loop hook). */
void bus_flush(struct bus *b);

/* A snapshot of the counters. */
void bus_stats(const struct bus *b, struct bus_stats *out);

#endif
