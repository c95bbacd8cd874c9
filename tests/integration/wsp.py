"""wsp.py - the harness of the wspush integration suite.

Starts real processes (redis-server, wspush-bridge, wspush-gateway, nginx)
in a private directory with free loopback ports, waits for them with bounded
deadlines, and stops them by PID. A process that dies by an unexpected
signal, exits on its own, or writes a sanitizer report is a test failure.
WebSocket clients run on one background asyncio loop so tests stay plain
synchronous code. Shapes: mosquitto test/mosq_test.py (start_broker), h2o
t/Util.pm (spawn_server), Redis check_sanitizer_errors.
"""

import asyncio
import base64
import ctypes
import glob
import http.client
import json
import os
import queue
import random
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import time
import urllib.parse
import uuid

import redis as redislib
import websockets

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

MULT = float(os.environ.get("WSPUSH_TEST_TIMEOUT_MULT") or "1")
LEAVE = os.environ.get("WSPUSH_TEST_LEAVE", "") not in ("", "0")
PREFIX = "wspush"

SANITIZER_RE = re.compile(
    rb"ERROR: AddressSanitizer|runtime error:|ERROR: LeakSanitizer|"
    rb"ERROR: UndefinedBehaviorSanitizer|AddressSanitizer:DEADLYSIGNAL")



def healthz_ok_re(workers):
    """The bridge's healthy /healthz body for `workers` attached workers,
    whatever its broker kind ("redis", "redis-cluster", "amqp")."""
    return re.compile(rf"ok: [a-z-]+ subscribed, {workers} workers attached")

class HarnessError(AssertionError):
    """A process or a wait went wrong; the message says which and why."""


def T(seconds):
    """A deadline in seconds, scaled by WSPUSH_TEST_TIMEOUT_MULT."""
    return seconds * MULT


def build_dir():
    d = os.environ.get("WSPUSH_BUILD_DIR")
    if not d:
        d = os.path.join(REPO, "build", "asan")
    return os.path.abspath(d)


def binary(rel):
    """Path of a built program (bridge/wspush-bridge ...); fails if absent."""
    p = os.path.join(build_dir(), rel)
    if not os.access(p, os.X_OK):
        raise HarnessError(
            f"{p} is missing: build it first or set WSPUSH_BUILD_DIR")
    return p


_ports_handed = set()


def _below_ephemeral():
    """(lo, hi): ports below the kernel's ephemeral range, or None."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return (10000, low - 1) if low > 12000 else None


def free_port():
    """A loopback TCP port that was free a moment ago and that no outgoing
    connection can take before the server under test binds it: a port
    from bind(0) is ephemeral, and the kernel may hand it to the next
    connect() of any process (seen: "gateway.listen ...: Address already
    in use"). So ports come from below the ephemeral range, at random
    (two test runs rarely meet), never twice in one run, and only if a
    plain bind (no SO_REUSEADDR: not even TIME_WAIT on it) succeeds."""
    window = _below_ephemeral()
    for _ in range(500 if window else 0):
        port = random.randint(*window)
        if port in _ports_handed:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _ports_handed.add(port)
        return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(cond, timeout, what, check=None, interval=0.02):
    """Polls cond() until it returns a true value, at most T(timeout)
    seconds; check() runs first on each round (raise there to fail fast,
    e.g. when a child exited). Returns cond()'s value."""
    deadline = time.monotonic() + T(timeout)
    while True:
        if check is not None:
            check()
        v = cond()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise HarnessError(
                f"timed out after {T(timeout):.1f}s waiting for {what}")
        time.sleep(interval)


def tail(path, lines=40):
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 16384))
            data = f.read()
    except OSError:
        return ""
    text = data.decode("utf-8", "replace").splitlines()
    return "\n".join(text[-lines:])


_libc = ctypes.CDLL(None, use_errno=True)


def _child_setup():
    # PR_SET_PDEATHSIG: if pytest dies hard, its children do not linger.
    _libc.prctl(1, signal.SIGTERM, 0, 0, 0)


def _child_env(extra=None):
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
    env.pop("NOTIFY_SOCKET", None)
    if extra:
        env.update(extra)
    return env


def describe_rc(rc):
    if rc is None:
        return "still running"
    if rc < 0:
        try:
            return f"killed by {signal.Signals(-rc).name}"
        except ValueError:
            return f"killed by signal {-rc}"
    return f"exit status {rc}"


def children(pid):
    """Direct children of pid (all its threads), from /proc."""
    kids = set()
    for p in glob.glob(f"/proc/{pid}/task/*/children"):
        try:
            with open(p) as f:
                kids.update(int(x) for x in f.read().split())
        except OSError:
            pass
    return kids


def pid_alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except (OSError, IndexError):
        return False


