"""Both daemons under systemd's notify protocol, with this test playing
systemd: a unix datagram socket as NOTIFY_SOCKET, WATCHDOG_USEC = 2 s and
WATCHDOG_PID = the daemon's own pid (the bridge also without it, as
WATCHDOG_PID is optional; the units say Type=notify,
NotifyAccess=main, WatchdogSec=10). Each daemon must send

- READY=1 once it serves,
- WATCHDOG=1 at least every half period (1 s, plus fake_systemd.SLACK_S for the
  scheduler) from READY=1 on, watched for 3 periods: systemd aborts a
  service whose pets are a full period apart,
- STOPPING=1 on SIGTERM, then exit 0,

every message from the main pid (NotifyAccess=main drops any other). The
gateway master pets the watchdog only while its workers are healthy: with
every worker stopped (SIGSTOP) the pets stop, so that systemd restarts the
service, and they resume once the workers run again.
"""

import os
import signal
import time

import pytest

import wsp
from fake_systemd import (AS_SYSTEMD_CHILD, FakeSystemd,
                          stop_and_expect_stopping, watch_pets)

PERIOD_S = 2.0
PERIODS = 3


def gateway_under_systemd(h, sd):
    """A node with 2 workers and its bridge, whose gateway runs as
    systemd's child with sd as NOTIFY_SOCKET; returns (node, time of
    READY=1)."""
    redis = wsp.RedisServer(h).start()
    node = wsp.Node(h, "a", redis, workers=2)
    node.start_bridge()
    node.start_gateway(env=sd.env(), wrap=AS_SYSTEMD_CHILD)
    ready = sd.wait_for("READY", "1", 20, check=node.gateway.check_running)
    return node, ready[0]


# Without WATCHDOG_PID as well: it is optional, and a daemon must not
# take its absence for "not for me".
@pytest.mark.parametrize("wrap", [AS_SYSTEMD_CHILD, []],
                         ids=["watchdog_pid", "no_watchdog_pid"])
def test_bridge_ready_watchdog_stopping(h, wrap):
    redis = wsp.RedisServer(h).start()
    node = wsp.Node(h, "a", redis, workers=1)
    sd = FakeSystemd(h, "bridge", PERIOD_S)
    try:
        node.start_bridge(env=sd.env(), wrap=wrap)
        br = node.bridge
        ready = sd.wait_for("READY", "1", 20, check=br.check_running)
        watch_pets(sd, br, ready[0], PERIODS)
        stop_and_expect_stopping(sd, br)
        assert sd.senders() == {br.pid}, \
            f"messages not from the main pid {br.pid}: {sd.summary()}"
    finally:
        sd.close()


def test_gateway_ready_watchdog_stopping(h):
    sd = FakeSystemd(h, "gateway", PERIOD_S)
    try:
        node, ready = gateway_under_systemd(h, sd)
        gw = node.gateway
        watch_pets(sd, gw, ready, PERIODS)
        c = node.connect(wsp.uid("sd"))
        stop_and_expect_stopping(sd, gw)
        assert c.wait_closed() == 1001  # drained: going away
        assert sd.senders() == {gw.pid}, \
            f"messages not from the master pid {gw.pid}: {sd.summary()}"
    finally:
        sd.close()


def test_gateway_watchdog_stops_while_workers_are_stopped(h):
    """Hung workers (SIGSTOP) stop the pets: systemd then restarts the
    service. Pets resume once the workers run again."""
    sd = FakeSystemd(h, "gateway", PERIOD_S)
    try:
        node, ready = gateway_under_systemd(h, sd)
        gw = node.gateway
        sd.wait_for("WATCHDOG", "1", PERIOD_S, after=ready,
                    check=gw.check_running)
        workers = sorted(gw.workers())
        assert len(workers) == 2
        t_stop = time.monotonic()
        try:
            for pid in workers:
                os.kill(pid, signal.SIGSTOP)
            sd.wait_silent(t_stop, 20, "WATCHDOG=1 to stop for a whole "
                           "period while every worker is stopped",
                           check=gw.check_running)
        finally:
            for pid in workers:
                os.kill(pid, signal.SIGCONT)
        t_cont = time.monotonic()
        sd.wait_for("WATCHDOG", "1", 10, after=t_cont,
                    check=gw.check_running)
        assert sorted(gw.workers()) == workers, "workers were replaced"
        c = node.connect(wsp.uid("sd"))
        assert c.request({"op": "ping", "ref": 1}) == {"op": "pong", "ref": 1}
    finally:
        sd.close()
