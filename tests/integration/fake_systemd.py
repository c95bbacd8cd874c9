"""fake_systemd.py - systemd's side of the notify protocol, for the tests
that check what a daemon tells systemd (READY=1, STATUS=, WATCHDOG=1,
STOPPING=1).

- `FakeSystemd`: a unix datagram socket to pass as NOTIFY_SOCKET (with
  WATCHDOG_USEC when given a watchdog period: `env()`); a thread stamps every
  datagram with its arrival time and sender pid.
- `watch_pets()`: fails unless WATCHDOG=1 came at least every half period
  (plus slack) for a number of periods.
- `stop_and_expect_stopping()`: SIGTERM, STOPPING=1, exit status 0.
- `AS_SYSTEMD_CHILD`: an argv prefix that sets WATCHDOG_PID to the
  daemon's pid, as systemd does.
"""

import os
import socket
import struct
import threading
import time

import wsp

# exec keeps the pid: WATCHDOG_PID names the daemon, as systemd sets it.
AS_SYSTEMD_CHILD = ["sh", "-c", 'WATCHDOG_PID=$$ exec "$0" "$@"']
# Scheduling latency allowed on top of half a period (loop wake-ups, the
# reader thread), scaled for slow sanitizer runs.
SLACK_S = 0.25 * wsp.MULT

_UCRED = struct.Struct("3i")  # pid, uid, gid


class FakeSystemd:
    """The NOTIFY_SOCKET end. A thread receives every datagram with the
    sender's credentials (SO_PASSCRED) and the time it arrived."""

    def __init__(self, h, name, period_s=None):
        self.period_s = period_s
        self.path = os.path.join(h.dir, f"{name}.notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.settimeout(0.2)
        self.msgs = []  # (monotonic time, sender pid, {field: value})
        self.lock = threading.Lock()
        self.done = False
        self.thread = threading.Thread(target=self._run, daemon=True,
                                       name=f"notify-{name}")
        self.thread.start()

    def env(self):
        """The environment systemd gives the service: NOTIFY_SOCKET and,
        with a watchdog period, WATCHDOG_USEC."""
        env = {"NOTIFY_SOCKET": self.path}
        if self.period_s is not None:
            env["WATCHDOG_USEC"] = str(int(self.period_s * 1e6))
        return env

    def _run(self):
        while not self.done:
            try:
                data, anc, _, _ = self.sock.recvmsg(
                    4096, socket.CMSG_SPACE(_UCRED.size))
            except socket.timeout:
                continue
            except OSError:
                return
            t = time.monotonic()
            pid = None
            for level, kind, cdata in anc:
                if level == socket.SOL_SOCKET and \
                        kind == socket.SCM_CREDENTIALS:
                    pid = _UCRED.unpack(cdata[:_UCRED.size])[0]
            fields = dict(line.split("=", 1) for line in
                          data.decode("utf-8", "replace").splitlines()
                          if "=" in line)
            with self.lock:
                self.msgs.append((t, pid, fields))

    def close(self):
        self.done = True
        self.thread.join(2)
        self.sock.close()

    def seen(self, key, value=None, after=0.0):
        """(time, pid, fields) of the messages carrying key (= value)."""
        with self.lock:
            return [m for m in self.msgs if m[0] >= after and key in m[2]
                    and (value is None or m[2][key] == value)]

    def wait_for(self, key, value, timeout, after=0.0, check=None):
        """The first message with key=value after `after`."""
        try:
            return wsp.wait_until(lambda: (self.seen(key, value, after) or
                                           [None])[0], timeout,
                                  f"{key}={value} on NOTIFY_SOCKET",
                                  check=check)
        except wsp.HarnessError as e:
            raise wsp.HarnessError(f"{e}; got: {self.summary()}") from None

    def wait_silent(self, after, timeout, what, check=None):
        """Waits until no WATCHDOG=1 came for a whole period (plus slack)
        since the last one after `after` (or since `after`)."""
        def silent():
            pets = self.seen("WATCHDOG", "1", after=after)
            last = pets[-1][0] if pets else after
            return time.monotonic() - last >= self.period_s + SLACK_S
        try:
            wsp.wait_until(silent, timeout, what, check=check, interval=0.05)
        except wsp.HarnessError as e:
            raise wsp.HarnessError(f"{e}; messages: {self.summary()}") \
                from None

    def summary(self):
        with self.lock:
            return [f"{t:.2f}:{pid}:{'|'.join(f)}" for t, pid, f in
                    self.msgs[-12:]]

    def senders(self):
        with self.lock:
            return {pid for _, pid, _ in self.msgs}


def watch_pets(sd, proc, start, periods=3):
    """Watches `periods` watchdog periods from `start`; fails unless
    WATCHDOG=1 came at least every half period + SLACK_S."""
    period = sd.period_s
    end = start + periods * period
    wsp.wait_until(lambda: time.monotonic() >= end + SLACK_S,
                   periods * period + 5,
                   f"{periods} watchdog periods", check=proc.check_running,
                   interval=0.05)
    pets = [t for t, _, _ in sd.seen("WATCHDOG", "1", after=start)
            if t <= end]
    marks = [start] + pets + [end]
    gaps = [b - a for a, b in zip(marks, marks[1:])]
    worst = max(gaps)
    assert worst <= period / 2 + SLACK_S, (
        f"{proc.name}: {len(pets)} WATCHDOG=1 in {periods * period:.0f}s "
        f"after READY=1 with WATCHDOG_USEC={int(period * 1e6)}; longest "
        f"gap {worst:.2f}s (want <= {period / 2 + SLACK_S:.2f}s); "
        f"messages: {sd.summary()}")
    return pets


def stop_and_expect_stopping(sd, proc):
    """SIGTERM: STOPPING=1 from the main pid, then exit status 0."""
    t0 = time.monotonic()
    proc.stop(timeout=20)
    sd.wait_for("STOPPING", "1", 5, after=t0)
    assert proc.popen.returncode == 0, wsp.describe_rc(proc.popen.returncode)