class Proc:
    """One child process with stdout/stderr in <dir>/<name>.out/.err."""

    def __init__(self, h, name, argv, env=None, cwd=None):
        self.h = h
        self.name = name
        self.argv = [str(a) for a in argv]
        self.env = _child_env(env)
        self.cwd = cwd or h.dir
        self.out = os.path.join(h.dir, name + ".out")
        self.err = os.path.join(h.dir, name + ".err")
        self.popen = None
        self.expect_exit = False  # we killed it on purpose
        self.stopped = False
        self.problems = []
        self._scan = {}

    def start(self):
        with open(self.out, "ab") as o, open(self.err, "ab") as e:
            self.popen = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL,
                stdout=o, stderr=e, cwd=self.cwd, env=self.env,
                preexec_fn=_child_setup)
        self.h.procs.append(self)
        return self

    @property
    def pid(self):
        return self.popen.pid

    def running(self):
        return self.popen is not None and self.popen.poll() is None

    def logs(self, lines=40):
        rc = describe_rc(self.popen.poll())
        s = f"----- {self.name} pid {self.pid} ({rc})"
        s += f": {' '.join(self.argv)}\n"
        for p in (self.out, self.err):
            t = tail(p, lines)
            if t:
                s += f"--- {os.path.basename(p)} (last {lines} lines)\n{t}\n"
        return s

    def check_running(self):
        """Raises (with the log tail) if the process is gone."""
        if self.popen.poll() is not None and not self.expect_exit:
            raise HarnessError(f"{self.name} (pid {self.pid}) "
                f"{describe_rc(self.popen.returncode)} unexpectedly\n"
                + self.logs())

    def sanitizer_reports(self):
        """New sanitizer reports in the logs since the last call."""
        found = []
        for p in (self.out, self.err):
            pos = self._scan.get(p, 0)
            try:
                with open(p, "rb") as f:
                    f.seek(pos)
                    data = f.read()
            except OSError:
                continue
            m = SANITIZER_RE.search(data)
            if m:
                lines = data[m.start():].decode("utf-8", "replace")
                found.append(f"{self.name}: sanitizer report in {p}:\n"
                    + "\n".join(lines.splitlines()[:40]))
                self._scan[p] = pos + len(data)
            else:
                # Keep an overlap so a report split by a read is found.
                self._scan[p] = max(pos, pos + len(data) - 64)
        return found

    def health(self):
        """Problems seen so far that are not yet reported (and forgets
        them): died on its own, sanitizer output."""
        out = list(self.problems)
        self.problems.clear()
        if (not self.stopped and not self.expect_exit
                and self.popen.poll() is not None):
            out.append(f"{self.name} (pid {self.pid}) "
                f"{describe_rc(self.popen.returncode)} while the test ran")
            self.expect_exit = True  # report once
        out += self.sanitizer_reports()
        return out

    def signal(self, sig):
        if self.popen.poll() is None:
            os.kill(self.pid, sig)

    def kill(self):
        """SIGKILL on purpose (a crash test)."""
        self.expect_exit = True
        self.signal(signal.SIGKILL)
        try:
            self.popen.wait(T(10))
        except subprocess.TimeoutExpired:
            self.problems.append(f"{self.name} survived SIGKILL")

    def stop(self, timeout=10):
        """SIGTERM, then SIGKILL after T(timeout). Records problems."""
        if self.stopped:
            return
        self.stopped = True
        if self.popen.poll() is not None:
            if not self.expect_exit:
                self.problems.append(f"{self.name} (pid {self.pid}) "
                    f"{describe_rc(self.popen.returncode)} before it was "
                    "stopped")
            return
        os.kill(self.pid, signal.SIGTERM)
        try:
            rc = self.popen.wait(T(timeout))
        except subprocess.TimeoutExpired:
            os.kill(self.pid, signal.SIGKILL)
            self.popen.wait(T(10))
            self.problems.append(f"{self.name} (pid {self.pid}) did not exit "
                f"within {T(timeout):.0f}s of SIGTERM; killed")
            return
        if rc not in (0, -signal.SIGTERM) and not self.expect_exit:
            self.problems.append(f"{self.name} (pid {self.pid}) "
                f"{describe_rc(rc)} after SIGTERM")


