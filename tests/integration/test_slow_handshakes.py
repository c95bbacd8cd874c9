"""Slow handshakes do not lock genuine clients out.

Four helper processes (tests/tools/wsp_slowhs.py) keep 2,000 WebSocket
handshakes in flight against a two-worker gateway: each connection stays
silent for 4-8 s, then sends its upgrade request one byte every 2 s, and
is replaced as soon as the gateway cuts it. Meanwhile a genuine client's
handshake (connect to 101) must complete within 1 s, every one of 20
tries, and GET /healthz on the gateway port must answer 200 within 1 s.
The cut handshakes are counted in hs_rejected_slow and answered 408 (the
ones that sent part of a request). The helpers are bounded in time and
stopped by PID.

Waiting handshakes are also bounded by descriptors: with the worker's
RLIMIT_NOFILE lowered to 400 (prlimit on the running worker) and 600
silent connections kept open against it, at most half the limit wait and
the longest waiting is closed for a new one, so the worker never runs out
of descriptors and genuine clients still get through within 1 s.
"""

import os
import resource
import statistics
import subprocess
import sys
import threading
import time

import wsp

HELPERS = 4
PER_HELPER = 500
TRIES = 20
LIMIT_S = 1.0
TOOL = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                    "..", "tools", "wsp_slowhs.py")


class Helper:
    """One attacker process and the last "open N ..." line it printed."""

    def __init__(self, port, conns, duration, silence=(4, 8), per_tick=200):
        self.p = subprocess.Popen(
            [sys.executable, TOOL, "--port", str(port), "--conns",
             str(conns), "--interval", "2", "--silence-min",
             str(silence[0]), "--silence-max", str(silence[1]),
             "--duration", str(duration), "--open-per-tick", str(per_tick)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.open = self.cut = 0
        self.last = ""
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        for line in self.p.stdout:
            parts = line.split()
            if len(parts) >= 4 and parts[0] == "open":
                self.open = int(parts[1])
                self.cut = int(parts[3])
                self.last = line.strip()

    def stop(self):
        if self.p.poll() is None:
            os.kill(self.p.pid, 9)
        self.p.wait(timeout=10)
        self.t.join(timeout=5)


def handshake_seconds(port, user, timeout=5.0):
    """Seconds from connect() to the 101 status line; timeout if none."""
    t0 = time.monotonic()
    try:
        with wsp.RawWs(port, f"/ws?user={user}", timeout=timeout):
            return time.monotonic() - t0
    except wsp.HarnessError:
        return timeout


def healthz_seconds(port, timeout=5.0):
    """(seconds, status) of GET /healthz on the gateway port; status None
    if no answer came within timeout. Any status counts as an answer: a
    worker may briefly report 503 (bus heartbeats late on a loaded
    machine), which is /healthz doing its job, not the port locked."""
    t0 = time.monotonic()
    try:
        with wsp.RawWs(port, request=b"GET /healthz HTTP/1.1\r\n"
                       b"Host: 127.0.0.1\r\n\r\n", expect=None,
                       timeout=timeout) as c:
            return time.monotonic() - t0, c.status
    except wsp.HarnessError:
        return timeout, None


def helpers_alive(helpers):
    for x in helpers:
        if x.p.poll() is not None:
            raise wsp.HarnessError(f"a helper exited: {x.p.returncode}")


def test_genuine_clients_are_served_during_a_slow_handshake_flood(h):
    node = wsp.Cluster(h, nodes=1, workers=2).a
    helpers = [Helper(node.port, PER_HELPER, 90) for _ in range(HELPERS)]
    try:
        wsp.wait_until(
            lambda: sum(x.open for x in helpers) >= 0.95 * HELPERS
            * PER_HELPER, 30, "2,000 slow handshakes open",
            check=lambda: helpers_alive(helpers))
        # Not a synchronisation: the attack's second phase, where every
        # connection has started to trickle (silence is 4-8 s).
        time.sleep(6)
        helpers_alive(helpers)
        hs, hz, opened = [], [], []
        for i in range(TRIES):
            opened.append(sum(x.open for x in helpers))
            hs.append(handshake_seconds(node.port, wsp.uid(f"real{i}")))
            hz.append(healthz_seconds(node.port))
            time.sleep(0.5)
        cut = [x.last for x in helpers]
    finally:
        for x in helpers:
            x.stop()
    print(f"\nslow handshakes open while measuring: min {min(opened)} "
          f"max {max(opened)}; helpers: {cut}")
    hzs = [t for t, _ in hz]
    print(f"genuine handshake: p50 {statistics.median(hs) * 1000:.1f} ms "
          f"max {max(hs) * 1000:.1f} ms; /healthz: p50 "
          f"{statistics.median(hzs) * 1000:.1f} ms max "
          f"{max(hzs) * 1000:.1f} ms, statuses {[st for _, st in hz]}")
    assert min(opened) >= 0.9 * HELPERS * PER_HELPER, opened
    assert max(hs) < LIMIT_S, hs
    assert max(hzs) < LIMIT_S and all(st is not None for _, st in hz), hz
    wsp.wait_until(
        lambda: wsp.worker_total(node.stats(), "hs_rejected_slow") > 0,
        10, "cut handshakes counted in hs_rejected_slow")
    assert all("408:" in x for x in cut), cut
    # And on the bridge's /metrics, under the handshake refusals family.
    st, body = wsp.http_get(node.metrics_port, "/metrics")
    assert st == 200
    lines = [ln for ln in body.decode().splitlines()
             if ln.startswith("wspush_handshakes_rejected_total{")
             and 'reason="slow"' in ln]
    assert lines and max(float(ln.rsplit(" ", 1)[1]) for ln in lines) > 0, \
        lines


def test_waiting_handshakes_are_bounded_by_descriptors(h):
    node = wsp.Cluster(h, nodes=1, workers=1).a
    (pid,) = node.gateway.workers()
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (400, 400))
    # Silent for longer than the test: only the bound can make room.
    attack = Helper(node.port, 600, 60, silence=(50, 50), per_tick=10)
    try:
        wsp.wait_until(lambda: attack.open + attack.cut >= 600, 30,
                       "600 silent connections made",
                       check=lambda: helpers_alive([attack]))
        hs = []
        for i in range(10):
            hs.append(handshake_seconds(node.port, wsp.uid(f"fd{i}")))
            time.sleep(0.2)
        st = node.stats()
    finally:
        attack.stop()
    print(f"\ngenuine handshake with the descriptors under pressure: p50 "
          f"{statistics.median(hs) * 1000:.1f} ms max "
          f"{max(hs) * 1000:.1f} ms; helper: {attack.last}")
    assert max(hs) < LIMIT_S, hs
    assert wsp.worker_total(st, "hs_pending") <= 200
    assert wsp.worker_total(st, "hs_rejected_slow") > 0
