"""Keepalive at scale: 6,000 idle connections on one worker, pinged every
second, all answering, stay open and cost the worker little CPU.

libwebsockets 4.1.6 kept each connection's ping/hang-up timer in one list
per thread, sorted by a linear walk from the earliest entry, and every
new deadline is the latest one: every establishment, ping and pong walked
the whole list. At 6,000 connections pinged each second that is ~12,000
walks of 6,000 nodes per second, a worker busy on its timers alone (and
at 16,000 connections per worker the connection rate collapsed). The
gateway's keepalive (gateway/keepalive.c) does the same job in O(1) per
event. Two helper processes (tests/tools/wsp_pongers.py) hold the
connections and answer pings; both are bounded in time and stopped by
PID.
"""

import os
import subprocess
import sys
import threading
import time

import wsp

HELPERS = 2
PER_HELPER = 3000
MEASURE_S = 5.0
TOOL = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                    "..", "tools", "wsp_pongers.py")


class Pongers:
    """One helper process and the figures of its last report line."""

    def __init__(self, port, conns, prefix, duration):
        self.p = subprocess.Popen(
            [sys.executable, TOOL, "--port", str(port), "--conns",
             str(conns), "--prefix", prefix, "--duration", str(duration)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.fig = {"open": 0, "pings": 0, "closed": 0, "failed": 0}
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        for line in self.p.stdout:
            parts = line.split()
            if len(parts) == 8:
                self.fig = {parts[i]: int(parts[i + 1])
                            for i in range(0, 8, 2)}

    def stop(self):
        if self.p.poll() is None:
            os.kill(self.p.pid, 9)
        self.p.wait(timeout=10)
        self.t.join(timeout=5)


def cpu_s(pid):
    """utime + stime of pid, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def total(helpers, key):
    return sum(x.fig[key] for x in helpers)


def test_thousands_of_idle_connections_are_pinged_cheaply(h):
    c = wsp.Cluster(h, nodes=1, workers=1, conf={"gateway": {
        "ping_interval_s": 1, "idle_timeout_s": 4}})
    node = c.a
    node.wait_attached()
    (worker,) = node.gateway.workers()
    helpers = [Pongers(node.port, PER_HELPER, f"pong{i}-", 90)
               for i in range(HELPERS)]
    try:
        want = HELPERS * PER_HELPER
        wsp.wait_until(lambda: total(helpers, "open") >= want, 60,
                       f"{want} connections open",
                       check=node.check_running, interval=0.5)
        # Every connection through at least one ping round first.
        p0 = total(helpers, "pings")
        wsp.wait_until(lambda: total(helpers, "pings") >= p0 + want, 20,
                       "a ping to every connection", interval=0.2)

        p0, c0, t0 = total(helpers, "pings"), cpu_s(worker), time.monotonic()
        time.sleep(MEASURE_S)
        p1, c1, t1 = total(helpers, "pings"), cpu_s(worker), time.monotonic()
        pings_per_s = (p1 - p0) / (t1 - t0)
        share = (c1 - c0) / (t1 - t0)

        print(f"worker at {share:.1%} of a core for {pings_per_s:.0f} "
              f"pings/s over {want} connections")
        assert total(helpers, "closed") == 0, [x.fig for x in helpers]
        assert total(helpers, "open") == want, [x.fig for x in helpers]
        # Once a second each (the tick may put two rounds in one window).
        assert pings_per_s >= 0.6 * want, (pings_per_s, want)
        # What is left is the pings' own syscalls and the pongs' reads:
        # ~3 % of a core here without sanitizers. The sorted-list walks
        # took the whole core.
        assert share < 0.35, f"worker at {share:.0%} of a core for " \
            f"{pings_per_s:.0f} pings/s"
    finally:
        for x in helpers:
            x.stop()