class GatewayProc(Proc):
    """The gateway master; also watches its workers (children)."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.seen_workers = set()
        self.killed_workers = set()

    def workers(self):
        kids = {p for p in children(self.pid) if pid_alive(p)}
        self.seen_workers |= kids
        return kids

    def kill_worker(self, pid):
        self.killed_workers.add(pid)
        os.kill(pid, signal.SIGKILL)

    def health(self):
        out = super().health()
        if self.running() and not self.stopped:
            live = self.workers()
            gone = self.seen_workers - live - self.killed_workers
            for pid in sorted(gone):
                out.append(f"{self.name}: worker pid {pid} disappeared "
                    "(crashed?) while the test ran")
            self.killed_workers |= gone  # report once
        return out


class Harness:
    """Owns a directory, the processes started in it, and their checks."""

    def __init__(self, dir):
        self.dir = dir
        os.makedirs(dir, exist_ok=True)
        self.procs = []
        ACTIVE.append(self)

    def spawn(self, name, argv, cls=Proc, env=None):
        names = {p.name for p in self.procs}
        base, n = name, 1
        while name in names:
            n += 1
            name = f"{base}.{n}"
        return cls(self, name, argv, env=env).start()

    def logs(self, lines=30):
        return "".join(p.logs(lines) for p in self.procs)

    def health(self):
        out = []
        for p in self.procs:
            out += p.health()
        return out

    def finish(self):
        """Stops everything (newest first); returns the problems."""
        problems = []
        for p in reversed(self.procs):
            if p.running():
                problems += p.health()
            p.stop(timeout=15)
        for p in self.procs:
            problems += p.health()
        if self in ACTIVE:
            ACTIVE.remove(self)
        return problems


ACTIVE = []  # live harnesses, for log tails on failure


# --------------------------------------------------------------------------
# Redis


class RedisServer:
    def __init__(self, h, port=None):
        self.h = h
        self.port = port or free_port()
        self.dir = os.path.join(h.dir, f"redis-{self.port}")
        os.makedirs(self.dir, exist_ok=True)
        self.proc = None
        self.url = f"redis://127.0.0.1:{self.port}"

    def start(self):
        self.proc = self.h.spawn("redis", ["redis-server", "--port", self.port,
            "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", self.dir, "--daemonize", "no"])
        c = self.client()
        wait_until(lambda: _ping(c), 10, f"redis-server on {self.port}",
            check=self.proc.check_running)
        return self

    def stop(self):
        self.proc.stop()

    def restart(self):
        self.stop()
        self.start()

    def client(self):
        return redislib.Redis(host="127.0.0.1", port=self.port,
            socket_timeout=T(10), socket_connect_timeout=T(5))


def _ping(c):
    try:
        return c.ping()
    except redislib.exceptions.ConnectionError:
        return False
    except redislib.exceptions.BusyLoadingError:
        return False


def numsub(r, channel):
    return dict(r.pubsub_numsub(channel)).get(channel.encode(), 0)


# --------------------------------------------------------------------------
# Configuration


def write_conf(path, sections):
    """Writes an INI file; returns {(section, key): line number}."""
    lines, where = [], {}
    for sec, kv in sections.items():
        if lines:
            lines.append("")
        lines.append(f"[{sec}]")
        for k, v in kv.items():
            if v is None:
                continue
            lines.append(f"{k} = {v}")
            where[(sec, k)] = len(lines)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return where


def merge(base, over):
    out = {s: dict(kv) for s, kv in base.items()}
    for s, kv in (over or {}).items():
        out.setdefault(s, {}).update(kv)
    return out


# --------------------------------------------------------------------------
# A node: bridge + gateway master/workers with one config file


class Node:
    def __init__(self, h, name, redis, workers=2, conf=None,
                 gateway_env=None):
        """gateway_env: extra environment of the gateway (e.g. a smaller
        ASan quarantine for memory bounds)."""
        self.h = h
        self.gateway_env = gateway_env
        self.name = name
        self.id = f"node-{name}"
        self.dir = os.path.join(h.dir, name)
        self.runtime_dir = os.path.join(self.dir, "run")
        os.makedirs(self.runtime_dir, exist_ok=True)
        if len(self.runtime_dir) + len("/stats.ipc") >= 96:
            raise HarnessError(f"runtime dir too long: {self.runtime_dir}")
        self.redis = redis
        self.workers = workers
        self.port = free_port()
        self.metrics_port = free_port()
        self.sections = merge({
            "node": {"id": self.id, "runtime_dir": self.runtime_dir,
                     "log_level": "debug"},
            "redis": {"url": redis.url, "prefix": PREFIX},
            "gateway": {"listen": f"127.0.0.1:{self.port}",
                        "workers": workers, "drain_timeout_s": 2},
            "auth": {"mode": "none"},
            "bridge": {"heartbeat_ms": 200,
                       "metrics_listen": f"127.0.0.1:{self.metrics_port}"},
        }, conf)
        self.conf = os.path.join(self.dir, "wspush.conf")
        write_conf(self.conf, self.sections)
        self.bridge = None
        self.gateway = None

    @property
    def raw(self):
        return self.sections["gateway"].get("delivery") == "raw"

    # -- processes

    def start(self):
        self.start_bridge()
        self.start_gateway()
        return self

    def start_bridge(self, env=None, wrap=()):
        """Starts the bridge; ready once it has bound bus1.ipc (slot 1's
        bus stream; the others are bound before it) and up.ipc
        (new socket files: a killed bridge leaves its old ones behind).
        The sockets are not probed with a connection: a stray connection
        makes nng's listener pause, which delays the workers."""
        socks = [os.path.join(self.runtime_dir, s)
                 for s in ("bus1.ipc", "up.ipc")]
        before = {s: _file_id(s) for s in socks}
        self.bridge = self.h.spawn(f"bridge-{self.name}",
            list(wrap) + [binary("bridge/wspush-bridge"), "-c", self.conf],
            env=env)
        wait_until(lambda: all(_is_new_socket(s, before[s]) for s in socks),
            15, f"{self.bridge.name} to bind {socks}",
            check=self.bridge.check_running, interval=0.02)

    def start_gateway(self, env=None, wrap=()):
        """Starts the gateway; returns once every worker is attached.
        env: extra environment (on top of gateway_env); wrap: an argv
        prefix that execs the rest (the pid stays the daemon's)."""
        self.gateway = self.h.spawn(f"gateway-{self.name}",
            list(wrap) + [binary("gateway/wspush-gateway"), "-c", self.conf],
            cls=GatewayProc, env=dict(self.gateway_env or {}, **(env or {})))
        self.wait_workers()
        self.wait_welcome()
        if self.bridge is not None and self.bridge.running():
            self.wait_attached()

    def wait_attached(self):
        """The bridge's /healthz says every worker is attached both ways
        (reports upstream, hears the bus). A welcome proves it for one
        worker only; tests that spread clients over workers need all."""
        want = healthz_ok_re(self.workers)

        def ok():
            st, body = http_get(self.metrics_port, "/healthz", timeout=2)
            # match, not fullmatch: a note may follow (history
            # unavailable).
            return st == 200 and \
                want.match(body.decode(errors="replace")) is not None
        wait_until(ok, 20, f"{self.bridge.name} to see {self.workers} "
                   f"workers attached", check=self.check_running,
                   interval=0.05)

    def check_running(self):
        for p in (self.bridge, self.gateway):
            if p is not None:
                p.check_running()

    def wait_workers(self, exclude=()):
        wait_until(lambda: len(self.gateway.workers() - set(exclude))
            >= self.workers, 15,
            f"{self.gateway.name} to run {self.workers} workers",
            check=self.check_running, interval=0.05)

    def wait_welcome(self):
        """A probe connection gets its welcome (worker attached, Redis
        subscription in place)."""
        deadline = time.monotonic() + T(20)

        def probe():
            # One connection waits as long as it stays open; a refused or
            # closed one is retried.
            try:
                c = WsClient(self.url("readyprobe"), "probe", track=False)
                c.open(timeout=2)
            except Exception:
                return False
            try:
                while time.monotonic() < deadline:
                    self.check_running()
                    try:
                        w = c.recv_json(timeout=0.25 / MULT)
                    except WsClosed:
                        return False
                    except RecvTimeout:
                        continue
                    if w.get("op") != "welcome":
                        raise HarnessError(f"first frame is not a welcome: "
                            f"{w!r}")
                    return True
                return False
            finally:
                c.close()
        wait_until(probe, 20, f"{self.gateway.name} to send a welcome",
            check=self.check_running, interval=0.1)

    def kill_all(self):
        """kill -9 the whole node: bridge, gateway master and workers."""
        pids = sorted(self.gateway.workers())
        self.gateway.killed_workers |= set(pids)
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        self.gateway.kill()
        self.bridge.kill()
        wait_until(lambda: not any(pid_alive(p) for p in pids), 10,
            "the killed workers to be gone")

    # -- clients

    def url(self, user=None, path="/ws", **query):
        q = dict(query)
        if user is not None:
            q["user"] = user
        s = f"ws://127.0.0.1:{self.port}{path}"
        if q:
            s += "?" + urllib.parse.urlencode(q)
        return s

    def connect(self, user, welcome=True, timeout=5):
        return connect(self.url(user), f"{user}@{self.name}", welcome,
            timeout, raw=self.raw)

    def connect_many(self, users, timeout=5):
        return connect_many([(self.url(u), f"{u}@{self.name}") for u in users],
            timeout, raw=self.raw)

    def connect_spread(self, user, workers=None, max_conns=96):
        """Connects clients of user until welcomes show `workers` (default:
        all) distinct worker values. Returns every client opened.
        Workers share one listening socket and whoever wakes first
        accepts, so a run of connections can all land on one worker
        (seen: 32 in a row under ASan); hence the generous cap."""
        want = workers or self.workers
        clients, seen = [], set()
        while len(seen) < want:
            if len(clients) >= max_conns:
                raise HarnessError(f"{len(clients)} connections to "
                    f"{self.name} all landed on workers {sorted(seen)}; "
                    f"expected {want} distinct `worker` values in welcomes")
            batch = self.connect_many([user] * 2)
            clients += batch
            seen |= {c.welcome.get("worker") for c in batch}
        return clients

    def connect_subscribed(self, tag):
        """One user spread over every worker (connect_spread), every
        connection subscribed to one channel. Returns (user, channel,
        clients)."""
        u, ch = uid(tag), uid(tag + "ch")
        clients = self.connect_spread(u)
        for i, cl in enumerate(clients):
            got = cl.request({"op": "subscribe", "channel": ch, "ref": i})
            if got != {"op": "subscribed", "channel": ch, "ref": i}:
                raise HarnessError(f"{cl.label}: subscribe got {got!r}")
        return u, ch, clients

    def healthz(self, port=None):
        """The status of /healthz on the gateway port (or `port`)."""
        return http_get(port or self.port, "/healthz")[0]

    def bridge_healthz(self):
        """(status, body) of the bridge's /healthz (metrics_listen)."""
        return http_get(self.metrics_port, "/healthz")

    def wait_bridge_healthz(self, status, timeout=10, what=None):
        """Waits until the bridge's /healthz answers `status` (failing fast
        if a process of the node exited); returns the body."""
        def ok():
            st, body = self.bridge_healthz()
            return body if st == status else None
        return wait_until(ok, timeout, what or
                          f"{self.bridge.name} /healthz {status}",
                          check=self.check_running, interval=0.05)

    def counter(self, name):
        """A worker counter summed over the workers (one stats call)."""
        return worker_total(self.stats(), name)

    def wait_counter(self, name, want, timeout=10, what=None):
        """Waits until a worker counter summed over the workers equals
        `want`, or satisfies it when `want` is callable; returns that
        stats document."""
        pred = want if callable(want) else (lambda v: v == want)

        def ok():
            st = self.stats()
            return st if pred(worker_total(st, name)) else None
        # Each poll runs wspushctl: not too often.
        return wait_until(ok, timeout, what or f"{name} to reach {want}",
                          check=self.check_running, interval=0.1)

    def ctl(self, *args, timeout=15):
        return ctl(self.h, self.conf, *args, timeout=timeout)

    def stats(self):
        """`wspushctl stats --json`, decoded."""
        cp = self.ctl("stats", "--json")
        if cp.returncode != 0:
            raise HarnessError(f"wspushctl stats: {cp.stderr}")
        return json.loads(cp.stdout)


