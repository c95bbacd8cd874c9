/*
 * fanout.h - a worker's routing state: which local connections want which
 * address, and the interest the worker holds at the bridge.
 *
 * One entry per address ("user:42", "channel:news", "all") in a hash map,
 * holding a list of memberships; a membership links one owner (a
 * connection) to one entry and sits both in the entry's list and in the
 * owner's list, so a delivery is one hash lookup plus a list walk and a
 * disconnect removes each membership in O(1). The first membership of an
 * address asks the bridge for it (INTEREST_ADD with a fresh req_id; the
 * entry is pending), the ACK makes it active (its memberships become
 * "ready" and the owner is told), the last membership leaving sends
 * INTEREST_DEL. An ADD not acknowledged within FANOUT_ACK_TIMEOUT_MS is
 * re-requested with a new req_id. Messages are passed only to "live"
 * memberships: those whose owner has announced them to its client
 * (`welcome`, `subscribed`). Pure: the bridge link, the connections and
 * the clock are reached through struct fanout_ops and arguments. Worker
 * loop only.
 */
#ifndef WSP_FANOUT_H
#define WSP_FANOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dlist.h"

#define FANOUT_ACK_TIMEOUT_MS 5000

enum fan_state {
	FAN_PENDING, /* INTEREST_ADD sent, no ACK yet */
	FAN_ACTIVE,  /* the bridge confirmed the Redis subscription */
};

struct fan_entry {
	struct dlist members;           /* struct fan_member.by_addr */
	struct dlist_node pending_node; /* in the pending list, oldest first */
	uint32_t refs;                  /* memberships */
	uint32_t live;                  /* memberships passed messages */
	enum fan_state state;
	uint64_t req_id;  /* of the last INTEREST_ADD sent */
	uint64_t sent_at; /* when it was sent (ms, caller's clock) */
	size_t addrlen;
	char addr[]; /* NUL-terminated */
};

struct fan_member {
	struct dlist_node by_addr;  /* in entry->members */
	struct dlist_node by_owner; /* in the owner's list */
	struct fan_entry *entry;    /* NULL once detached by a failed ACK */
	void *owner;                /* borrowed */
	bool ready;                 /* the entry is active */
	bool live;                  /* messages are passed to the owner */
	int tag;                    /* the owner's; untouched by fanout */
	void *udata;                /* the owner's; untouched by fanout */
};

struct fanout_ops {
	/* Ask the bridge for addr / tell it addr is no longer wanted. */
	void (*send_add)(
	    void *arg, uint64_t req_id, const char *addr, size_t len);
	void (*send_del)(void *arg, const char *addr, size_t len);
	/* The entry of m became active (m->ready is set). */
	void (*ready)(void *arg, struct fan_member *m);
	/* The bridge refused the entry of m: m is detached (m->entry is
	 * NULL); the owner must release it with fanout_leave(), now or
	 * later. */
	void (*failed)(void *arg, struct fan_member *m);
	/* One message for a live membership. */
	void (*deliver)(void *arg, struct fan_member *m, void *msg);
};

struct fanout;

/* Returns a new, empty routing state, or NULL. ops and arg are borrowed
 * for its life. The callbacks must not call fanout_join() or
 * fanout_leave(), except that failed may release the member it is given. */
struct fanout *fanout_new(const struct fanout_ops *ops, void *arg);
/* Frees every entry and membership without telling anyone. NULL is ok. */
void fanout_free(struct fanout *f);

/*
 * Adds a membership of owner to addr, appended to owner_list. Sends
 * INTEREST_ADD if addr is new; if addr is already active the membership is
 * ready at once (no ready callback: check m->ready). Returns the new
 * membership, or NULL on allocation failure.
 */
struct fan_member *fanout_join(struct fanout *f, const char *addr, size_t len,
    void *owner, struct dlist *owner_list, uint64_t now_ms);

/* Removes and frees m; the last membership of an address sends
 * INTEREST_DEL. NULL is ok. */
void fanout_leave(struct fanout *f, struct fan_member *m);

/* Lets messages reach m (only once ready). */
void fanout_set_live(struct fan_member *m);

/* The active entry for addr, or NULL. */
struct fan_entry *fanout_find(
    const struct fanout *f, const char *addr, size_t len);

/* Calls ops->deliver for every live membership of e; returns how many. */
uint32_t fanout_deliver(struct fanout *f, struct fan_entry *e, void *msg);

/* An ACK arrived. Unknown or superseded req_ids are ignored (returns -1);
 * failed is the bridge's status 1. */
int fanout_ack(struct fanout *f, uint64_t req_id, bool failed);

/* Re-requests every pending entry sent FANOUT_ACK_TIMEOUT_MS ago or
 * earlier; returns how many. */
uint32_t fanout_tick(struct fanout *f, uint64_t now_ms);

/* Re-requests every pending entry now (after INTEREST_SYNC). */
uint32_t fanout_resend_pending(struct fanout *f, uint64_t now_ms);

/* Calls fn for every entry (active and pending). fn must not modify f. */
void fanout_foreach(
    struct fanout *f, void (*fn)(void *arg, struct fan_entry *e), void *arg);

size_t fanout_count(const struct fanout *f);
size_t fanout_pending_count(const struct fanout *f);

#endif
