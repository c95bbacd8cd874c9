/*
 * interest.h - which Redis channels the node subscribes, and when an
 * INTEREST_ADD may be acknowledged (proto/PROTOCOL.md "Interest").
 *
 * Per worker (slot, gen) the set of addresses it holds; per address the
 * number of workers holding it ("all" holds a permanent extra reference in
 * interest routing), whether Redis has it, and the workers waiting for an
 * ACK. A pure module: no I/O. Changes are collected and handed out by
 * interest_flush() as SUBSCRIBE/UNSUBSCRIBE (or one PSUBSCRIBE in broadcast
 * routing) commands of at most INTEREST_CHUNK names; ACKs are emitted
 * through the ack callback as soon as they are due. Names are addresses
 * without the Redis prefix. At most one command per address is in flight:
 * a change that arrives meanwhile waits for Redis' confirmation, so an ACK
 * never answers a stale SUBSCRIBE. Single-threaded (bridge loop).
 */
#ifndef WSP_INTEREST_H
#define WSP_INTEREST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "envelope.h"

#define INTEREST_CHUNK 500

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
 * routing, with the Redis link considered down; or NULL on allocation
 * failure. ack is called (with arg) for every ACK. Free with
 * interest_free().
 */
struct interest *interest_new(bool broadcast, interest_ack_fn *ack, void *arg);
void interest_free(struct interest *in);

/*
 * INTEREST_ADD of worker (slot, gen). An invalid address is acked with
 * ACK_FAILED at once; an address Redis already has is acked ACK_OK at once;
 * otherwise the ACK follows the confirmation. Only the newest req_id of a
 * worker per address waits: a re-request replaces the older one. Returns
 * 0, or -1 on allocation failure (then acked ACK_FAILED).
 */
int interest_add(struct interest *in, uint32_t slot, uint32_t gen,
    uint64_t req_id, const char *addr, size_t len);

/* INTEREST_DEL: the worker no longer holds addr (unknown: ignored). */
void interest_del(struct interest *in, uint32_t slot, uint32_t gen,
    const char *addr, size_t len);

/*
 * INTEREST_SYNC: replaces the worker's whole set by addrs[0..n) (invalid
 * ones skipped and counted in *n_invalid if not NULL). No ACKs are sent;
 * pending waits of the worker for addresses it still holds are kept.
 * Returns 0, or -1 on allocation failure (the set may be partial).
 */
int interest_sync(struct interest *in, uint32_t slot, uint32_t gen,
    const struct env_str *addrs, size_t n, size_t *n_invalid);

/* Forgets worker (slot, gen): releases every address it holds. */
void interest_forget(struct interest *in, uint32_t slot, uint32_t gen);

/* The subscriber link is up: every wanted address is (re)subscribed at
 * the next flush. */
void interest_link_up(struct interest *in);

/* The subscriber link is gone: Redis holds nothing any more; waiting ACKs
 * stay queued until the subscriptions are back. */
void interest_link_down(struct interest *in);

/*
 * Hands out the pending commands through fn (only while the link is up).
 * Returns the number of commands sent.
 */
size_t interest_flush(struct interest *in, interest_cmd_fn *fn, void *arg);

/* True if interest_flush() has something to send. */
bool interest_dirty(const struct interest *in);

/*
 * Redis confirmed one name: ["subscribe", ch, n], ["unsubscribe", ch, n]
 * (addr is ch without the prefix) or ["psubscribe", pattern, n] (addr
 * ignored). Emits the ACKs that became due. Unknown names are ignored.
 */
void interest_confirmed(
    struct interest *in, enum interest_cmd cmd, const char *addr, size_t len);

/* Addresses wanted (held by a worker or permanent). */
size_t interest_addresses(const struct interest *in);
/* Addresses Redis confirmed and still has (the pattern counts as one). */
size_t interest_subscribed(const struct interest *in);
/* Workers with at least one address. */
size_t interest_workers(const struct interest *in);
/* ACKs waiting for Redis. */
size_t interest_waiting(const struct interest *in);

#endif