def worker_total(st, name):
    """A worker counter summed over the workers of a stats reply."""
    return sum(w["counters"].get(name, 0) for w in st["workers"])


def _file_id(path):
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_ctime_ns)


def _is_new_socket(path, old_id):
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    return stat.S_ISSOCK(st.st_mode) and (st.st_ino, st.st_ctime_ns) != old_id


def tcp_listening(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def http_get(port, path, timeout=5):
    """(status, body) of GET http://127.0.0.1:port/path; (0, err) if the
    connection failed."""
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=T(timeout))
        c.request("GET", path)
        r = c.getresponse()
        body = r.read()
        c.close()
        return r.status, body
    except OSError as e:
        return 0, str(e).encode()


def ctl(h, conf, *args, timeout=15):
    """Runs wspushctl -c conf args...; returns CompletedProcess (text).
    Sanitizer output in its stderr is a failure."""
    argv = [binary("bridge/wspushctl"), "-c", conf] + [str(a) for a in args]
    try:
        cp = subprocess.run(argv, stdin=subprocess.DEVNULL,
            capture_output=True, text=True, timeout=T(timeout),
            env=_child_env())
    except subprocess.TimeoutExpired as e:
        raise HarnessError(f"{' '.join(argv)} did not finish within "
            f"{T(timeout):.0f}s; stderr: {e.stderr}")
    check_tool_output(argv, cp)
    return cp


def check_tool_output(argv, cp):
    both = (cp.stdout or "") + (cp.stderr or "")
    if SANITIZER_RE.search(both.encode()) or (cp.returncode or 0) < 0:
        raise HarnessError(f"{' '.join(argv)}: {describe_rc(cp.returncode)},"
            f" stderr:\n{cp.stderr}")


# --------------------------------------------------------------------------
# Cluster: one Redis, N nodes


