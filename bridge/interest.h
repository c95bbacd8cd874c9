/*
 * interest.h - which addresses the node subscribes at the broker, and when an
 * INTEREST_ADD may be acknowledged (proto/PROTOCOL.md "Interest").
 *
 * Per worker (slot, gen) the set of addresses it holds; per address the
 * number of workers holding it ("all" holds a permanent extra reference in
 * interest routing), whether the broker has it, and the workers waiting for an
 * ACK. A pure module: no I/O. Changes are collected and handed out by
 * interest_flush() as SUBSCRIBE/UNSUBSCRIBE (or one PSUBSCRIBE in broadcast
 * routing) commands of at most INTEREST_CHUNK names; ACKs are emitted
 * through the ack callback as soon as they are due. Names are addresses
 * without the broker's prefix. At most one command per address is in flight:
 * a change that arrives meanwhile waits for the broker's acknowledgement, so an
 * ACK never answers a stale SUBSCRIBE. An address nobody holds any more stays
 * subscribed for a grace period (interest_set_grace()) before it is
 * unsubscribed, so interest that comes and goes again costs the broker
 * nothing. Per-worker state hangs off struct worker (workers.h).
 * Single-threaded (bridge loop).
 */
#ifndef WSP_INTEREST_H
#define WSP_INTEREST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "envelope.h"
#include "workers.h"

#define INTEREST_CHUNK 500
/*
 * How long an address stays subscribed after its last holder left. Clients
 * that toggle a subscription, or reconnect (a page reload, a rolling
 * reload of the gateway moving every client within seconds), come back
 * well within this, and each SUBSCRIBE/UNSUBSCRIBE pair avoided is work
 * the shared broker does for every node. Short enough that a node stops
 * receiving traffic it no longer wants within seconds.
 */
#define INTEREST_GRACE_MS 3000

struct interest;

enum interest_cmd {
	INTEREST_SUBSCRIBE,
	INTEREST_UNSUBSCRIBE,
	INTEREST_PSUBSCRIBE, /* broadcast: names is empty, pattern is "*" */
};

/* An ACK is due for worker (slot, gen), request req_id. */
typedef void interest_ack_fn(void *arg, uint32_t slot, uint32_t gen,
    uint64_t req_id, enum ack_status status);

/*
 * Sends one command for names[0..n) (n <= INTEREST_CHUNK; the arrays are
 * borrowed for the call). Returns 0, or -1 if it could not be queued (the
 * link is going down; interest_link_down() is expected to follow).
 */
typedef int interest_cmd_fn(void *arg, enum interest_cmd cmd,
    const char *const *names, const size_t *lens, size_t n);

/*
 * Returns a new, empty state for interest (broadcast false) or broadcast
 * routing, with the broker considered not ready; or NULL on allocation
 * failure. ack is called (with arg) for every ACK. Free with
 * interest_free().
 */
struct interest *interest_new(bool broadcast, interest_ack_fn *ack, void *arg);
/* Frees the state, including what it keeps per worker. */
void interest_free(struct interest *in);

/* Monotonic milliseconds. */
typedef uint64_t interest_clock_fn(void *arg);

/*
 * Keeps released addresses subscribed for grace_ms (0, the default: none),
 * measured with clock. Their UNSUBSCRIBE is sent by the first
 * interest_flush() after that; interest_next_due() tells when.
 */
void interest_set_grace(struct interest *in, uint64_t grace_ms,
    interest_clock_fn *clock, void *clock_arg);

/* Monotonic time of the next grace expiry, or 0 if none is pending. */
uint64_t interest_next_due(const struct interest *in);

/*
 * INTEREST_ADD of worker (slot, gen). An invalid address is acked with
 * ACK_FAILED at once; an address the broker already has is acked ACK_OK at
 * once; otherwise the ACK follows the confirmation. Only the newest req_id of a
 * worker per address waits: a re-request replaces the older one. Returns
 * 0, or -1 on allocation failure (then acked ACK_FAILED).
 */
int interest_add(struct interest *in, struct worker *w, uint64_t req_id,
    const char *addr, size_t len);

/* INTEREST_DEL: the worker no longer holds addr (unknown: ignored). */
void interest_del(
    struct interest *in, struct worker *w, const char *addr, size_t len);

/*
 * INTEREST_SYNC: replaces the worker's whole set by addrs[0..n) (invalid
 * ones skipped and counted in *n_invalid if not NULL). No ACKs are sent;
 * pending waits of the worker for addresses it still holds are kept.
 * Returns 0, or -1 on allocation failure (the set may be partial).
 */
int interest_sync(struct interest *in, struct worker *w,
    const struct env_str *addrs, size_t n, size_t *n_invalid);

/* Forgets worker w: releases every address it holds and frees its state. */
void interest_forget(struct interest *in, struct worker *w);

/* The subscriber link is up: every wanted address is (re)subscribed at
 * the next flush. */
void interest_link_up(struct interest *in);

/* The subscriber link is gone: the broker holds nothing any more; waiting ACKs
 * stay queued until the subscriptions are back. */
void interest_link_down(struct interest *in);

/*
 * The broker lost the subscription of one address without being asked (a
 * shard failed over): it is requested again at the next flush.
 */
void interest_lost(struct interest *in, const char *addr, size_t len);

/*
 * Hands out the pending commands through fn (only while the link is up).
 * Returns the number of commands sent.
 */
size_t interest_flush(struct interest *in, interest_cmd_fn *fn, void *arg);

/* True if interest_flush() has something to send. */
bool interest_dirty(const struct interest *in);

/*
 * The broker acknowledged one address: subscribed, unsubscribed, or
 * (INTEREST_PSUBSCRIBE, addr ignored) the broadcast subscription. Emits the
 * ACKs that became due. Unknown names are ignored.
 */
void interest_confirmed(
    struct interest *in, enum interest_cmd cmd, const char *addr, size_t len);

/* A set of worker slots 1..INTEREST_SLOTS_MAX (bit slot - 1). */
#define INTEREST_SLOTS_MAX 256
struct interest_slots {
	uint64_t bits[INTEREST_SLOTS_MAX / 64];
};

/*
 * The slots with at least one worker (any generation) holding addr, into
 * *out (cleared first). Returns how many slots. Costs one lookup when
 * nobody holds addr, else one per known worker: the bus routes every
 * message with it.
 */
size_t interest_route(const struct interest *in, const char *addr, size_t len,
    struct interest_slots *out);

/* Addresses wanted (held by a worker or permanent). */
size_t interest_addresses(const struct interest *in);
/* Addresses the broker confirmed and still has (the pattern counts as one). */
size_t interest_subscribed(const struct interest *in);
/* Workers with at least one address. */
size_t interest_workers(const struct interest *in);
/* ACKs waiting for the broker. */
size_t interest_waiting(const struct interest *in);
/* Subscribed addresses nobody holds, in their grace period. */
size_t interest_lingering(const struct interest *in);

#endif
