"""The gateway master pets systemd's watchdog (WATCHDOG=1) only while its
workers are healthy: every worker heartbeating through the master's pipe.
A worker that stops (SIGSTOP) stops the pets within a few seconds; they
resume when it does; SIGTERM brings STOPPING=1. systemd's side of the
notify protocol is played by the test (fake_systemd.py)."""

import os
import signal
import time

import wsp
from fake_systemd import FakeSystemd, stop_and_expect_stopping, watch_pets

PERIOD_S = 2.0  # WATCHDOG_USEC
SILENT_S = 5.0  # the master's limit for a silent worker


def test_watchdog_follows_worker_health(h):
    sd = FakeSystemd(h, "gateway", PERIOD_S)
    try:
        cl = wsp.Cluster(h, nodes=1, workers=2, gateway_env=sd.env())
        gw = cl.a.gateway
        ready = sd.wait_for("READY", "1", 20, check=gw.check_running)

        # Healthy: a pet at least every half period for three periods.
        watch_pets(sd, gw, ready[0], 3)

        # One stopped worker (of two): no pet for a whole period, within
        # its silence limit and a period.
        pid = sorted(gw.workers())[0]
        os.kill(pid, signal.SIGSTOP)
        stopped = time.monotonic()
        try:
            sd.wait_silent(stopped, SILENT_S + 3 * PERIOD_S,
                           "WATCHDOG=1 to stop with one worker stopped",
                           check=gw.check_running)
        finally:
            os.kill(pid, signal.SIGCONT)
        resumed = time.monotonic()
        sd.wait_for("WATCHDOG", "1", 3 * PERIOD_S, after=resumed,
                    check=gw.check_running)

        stop_and_expect_stopping(sd, gw)
    finally:
        sd.close()
