/*
 * hub.h - the bridge's two nng sockets: the bus (PUB, listens on
 * ipc://<runtime_dir>/bus.ipc) carrying MSG/ACK/HEARTBEAT envelopes to every
 * worker, and the upstream (PULL, listens on up.ipc) carrying the workers'
 * envelopes to the bridge.
 *
 * Bus envelopes are appended to a pending batch that is sent as one nng
 * message when it holds HUB_BATCH_MAX envelopes or HUB_BATCH_BYTES, and at
 * the end of every loop iteration (a loop hook), so batching only happens
 * under load and never adds latency. Upstream messages are drained from the
 * PULL socket's RECVFD (at most HUB_DRAIN_MAX per wakeup) and decoded; each
 * envelope is handed to the recv callback with the nng pipe it came on.
 * Pipe removals (an nng thread) are passed to the loop through an eventfd.
 * Both listeners are checked every HUB_CHECK_MS and recreated if they stop
 * accepting (an nng 1.5.2 bug, hub.c). Does not interpret envelopes. Loop
 * thread only, except the pipe notifier.
 */
#ifndef WSP_HUB_H
#define WSP_HUB_H

#include <stdint.h>

#include "envelope.h"
#include "loop.h"

#define HUB_BATCH_MAX 64
#define HUB_BATCH_BYTES (64 * 1024)
#define HUB_DRAIN_MAX 256
#define HUB_SENDBUF 8192
#define HUB_RECVMAXSZ (1024 * 1024)
/* Listener self-check period and answer timeout (see hub.c). */
#define HUB_CHECK_MS 2000
#define HUB_CHECK_TIMEOUT_MS 1000
#define HUB_QUIET_MS 20
#define HUB_QUIET_MAX_MS 10000

struct hub;

/* One decoded upstream envelope; env borrows the nng message for the call. */
typedef void hub_recv_fn(void *arg, uint32_t pipe_id, const struct up_env *env);
/* An upstream pipe (a worker's PUSH connection) closed. */
typedef void hub_pipe_fn(void *arg, uint32_t pipe_id);
/* An upstream message or envelope was unusable; reason is a drop name. */
typedef void hub_drop_fn(void *arg, const char *reason);

struct hub_cbs {
	hub_recv_fn *recv;
	hub_pipe_fn *pipe_removed;
	hub_drop_fn *drop;
	void *arg;
};

struct hub_stats {
	uint64_t bus_envelopes;     /* envelopes put on the bus */
	uint64_t bus_messages;      /* nng messages sent (batches) */
	uint64_t bus_send_errors;   /* nng_sendmsg failures (batch lost) */
	uint64_t up_messages;       /* nng messages received */
	uint64_t up_envelopes;      /* upstream envelopes decoded */
	uint64_t listener_restarts; /* listeners recreated by the check */
};

/*
 * Listens on the bus and upstream URLs (ipc://...; mode 0660) and watches
 * them in loop. Returns a new hub, or NULL with a message naming the
 * failing call in err. Free with hub_close().
 */
struct hub *hub_open(struct loop *loop, const char *bus_url, const char *up_url,
    const struct hub_cbs *cbs, char *err, size_t errlen);

/* Sends what is batched, stops watching and closes both sockets. */
void hub_close(struct hub *h);

/*
 * Append one envelope to the bus batch (borrowed for the call). Return 0,
 * or -1 if it could not be encoded (counted by the caller).
 */
int hub_bus_msg(struct hub *h, const struct bus_msg *m);
int hub_bus_ack(struct hub *h, const struct bus_ack *a);
int hub_bus_heartbeat(struct hub *h, const struct bus_heartbeat *hb);

/* Sends the pending batch now (also done by the loop hook). */
void hub_flush(struct hub *h);

const struct hub_stats *hub_stats(const struct hub *h);

#endif
