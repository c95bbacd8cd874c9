/*
 * systemd.c - sd_notify messages of the bridge (see systemd.h).
 */
#include <stddef.h>
#include <stdint.h>

#include <systemd/sd-daemon.h>

#include "log.h"
#include "systemd.h"

/* The last STATUS sent: -1 none yet, 0 down, 1 up. */
static int systemd_status_sent = -1;

void
systemd_ready(void)
{
	sd_notify(0, "READY=1");
}

void
systemd_status(const char *kind, bool up)
{
	if ((int)up == systemd_status_sent)
		return;
	systemd_status_sent = up;
	sd_notifyf(0, "STATUS=%s=%s", kind, up ? "up" : "down");
}

static void
systemd_watchdog_cb(struct loop *l, uint64_t id, void *arg)
{
	sd_notify(0, "WATCHDOG=1");
}

int
systemd_watchdog_start(struct loop *loop)
{
	uint64_t usec = 0, period_ms;

	if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0)
		return 0;
	/* A little under half the period: systemd's advice is half, and a
	 * timer may fire a few ms late. */
	period_ms = usec * 9 / 20 / 1000;
	if (period_ms == 0)
		period_ms = 1;
	sd_notify(0, "WATCHDOG=1");
	if (loop_timer_add(
		loop, period_ms, period_ms, systemd_watchdog_cb, NULL) == 0)
		return -1;
	log_info("systemd watchdog: WATCHDOG=1 every %llu ms",
	    (unsigned long long)period_ms);
	return 0;
}

void
systemd_stopping(void)
{
	sd_notify(0, "STOPPING=1");
}
