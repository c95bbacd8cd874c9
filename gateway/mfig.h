/*
 * mfig.h - the gateway master's own figures: worker restarts, reloads and
 * crash loops.
 *
 * The master must not use nng (it does not survive fork), so it cannot
 * report to the bridge itself. It keeps these figures in one shared
 * anonymous page mapped before the first fork; every worker inherits the
 * mapping, reads the figures and sends them upstream with its own counters
 * (report.c, as the master_* rows of proto/counters.h; proto/PROTOCOL.md,
 * "The master's figures"). Only the master writes; the values are atomics
 * so that no reader sees a torn one.
 */
#ifndef WSP_MFIG_H
#define WSP_MFIG_H

#include <stdatomic.h>
#include <stdint.h>

enum mfig_what {
	MFIG_RESTARTS,    /* workers respawned after dying */
	MFIG_RELOADS,     /* SIGHUP reloads started (config accepted) */
	MFIG_CRASH_LOOPS, /* crash loops detected (and logged) */
	MFIG_COUNT
};

struct mfig {
	_Atomic uint64_t v[MFIG_COUNT];
};

/* Maps the shared page, zeroed. Returns NULL with errno set on failure. */
struct mfig *mfig_map(void);

/* Unmaps it. NULL is ok. */
void mfig_unmap(struct mfig *f);

/* Master: counts one event. NULL is ok (no page: nothing is reported). */
void mfig_add(struct mfig *f, enum mfig_what what);

/* Worker: the current value (0 if f is NULL). */
uint64_t mfig_get(const struct mfig *f, enum mfig_what what);

#endif
