/*
 * presence.h - who is connected to this node: connections per user, per
 * worker and summed over the node, feeding the `<prefix>:presence:<node>`
 * hash (user -> connections on this node).
 *
 * A pure module: workers report connect/disconnect EVENTs and, after a
 * reconnect, their whole table (INTEREST_SYNC); a forgotten worker's
 * connections are removed. Users whose node total changed are handed out
 * by presence_flush() (0 means "delete the field"), so the hash is
 * written incrementally. Single-threaded (bridge loop).
 */
#ifndef WSP_PRESENCE_H
#define WSP_PRESENCE_H

#include <stddef.h>
#include <stdint.h>

#include "envelope.h"
#include "workers.h"

struct presence;

/* user[0..len) now has conns connections on the node (0: none). */
typedef void presence_emit_fn(
    void *arg, const char *user, size_t len, uint64_t conns);

/* Returns a new, empty table, or NULL. Free with presence_free(). */
struct presence *presence_new(void);
void presence_free(struct presence *p);

/*
 * A connection of user opened (delta +1) or closed (-1) on worker
 * w. Invalid user ids and closes of unknown connections are
 * ignored. Returns 0, or -1 on allocation failure.
 */
int presence_event(struct presence *p, struct worker *w, const char *user,
    size_t len, int delta);

/* Replaces the worker's table (name = user id, value = connections). */
int presence_sync(struct presence *p, struct worker *w,
    const struct up_counter *users, size_t n);

/* Removes every connection of the worker. */
void presence_forget(struct presence *p, struct worker *w);

/* The end of a presence_flush() batch; emitted strings are still valid. */
typedef void presence_done_fn(void *arg);

/* Emits each user whose node total changed since the last flush, then
 * calls done (if not NULL); users at 0 are freed after that. */
void presence_flush(struct presence *p, presence_emit_fn *fn,
    presence_done_fn *done, void *arg);

/* Emits every connected user (a full rewrite) and clears the changes. */
void presence_each(struct presence *p, presence_emit_fn *fn, void *arg);

/* Connections and distinct users on the node. */
uint64_t presence_connections(const struct presence *p);
size_t presence_users(const struct presence *p);

#endif
