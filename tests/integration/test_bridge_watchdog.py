"""The bridge feeds systemd's watchdog from its loop: with NOTIFY_SOCKET
and WATCHDOG_USEC set it sends READY=1, then WATCHDOG=1 at least every
half period, and STOPPING=1 on SIGTERM (the unit sets WatchdogSec=10:
without WATCHDOG=1 systemd would kill it every 10 s)."""

import os
import signal
import socket
import time

import wsp

PERIOD_S = 2.0


def test_bridge_sends_watchdog_every_half_period(h):
    redis = wsp.RedisServer(h).start()
    node = wsp.Node(h, "a", redis, workers=1)
    path = os.path.join(h.dir, "notify.sock")
    ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    ns.bind(path)
    try:
        node.bridge = h.spawn("bridge-a",
            [wsp.binary("bridge/wspush-bridge"), "-c", node.conf],
            env={"NOTIFY_SOCKET": path,
                 "WATCHDOG_USEC": str(int(PERIOD_S * 1e6))})
        got = []  # (monotonic time, message)
        end = time.monotonic() + wsp.T(3) + 4 * PERIOD_S
        # Short receive timeouts: a datagram is stamped when it comes.
        ns.settimeout(0.05)
        while time.monotonic() < end:
            try:
                got.append((time.monotonic(), ns.recv(4096).decode()))
            except socket.timeout:
                pass
        node.bridge.check_running()
        msgs = [m for _, m in got]
        assert any("READY=1" in m for m in msgs), msgs
        ready = next(t for t, m in got if "READY=1" in m)
        beats = [t for t, m in got if "WATCHDOG=1" in m and t >= ready]
        assert beats, msgs
        # From READY on, for three periods: never a gap over half of it.
        marks = [ready] + beats
        gaps = [b - a for a, b in zip(marks, marks[1:])]
        assert beats[-1] - ready >= 3 * PERIOD_S, got
        assert max(gaps) <= PERIOD_S / 2 + 0.2, gaps

        node.bridge.signal(signal.SIGTERM)
        ns.settimeout(wsp.T(10))
        while True:
            m = ns.recv(4096).decode()
            if "STOPPING=1" in m:
                break
    finally:
        ns.close()
