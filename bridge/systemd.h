/*
 * systemd.h - the bridge's side of systemd's notify protocol (sd_notify):
 * READY=1 once the bus listeners are bound, STATUS= when the broker's
 * state changes, WATCHDOG=1 from a loop timer at half the unit's
 * WatchdogSec (so a loop that hangs stops feeding it and systemd restarts
 * the bridge), STOPPING=1 at the start of a graceful stop. Without
 * NOTIFY_SOCKET every call is a no-op. Loop thread only.
 */
#ifndef WSP_SYSTEMD_H
#define WSP_SYSTEMD_H

#include <stdbool.h>

#include "loop.h"

/* READY=1. */
void systemd_ready(void);

/* STATUS=<kind>=up|down, sent only when it changes. */
void systemd_status(const char *kind, bool up);

/*
 * If the service manager asked for a watchdog (WATCHDOG_USEC, and
 * WATCHDOG_PID naming us if set), sends WATCHDOG=1 now and every half
 * period from a timer on loop. Returns 0, or -1 if the timer could not be
 * armed.
 */
int systemd_watchdog_start(struct loop *loop);

/* STOPPING=1. */
void systemd_stopping(void);

#endif