class Cluster:
    def __init__(self, h, nodes=2, workers=2, conf=None, node_conf=None,
                 gateway_env=None):
        """node_conf: per-node overrides, a list aligned with nodes;
        gateway_env: see Node."""
        self.h = h
        self.redis = RedisServer(h).start()
        self.r = self.redis.client()
        self.nodes = []
        for i in range(nodes):
            over = merge(conf or {}, (node_conf or [{}] * nodes)[i])
            self.nodes.append(Node(h, "ab"[i] if nodes <= 2 else f"n{i}",
                self.redis, workers=workers, conf=over,
                gateway_env=gateway_env))
        for n in self.nodes:
            n.start()

    @property
    def a(self):
        return self.nodes[0]

    @property
    def b(self):
        return self.nodes[1]

    def publish(self, addr, payload):
        """PUBLISH <prefix>:<addr> payload; returns the receiver count."""
        return self.r.publish(f"{PREFIX}:{addr}", payload)

    def health(self):
        return self.h.health()

    def fence(self, clients, timeout=5):
        return fence(self.r, clients, timeout=timeout)


# --------------------------------------------------------------------------
# WebSocket clients on a background asyncio loop


class _Loop:
    _inst = None
    _lock = threading.Lock()

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name="ws-loop",
            daemon=True)
        self.thread.start()

    def _run(self):
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    @classmethod
    def get(cls):
        with cls._lock:
            if cls._inst is None:
                cls._inst = _Loop()
            return cls._inst

    def call(self, coro, timeout):
        fut = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return fut.result(T(timeout))
        except TimeoutError:
            fut.cancel()
            raise HarnessError(f"websocket operation timed out after "
                f"{T(timeout):.1f}s")


CLIENTS = []  # clients opened by the current test


class WsClosed(HarnessError):
    pass


class RecvTimeout(HarnessError):
    pass


class _Closed:
    def __init__(self, code, reason):
        self.code, self.reason = code, reason

    def __repr__(self):
        return f"closed(code={self.code}, reason={self.reason!r})"


class WsClient:
    """One WebSocket connection. Every frame is read at once into a queue,
    so the connection never stalls the server; websockets answers pings."""

    def __init__(self, url, label="ws", track=True):
        self.url = url
        self.label = label
        self.q = queue.Queue()
        self.ws = None
        self.welcome = None
        self.closed = None
        self.closed_evt = threading.Event()
        self.raw = False
        if track:
            CLIENTS.append(self)

    async def _open(self, timeout):
        self.ws = await websockets.connect(self.url, open_timeout=T(timeout),
            close_timeout=1, ping_interval=None, max_size=None,
            max_queue=None)
        asyncio.ensure_future(self._read())

    async def _read(self):
        try:
            async for m in self.ws:
                self.q.put(m)
        except Exception:
            pass
        finally:
            self.q.put(_Closed(self.ws.close_code, self.ws.close_reason))
            self.closed_evt.set()

    def open(self, timeout=5):
        _Loop.get().call(self._open(timeout), timeout + 1)
        return self

    # -- receiving

    def recv(self, timeout=5):
        """Next frame: str (text) or bytes (binary). Raises WsClosed or
        HarnessError on timeout."""
        if self.closed is not None:
            raise WsClosed(f"{self.label}: connection {self.closed}")
        try:
            m = self.q.get(timeout=T(timeout))
        except queue.Empty:
            raise RecvTimeout(f"{self.label}: no frame within "
                f"{T(timeout):.1f}s") from None
        if isinstance(m, _Closed):
            self.closed = m
            raise WsClosed(f"{self.label}: connection {m}")
        return m

    def recv_json(self, timeout=5):
        m = self.recv(timeout)
        if not isinstance(m, str):
            raise HarnessError(f"{self.label}: expected a text frame, got "
                f"binary {m[:64]!r}")
        try:
            return json.loads(m)
        except ValueError:
            raise HarnessError(f"{self.label}: not JSON: {m[:200]!r}")

    def until(self, pred, timeout=5):
        """Frames received before the first one matching pred (which is
        consumed); json-decoded when the client is not raw."""
        out = []
        deadline = time.monotonic() + T(timeout)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise HarnessError(f"{self.label}: fence not seen within "
                    f"{T(timeout):.1f}s; got before it: {out[:20]!r}")
            m = self.recv(left / MULT)
            d = self.decode(m)
            if pred(d):
                return out
            out.append(d)

    def decode(self, m):
        if self.raw or not isinstance(m, str):
            return m
        try:
            return json.loads(m)
        except ValueError:
            return m

    def collect(self, count=None, quiet=0.5, timeout=10):
        """Frames until `count` arrived, or none for `quiet` seconds."""
        out = []
        deadline = time.monotonic() + T(timeout)
        while count is None or len(out) < count:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                out.append(self.decode(self.recv(min(quiet, left / MULT))))
            except (WsClosed, RecvTimeout):
                break
        return out

    def wait_closed(self, timeout=5):
        """Waits for the server to close; returns the close code. Frames
        before the close are dropped."""
        deadline = time.monotonic() + T(timeout)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise HarnessError(f"{self.label}: still open after "
                    f"{T(timeout):.1f}s")
            try:
                self.recv(left / MULT)
            except WsClosed:
                return self.closed.code

    def is_open(self):
        return not self.closed_evt.is_set()

    # -- sending

    def send(self, data, timeout=5):
        _Loop.get().call(self.ws.send(data), timeout)

    def send_json(self, obj, timeout=5):
        self.send(json.dumps(obj), timeout)

    def request(self, obj, timeout=5):
        """Sends obj and returns the next frame as JSON, reduced to the
        protocol's fields (norm)."""
        self.send_json(obj)
        return norm(self.recv_json(timeout))

    def close(self, timeout=5):
        if self.ws is not None and self.is_open():
            try:
                _Loop.get().call(self.ws.close(), timeout)
            except Exception:
                pass
        if self in CLIENTS:
            CLIENTS.remove(self)

    @property
    def worker(self):
        return self.welcome.get("worker")

    @property
    def conn(self):
        return self.welcome.get("conn")

    @property
    def node(self):
        return self.welcome.get("node")

    def __repr__(self):
        return f"<{self.label} {self.conn or ''}>"


