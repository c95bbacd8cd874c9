/*
 * workers.h - the bridge's one registry of the node's gateway workers.
 *
 * A worker is known by (slot, gen) from its first upstream envelope on,
 * with its pid, the nng pipe its envelopes come on, when it was last heard
 * from and its latest COUNTERS. It is forgotten on BYE, when its pipe
 * closes, or after silence; the forget callback given to workers_new()
 * runs first, so the modules that keep state per worker (interest.c,
 * presence.c, through the two state pointers) release it. The registry
 * knows nothing about those modules. Loop thread only.
 */
#ifndef WSP_WORKERS_H
#define WSP_WORKERS_H

#include <stddef.h>
#include <stdint.h>

#include "envelope.h"

struct worker {
	uint32_t slot, gen; /* the identity; never change */
	uint32_t pid;
	uint32_t pipe_id;      /* the pipe its last envelope came on */
	uint64_t last_seen_ms; /* monotonic */
	size_t n_counters;     /* its latest COUNTERS */
	char **names;
	uint64_t *values;
	/*
	 * State other modules keep per worker: each module sets, uses and
	 * frees its own pointer (interest_forget(), presence_forget()).
	 */
	void *interest_state;
	void *presence_state;
};

struct workers;

/* Called before a worker is freed; why is "bye", "pipe_closed", ... */
typedef void workers_forget_fn(void *arg, struct worker *w, const char *why);
typedef void workers_each_fn(void *arg, struct worker *w);

/* Returns an empty registry, or NULL. forget (with arg) is mandatory. */
struct workers *workers_new(workers_forget_fn *forget, void *arg);

/* Frees the registry and its workers without calling forget. NULL ok. */
void workers_free(struct workers *ws);

/*
 * The worker (slot, gen), created if new; records pid, pipe and now_ms as
 * last seen. Returns NULL on allocation failure.
 */
struct worker *workers_touch(struct workers *ws, const struct up_worker *uw,
    uint32_t pipe_id, uint64_t now_ms);

/* The worker whose envelopes last came on pipe_id, or NULL. */
struct worker *workers_by_pipe(struct workers *ws, uint32_t pipe_id);

/* Calls forget, then removes and frees w. */
void workers_forget(struct workers *ws, struct worker *w, const char *why);

/* Forgets ("timeout") every worker silent for more than timeout_ms. */
void workers_expire(struct workers *ws, uint64_t now_ms, uint64_t timeout_ms);

/* Replaces w's counters by a copy of c (left empty on allocation failure). */
void workers_set_counters(struct worker *w, const struct up_counters *c);

size_t workers_count(const struct workers *ws);

/* Calls fn for every worker; fn must not forget any. */
void workers_each(struct workers *ws, workers_each_fn *fn, void *arg);

#endif
