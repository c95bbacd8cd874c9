"""Both daemons under systemd's notify protocol, with this test playing
systemd: a unix datagram socket as NOTIFY_SOCKET, WATCHDOG_USEC = 2 s and
WATCHDOG_PID = the daemon's own pid (the units say Type=notify,
NotifyAccess=main, WatchdogSec=10). Each daemon must send

- READY=1 once it serves,
- WATCHDOG=1 at least every half period (1 s, plus SLACK_S for the
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
import socket
import struct
import threading
import time

import wsp

PERIOD_S = 2.0
HALF_S = PERIOD_S / 2
# Scheduling latency allowed on top of half a period (loop wake-ups,
# this test's reader thread), scaled for slow sanitizer runs.
SLACK_S = 0.25 * wsp.MULT
PERIODS = 3
# exec keeps the pid: WATCHDOG_PID names the daemon, as systemd sets it.
AS_SYSTEMD_CHILD = ["sh", "-c", 'WATCHDOG_PID=$$ exec "$0" "$@"']

_UCRED = struct.Struct("3i")  # pid, uid, gid


class FakeSystemd:
    """The NOTIFY_SOCKET end. A thread receives every datagram with the
    sender's credentials (SO_PASSCRED) and the time it arrived."""

    def __init__(self, h, name):
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
        return {"NOTIFY_SOCKET": self.path,
                "WATCHDOG_USEC": str(int(PERIOD_S * 1e6))}

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

    def summary(self):
        with self.lock:
            return [f"{t:.2f}:{pid}:{'|'.join(f)}" for t, pid, f in
                    self.msgs[-12:]]

    def senders(self):
        with self.lock:
            return {pid for _, pid, _ in self.msgs}


def watch_pets(sd, proc, start):
    """Watches PERIODS periods from `start`; fails unless WATCHDOG=1 came
    at least every HALF_S + SLACK_S."""
    end = start + PERIODS * PERIOD_S
    wsp.wait_until(lambda: time.monotonic() >= end + SLACK_S,
                   PERIODS * PERIOD_S + 5,
                   f"{PERIODS} watchdog periods", check=proc.check_running,
                   interval=0.05)
    pets = [t for t, _, _ in sd.seen("WATCHDOG", "1", after=start)
            if t <= end]
    marks = [start] + pets + [end]
    gaps = [b - a for a, b in zip(marks, marks[1:])]
    worst = max(gaps)
    assert worst <= HALF_S + SLACK_S, (
        f"{proc.name}: {len(pets)} WATCHDOG=1 in {PERIODS * PERIOD_S:.0f}s "
        f"after READY=1 with WATCHDOG_USEC={int(PERIOD_S * 1e6)}; longest "
        f"gap {worst:.2f}s (want <= {HALF_S + SLACK_S:.2f}s); "
        f"messages: {sd.summary()}")
    return pets


def stop_and_expect_stopping(sd, proc):
    """SIGTERM: STOPPING=1 from the main pid, then exit status 0."""
    t0 = time.monotonic()
    proc.stop(timeout=20)
    sd.wait_for("STOPPING", "1", 5, after=t0)
    assert proc.popen.returncode == 0, wsp.describe_rc(proc.popen.returncode)


def test_bridge_ready_watchdog_stopping(h):
    redis = wsp.RedisServer(h).start()
    node = wsp.Node(h, "a", redis, workers=1)
    sd = FakeSystemd(h, "bridge")
    try:
        node.start_bridge(env=sd.env(), wrap=AS_SYSTEMD_CHILD)
        br = node.bridge
        ready = sd.wait_for("READY", "1", 20, check=br.check_running)
        watch_pets(sd, br, ready[0])
        stop_and_expect_stopping(sd, br)
        assert sd.senders() == {br.pid}, \
            f"messages not from the main pid {br.pid}: {sd.summary()}"
    finally:
        sd.close()


def test_gateway_ready_watchdog_stopping(h):
    redis = wsp.RedisServer(h).start()
    node = wsp.Node(h, "a", redis, workers=2)
    node.start_bridge()
    sd = FakeSystemd(h, "gateway")
    try:
        node.start_gateway(env=sd.env(), wrap=AS_SYSTEMD_CHILD)
        gw = node.gateway
        ready = sd.wait_for("READY", "1", 20, check=gw.check_running)
        watch_pets(sd, gw, ready[0])
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
    redis = wsp.RedisServer(h).start()
    node = wsp.Node(h, "a", redis, workers=2)
    node.start_bridge()
    sd = FakeSystemd(h, "gateway")
    try:
        node.start_gateway(env=sd.env(), wrap=AS_SYSTEMD_CHILD)
        gw = node.gateway
        ready = sd.wait_for("READY", "1", 20, check=gw.check_running)
        sd.wait_for("WATCHDOG", "1", PERIOD_S, after=ready[0],
                    check=gw.check_running)
        workers = sorted(gw.workers())
        assert len(workers) == 2
        t_stop = time.monotonic()
        try:
            for pid in workers:
                os.kill(pid, signal.SIGSTOP)

            def silent_for_a_period():
                pets = sd.seen("WATCHDOG", "1", after=t_stop)
                last = pets[-1][0] if pets else t_stop
                return time.monotonic() - last >= PERIOD_S + SLACK_S
            try:
                wsp.wait_until(silent_for_a_period, 20,
                               "WATCHDOG=1 to stop for a whole period "
                               "while every worker is stopped",
                               check=gw.check_running, interval=0.05)
            except wsp.HarnessError as e:
                raise wsp.HarnessError(f"{e}; messages: {sd.summary()}") \
                    from None
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