def connect(url, label="ws", welcome=True, timeout=5, raw=False):
    """Opens a client; with welcome, reads and checks the welcome frame.
    raw: the node delivers payloads as published (delivery = raw)."""
    c = WsClient(url, label)
    c.raw = raw
    c.open(timeout)
    if welcome:
        _read_welcome(c, timeout)
    return c


def _read_welcome(c, timeout):
    w = c.recv_json(timeout)
    if not isinstance(w, dict) or w.get("op") != "welcome":
        raise HarnessError(f"{c.label}: first frame is not a welcome: {w!r}")
    c.welcome = w


def connect_many(specs, timeout=5, raw=False):
    """Opens [(url, label), ...] concurrently; returns welcomed clients."""
    cs = [WsClient(u, lbl) for u, lbl in specs]
    for c in cs:
        c.raw = raw

    async def go():
        await asyncio.gather(*(c._open(timeout) for c in cs))
    _Loop.get().call(go(), timeout + 2)
    for c in cs:
        _read_welcome(c, timeout)
    return cs


def close_all(clients=None, timeout=5):
    cs = list(CLIENTS if clients is None else clients)
    live = [c for c in cs if c.ws is not None and c.is_open()]

    async def go():
        await asyncio.gather(*(c.ws.close() for c in live),
            return_exceptions=True)
    if live:
        try:
            _Loop.get().call(go(), timeout)
        except HarnessError:
            pass
    for c in cs:
        if c in CLIENTS:
            CLIENTS.remove(c)


# --------------------------------------------------------------------------
# Fences: ordering instead of quiet periods


def fence(r, clients, timeout=5):
    """Publishes a unique marker to <prefix>:all and returns, per client,
    the frames it received before the marker. Redis and the node bus keep
    publish order, so anything published before the fence either arrived
    by now or never will."""
    token = uuid.uuid4().hex
    payload = json.dumps({"fence": token})
    r.publish(f"{PREFIX}:all", payload)

    def is_fence(d):
        if isinstance(d, dict):
            return (d.get("op") == "msg" and d.get("to") == "all"
                    and d.get("data") == {"fence": token})
        return d == payload  # raw delivery: the payload as published

    return [[norm(f) for f in c.until(is_fence, timeout)] for c in clients]


# The fields of the client protocol that tests compare. Servers may add
# fields (clients must ignore fields they do not know), so comparisons
# drop the others.
KEYS = ("op", "to", "from", "data", "data_b64", "ref", "channel", "code")


def norm(f):
    if isinstance(f, dict):
        return {k: f[k] for k in KEYS if k in f}
    return f


def msgs(frames):
    """The `msg` frames of a list of decoded frames."""
    return [f for f in frames if isinstance(f, dict) and f.get("op") == "msg"]


def datas(frames):
    return [f.get("data") for f in msgs(frames)]


# --------------------------------------------------------------------------
# The raw WebSocket client: a plain socket, handshakes and frames by hand,
# so a test can break any rule (headers, masks, opcodes, fragments, close
# codes) and see exactly what the server answers. It never answers pings
# unless told to (pong=True).

OP_CONT, OP_TEXT, OP_BINARY = 0x0, 0x1, 0x2
OP_CLOSE, OP_PING, OP_PONG = 0x8, 0x9, 0xA
CLOSE_NO_STATUS = 1005  # a close frame without a code (RFC 6455 7.1.5)

# The sample key of RFC 6455 1.3; any 16 bytes in base64 are valid.
SAMPLE_KEY = "dGhlIHNhbXBsZSBub25jZQ=="


