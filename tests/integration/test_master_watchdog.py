"""The gateway master pets systemd's watchdog (WATCHDOG=1) only while its
workers are healthy: every worker heartbeating through the master's pipe.
A worker that stops (SIGSTOP) stops the pets within a few seconds; they
resume when it does; SIGTERM brings STOPPING=1. systemd's side of the
notify protocol is played by a datagram socket of the test."""

import os
import signal
import socket
import time

import wsp

PERIOD_S = 2.0  # WATCHDOG_USEC
SILENT_S = 5.0  # the master's limit for a silent worker


class Notify:
    """A fake NOTIFY_SOCKET: every datagram with its arrival time."""

    def __init__(self, path):
        self.path = path
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.s.bind(path)
        self.msgs = []  # (monotonic time, line)

    def poll(self, timeout):
        self.s.settimeout(max(timeout, 0.001))
        try:
            data = self.s.recv(4096)
        except socket.timeout:
            return
        now = time.monotonic()
        for line in data.decode().split("\n"):
            if line:
                self.msgs.append((now, line))

    def wait_for(self, pred, timeout, what):
        deadline = time.monotonic() + wsp.T(timeout)
        while time.monotonic() < deadline:
            for t, line in self.msgs:
                if pred(t, line):
                    return t
            self.poll(deadline - time.monotonic())
        raise AssertionError(f"{what} within {wsp.T(timeout):.1f}s; got "
                             f"{[m for _, m in self.msgs][-20:]}")

    def pets(self, since):
        return [t for t, line in self.msgs if line == "WATCHDOG=1"
                and t >= since]

    def close(self):
        self.s.close()


def test_watchdog_follows_worker_health(h):
    path = os.path.join(h.dir, "notify.sock")
    n = Notify(path)
    try:
        cl = wsp.Cluster(h, nodes=1, workers=2, gateway_env={
            "NOTIFY_SOCKET": path,
            "WATCHDOG_USEC": str(int(PERIOD_S * 1e6))})
        ready = n.wait_for(lambda t, m: m == "READY=1", 20, "READY=1")

        # Healthy: a pet at least every half period for three periods.
        end = ready + 3 * PERIOD_S
        while time.monotonic() < end:
            n.poll(end - time.monotonic())
        pets = [ready] + n.pets(ready)
        gaps = [b - a for a, b in zip(pets, pets[1:])]
        assert len(pets) >= 6 and max(gaps) <= PERIOD_S / 2 * wsp.MULT \
            + 0.1, gaps

        # A stopped worker: no pet for a whole period, within its
        # silence limit and a period.
        pid = sorted(cl.a.gateway.workers())[0]
        os.kill(pid, signal.SIGSTOP)
        stopped = time.monotonic()
        try:
            deadline = stopped + wsp.T(SILENT_S + 3 * PERIOD_S)
            quiet_from = None
            while time.monotonic() < deadline:
                n.poll(0.1)
                last = max([stopped] + n.pets(stopped))
                if time.monotonic() - last >= PERIOD_S:
                    quiet_from = last
                    break
            assert quiet_from is not None, \
                f"pets went on with w1 stopped: {n.pets(stopped)}"
        finally:
            os.kill(pid, signal.SIGCONT)
        resumed = time.monotonic()
        n.wait_for(lambda t, m: m == "WATCHDOG=1" and t > resumed,
                   3 * PERIOD_S, "WATCHDOG=1 again after SIGCONT")

        cl.a.gateway.signal(signal.SIGTERM)
        n.wait_for(lambda t, m: m == "STOPPING=1", 10, "STOPPING=1")
    finally:
        n.close()