def upgrade_request(target="/ws", headers=None, *, host="127.0.0.1",
                    key=None, version="13", http="HTTP/1.1", drop=()):
    """The bytes of a WebSocket upgrade request for target ("/ws?user=a").
    headers: a dict or a list of (name, value) pairs, sent after the
    standard ones; a name that is also a standard header replaces it.
    key: Sec-WebSocket-Key (default: 16 random bytes in base64); version:
    Sec-WebSocket-Version; http: the request line's version; drop: names
    of standard headers to leave out (case-insensitive)."""
    std = [("Host", host), ("Upgrade", "websocket"),
           ("Connection", "Upgrade"),
           ("Sec-WebSocket-Key",
            key if key is not None
            else base64.b64encode(os.urandom(16)).decode()),
           ("Sec-WebSocket-Version", version)]
    extra = list(headers.items() if isinstance(headers, dict)
                 else headers or [])
    over = {k.lower() for k, _ in extra}
    gone = {d.lower() for d in drop}
    lines = [f"GET {target} {http}"]
    lines += [f"{k}: {v}" for k, v in std
              if k.lower() not in over and k.lower() not in gone]
    lines += [f"{k}: {v}" for k, v in extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def encode_frame(op, payload=b"", fin=True, mask=True, rsv=0, length=None):
    """One client frame. payload: bytes or str (UTF-8); mask=False sends
    it unmasked (a protocol violation from a client); rsv: the three RSV
    bits as a number 0-7; length: the length to announce (default: the
    payload's)."""
    if isinstance(payload, str):
        payload = payload.encode()
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | ((rsv & 7) << 4) | (op & 0x0F)
    m = 0x80 if mask else 0
    if n < 126:
        head = bytes([b0, m | n])
    elif n < 65536:
        head = bytes([b0, m | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([b0, m | 127]) + n.to_bytes(8, "big")
    if not mask:
        return head + payload
    key = os.urandom(4)
    # Whole-buffer XOR: fast enough for the megabyte frames tests send.
    k = (key * (len(payload) // 4 + 1))[:len(payload)]
    body = (int.from_bytes(payload, "big") ^ int.from_bytes(k, "big")
            ).to_bytes(len(payload), "big") if payload else b""
    return head + key + body


def close_payload(code=1000, reason=b""):
    """A close frame's payload: code (any int, even an invalid one) and
    reason (bytes as given, or str as UTF-8); code None: empty."""
    if code is None:
        return b""
    if isinstance(reason, str):
        reason = reason.encode()
    return code.to_bytes(2, "big") + reason


class Frame(tuple):
    """A received frame: unpacks as (op, payload); .fin, .rsv too."""

    def __new__(cls, op, payload, fin=True, rsv=0):
        f = super().__new__(cls, (op, payload))
        f.fin, f.rsv = fin, rsv
        return f

    @property
    def op(self):
        return self[0]

    @property
    def payload(self):
        return self[1]

    def __repr__(self):
        p = self[1] if len(self[1]) <= 80 else self[1][:80] + b"..."
        return f"Frame(op={self[0]:#x}, fin={self.fin}, {p!r})"


def parse_frame(buf, off=0):
    """(Frame, next offset) of the frame at buf[off:], or None if buf
    does not hold all of it yet. A masked frame is unmasked."""
    if len(buf) - off < 2:
        return None
    b0, b1 = buf[off], buf[off + 1]
    n, h = b1 & 0x7F, 2
    if n == 126:
        if len(buf) - off < 4:
            return None
        n, h = int.from_bytes(buf[off + 2:off + 4], "big"), 4
    elif n == 127:
        if len(buf) - off < 10:
            return None
        n, h = int.from_bytes(buf[off + 2:off + 10], "big"), 10
    key = None
    if b1 & 0x80:
        if len(buf) - off < h + 4:
            return None
        key = buf[off + h:off + h + 4]
        h += 4
    if len(buf) - off < h + n:
        return None
    p = bytes(buf[off + h:off + h + n])
    if key is not None:
        p = bytes(b ^ key[i % 4] for i, b in enumerate(p))
    return Frame(b0 & 0x0F, p, bool(b0 & 0x80), (b0 >> 4) & 7), off + h + n


def parse_status(head):
    """The status code of an HTTP reply's first line; None if it is not
    one."""
    parts = head.split(b"\r\n", 1)[0].split(None, 2)
    if len(parts) >= 2 and parts[0].startswith(b"HTTP/") \
            and parts[1].isdigit():
        return int(parts[1])
    return None


class RawWs:
    """A WebSocket client on a plain socket.

    RawWs(port, target, headers, **request) connects, sends
    upgrade_request(target, headers, **request) (or the bytes `request`),
    reads the reply head and, with expect=101 (the default), fails unless
    the upgrade succeeded. expect=None accepts any answer: look at
    .status (None when the server closed without a status line) and
    .head. rcvbuf: SO_RCVBUF set before connecting (a client that stops
    reading then hides little in the kernel). pong=True answers pings.
    RawWs.connect(port) only connects (send_raw() the request yourself,
    e.g. a byte at a time, then read_status()).

    Frames: send_frame(op, payload, fin, mask, rsv), send_text(),
    send_binary(), send_close(code, reason), send_raw(bytes); frame()
    reads one, recv_json() the next text frame as JSON, wait_closed() the
    server's close code. Counts: .pings received."""

    def __init__(self, port, target="/ws", headers=None, *, expect=101,
                 request=None, rcvbuf=None, timeout=5, pong=False, **req):
        self._connect(port, rcvbuf, timeout, pong)
        try:
            if request is None:
                request = upgrade_request(target, headers,
                    host=f"127.0.0.1:{port}", **req)
            self.send_raw(request)
            try:
                self.read_status(timeout)
            except TimeoutError:
                raise HarnessError(f"raw ws: no complete reply to the "
                    f"upgrade of {target[:80]} within {T(timeout):.1f}s: "
                    f"{self.buf[:200]!r}") from None
            if expect is not None and self.status != expect:
                raise HarnessError(f"raw ws: upgrade of {target[:80]} "
                    f"answered {self.status}, not {expect}: "
                    f"{self.head[:300]!r}")
        except BaseException:
            self.sock.close()
            raise

    @classmethod
    def connect(cls, port, rcvbuf=None, timeout=5, pong=False):
        """A connected socket, nothing sent yet."""
        self = cls.__new__(cls)
        self._connect(port, rcvbuf, timeout, pong)
        return self

    def _connect(self, port, rcvbuf, timeout, pong):
        self.port = port
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            # Before connect(): the window is fixed from the SYN on.
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(T(timeout))
        try:
            self.sock.connect(("127.0.0.1", port))
        except BaseException:
            self.sock.close()
            raise
        self.buf = b""
        self.status = None
        self.head = b""
        self.pings = 0
        self.pong = pong
        self.close_code = None    # the server's close frame, once read
        self.close_reason = None
        self.eof = False

    # -- bytes

    def _fill(self, deadline):
        """Reads once more into buf; False at EOF (or reset)."""
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        self.sock.settimeout(left)
        try:
            d = self.sock.recv(65536)
        except socket.timeout:
            raise TimeoutError from None
        except ConnectionError:
            d = b""
        if not d:
            self.eof = True
            return False
        self.buf += d
        return True

    def send_raw(self, data):
        """Sends bytes as they are. False if the server had closed (the
        write failed), which tests of refusals must expect."""
        try:
            self.sock.sendall(data)
            return True
        except OSError:
            return False

    def read_status(self, timeout=5):
        """Reads the HTTP reply head; returns its status (also .status;
        the head is .head, bytes after it stay in .buf). None if the
        server closed without a byte; a reply that is not HTTP fails.
        TimeoutError if nothing complete came within T(timeout)."""
        deadline = time.monotonic() + T(timeout)
        while b"\r\n\r\n" not in self.buf:
            if not self._fill(deadline):
                break
        if b"\r\n\r\n" in self.buf:
            self.head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        else:
            self.head, self.buf = self.buf, b""
        if not self.head:
            self.status = None
            return None
        self.status = parse_status(self.head)
        if self.status is None:
            raise HarnessError(f"raw ws: not an HTTP reply: "
                f"{self.head[:200]!r}")
        return self.status

    def header(self, name):
        """A header of the reply head (first match), or None."""
        for line in self.head.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            if k.strip().lower() == name.lower().encode():
                return v.strip().decode("latin-1")
        return None

    # -- frames

    def send_frame(self, op, payload=b"", fin=True, mask=True, rsv=0,
                   length=None):
        """See encode_frame(); returns send_raw()'s verdict."""
        return self.send_raw(encode_frame(op, payload, fin, mask, rsv,
                                          length))

    def send_text(self, text, **kw):
        return self.send_frame(OP_TEXT, text, **kw)

    def send_binary(self, data, **kw):
        return self.send_frame(OP_BINARY, data, **kw)

    def send_json(self, obj, **kw):
        return self.send_frame(OP_TEXT, json.dumps(obj), **kw)

    def send_close(self, code=1000, reason=b"", **kw):
        return self.send_frame(OP_CLOSE, close_payload(code, reason), **kw)

    def frame(self, timeout=5):
        """The next frame (op, payload), pings included (counted, and
        answered when pong=True); a close frame also sets .close_code and
        .close_reason. Raises EOFError when the connection ended,
        TimeoutError when nothing came within T(timeout)."""
        deadline = time.monotonic() + T(timeout)
        while True:
            got = parse_frame(self.buf)
            if got is not None:
                break
            if not self._fill(deadline):
                raise EOFError
        f, used = got
        self.buf = self.buf[used:]
        if f.op == OP_PING:
            self.pings += 1
            if self.pong:
                self.send_frame(OP_PONG, f.payload)
        elif f.op == OP_CLOSE:
            p = f.payload
            self.close_code = (int.from_bytes(p[:2], "big") if len(p) >= 2
                               else CLOSE_NO_STATUS)
            self.close_reason = p[2:]
        return f

    def recv(self, timeout=5):
        """The next data frame's payload (str for text, bytes for binary),
        skipping pings and pongs; fails on a close or EOF."""
        deadline = time.monotonic() + T(timeout)
        while True:
            try:
                f = self.frame(max(deadline - time.monotonic(), 0) / MULT)
            except EOFError:
                raise HarnessError("raw ws: connection ended") from None
            except TimeoutError:
                raise HarnessError(f"raw ws: no frame within "
                    f"{T(timeout):.1f}s") from None
            if f.op in (OP_PING, OP_PONG):
                continue
            if f.op == OP_CLOSE:
                raise HarnessError(f"raw ws: closed with {self.close_code} "
                    f"{self.close_reason!r}")
            if f.op == OP_TEXT:
                return f.payload.decode()
            return f.payload

    def recv_json(self, timeout=5):
        """The next data frame, which must be text, as JSON."""
        m = self.recv(timeout)
        if not isinstance(m, str):
            raise HarnessError(f"raw ws: expected text, got {m[:64]!r}")
        return json.loads(m)

    def wait_closed(self, timeout=5):
        """Reads (dropping frames) until the server's close frame or EOF.
        Returns the close code: CLOSE_NO_STATUS (1005) for a close frame
        without one, None for a connection dropped without a close frame.
        Fails if the connection is still up after T(timeout)."""
        deadline = time.monotonic() + T(timeout)
        while True:
            left = (deadline - time.monotonic()) / MULT
            try:
                f = self.frame(max(left, 0.001))
            except EOFError:
                return None
            except TimeoutError:
                raise HarnessError(f"raw ws: still open after "
                    f"{T(timeout):.1f}s ({self.pings} pings seen)") from None
            if f.op == OP_CLOSE:
                return self.close_code

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def handshake_status(port, target="/ws", headers=None, timeout=5, **req):
    """The HTTP status an upgrade request is answered with (101: upgraded),
    or None if the server closed the connection without a status line.
    lws answers refusals in HTTP/1.0, which websockets does not parse:
    hence a raw socket. **req: see upgrade_request()."""
    with RawWs(port, target, headers, expect=None, timeout=timeout,
               **req) as ws:
        return ws.status


def new_dir(base, name):
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:40]
    return tempfile.mkdtemp(prefix=name + "-", dir=base)


def rmtree(d):
    shutil.rmtree(d, ignore_errors=True)


def uid(prefix):
    """A user or channel name unique to this run."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def publish_until_all_receive(publish, clients, timeout=20, check=None,
                              what="deliveries to resume"):
    """Publishes {"probe": n} (publish(payload) does it) every ~100 ms until
    every client received at least one probe; probe frames are consumed.
    For waits after a restart, where no event says "ready"."""
    got = set()
    n = 0
    deadline = time.monotonic() + T(timeout)
    while len(got) < len(clients):
        if check is not None:
            check()
        if time.monotonic() >= deadline:
            missing = [c for c in clients if c not in got]
            raise HarnessError(f"timed out after {T(timeout):.1f}s waiting "
                f"for {what}: no probe reached {missing}")
        publish(json.dumps({"probe": n}))
        n += 1
        for c in clients:
            if c in got:
                continue
            for f in c.collect(quiet=0.1 / MULT, timeout=0.5):
                if isinstance(f, dict) and isinstance(f.get("data"), dict) \
                        and "probe" in f["data"]:
                    got.add(c)
            if c.closed is not None:
                raise HarnessError(f"{c.label} was disconnected while "
                    f"waiting for {what}: {c.closed}")
    return n


def not_probes(frames):
    """frames without the probe messages of publish_until_all_receive."""
    return [f for f in frames if not (isinstance(f, dict)
            and isinstance(f.get("data"), dict) and "probe" in f["data"])]
