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


def free_port():
    """A loopback TCP port that was free a moment ago."""
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

    def start_bridge(self):
        """Starts the bridge; ready once it has bound bus.ipc and up.ipc
        (new socket files: a killed bridge leaves its old ones behind).
        The sockets are not probed with a connection: a stray connection
        makes nng's listener pause, which delays the workers."""
        socks = [os.path.join(self.runtime_dir, s)
                 for s in ("bus.ipc", "up.ipc")]
        before = {s: _file_id(s) for s in socks}
        self.bridge = self.h.spawn(f"bridge-{self.name}",
            [binary("bridge/wspush-bridge"), "-c", self.conf])
        wait_until(lambda: all(_is_new_socket(s, before[s]) for s in socks),
            15, f"{self.bridge.name} to bind {socks}",
            check=self.bridge.check_running, interval=0.02)

    def start_gateway(self):
        self.gateway = self.h.spawn(f"gateway-{self.name}",
            [binary("gateway/wspush-gateway"), "-c", self.conf],
            cls=GatewayProc, env=self.gateway_env)
        self.wait_workers()
        self.wait_welcome()
        if self.bridge is not None and self.bridge.running():
            self.wait_attached()

    def wait_attached(self):
        """The bridge's /healthz says every worker is attached both ways
        (reports upstream, hears the bus). A welcome proves it for one
        worker only; tests that spread clients over workers need all."""
        want = f"ok: redis subscribed, {self.workers} workers attached"

        def ok():
            st, body = http_get(self.metrics_port, "/healthz", timeout=2)
            # startswith: a note may follow (history unavailable).
            return st == 200 and \
                body.decode(errors="replace").startswith(want)
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
        return http_get(port or self.port, "/healthz")[0]

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
# fields (DESIGN.md: clients ignore unknown fields), so comparisons drop
# the others.
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
# A hand-made client that never answers pings


class RawWs:
    """A WebSocket client on a plain socket: handshake by hand, reads
    frames, never sends a pong. rcvbuf: SO_RCVBUF set before connecting
    (a client that stops reading then hides little in the kernel)."""

    def __init__(self, port, path, rcvbuf=None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(T(5))
        self.sock.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        req = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
               "Upgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\n"
               "Sec-WebSocket-Version: 13\r\n\r\n")
        self.sock.sendall(req.encode())
        buf = b""
        deadline = time.monotonic() + T(5)
        while b"\r\n\r\n" not in buf:
            if time.monotonic() > deadline:
                raise HarnessError("raw ws: no handshake reply")
            d = self.sock.recv(4096)
            if not d:
                raise HarnessError(f"raw ws: closed during handshake {buf!r}")
            buf += d
        head, self.buf = buf.split(b"\r\n\r\n", 1)
        if b" 101 " not in head.split(b"\r\n")[0] + b" ":
            raise HarnessError(f"raw ws: handshake refused: {head!r}")
        self.pings = 0

    def _need(self, n, deadline):
        while len(self.buf) < n:
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
                raise EOFError
            self.buf += d

    def frame(self, timeout=5):
        """(opcode, payload); raises EOFError on a closed socket,
        TimeoutError when nothing came."""
        deadline = time.monotonic() + T(timeout)
        self._need(2, deadline)
        b0, b1 = self.buf[0], self.buf[1]
        n, off = b1 & 0x7F, 2
        if n == 126:
            self._need(4, deadline)
            n, off = int.from_bytes(self.buf[2:4], "big"), 4
        elif n == 127:
            self._need(10, deadline)
            n, off = int.from_bytes(self.buf[2:10], "big"), 10
        if b1 & 0x80:
            off += 4  # servers do not mask; skip a key anyway
        self._need(off + n, deadline)
        payload = self.buf[off:off + n]
        self.buf = self.buf[off + n:]
        op = b0 & 0x0F
        if op == 0x9:
            self.pings += 1
        return op, payload

    def send_text(self, text):
        """Sends one masked text frame."""
        data = text.encode() if isinstance(text, str) else text
        mask = os.urandom(4)
        n = len(data)
        if n < 126:
            head = bytes([0x81, 0x80 | n])
        elif n < 65536:
            head = bytes([0x81, 0x80 | 126]) + n.to_bytes(2, "big")
        else:
            head = bytes([0x81, 0x80 | 127]) + n.to_bytes(8, "big")
        body = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        self.sock.sendall(head + mask + body)

    def wait_closed(self, timeout):
        """Reads (ignoring pings) until a close frame or EOF. Returns the
        close code (None for a bare EOF); raises HarnessError if the
        connection is still up after T(timeout)."""
        deadline = time.monotonic() + T(timeout)
        while True:
            left = (deadline - time.monotonic()) / MULT
            try:
                op, payload = self.frame(max(left, 0.001))
            except EOFError:
                return None
            except TimeoutError:
                raise HarnessError(f"raw ws: still open after "
                    f"{T(timeout):.1f}s ({self.pings} pings ignored)")
            if op == 0x8:
                return int.from_bytes(payload[:2], "big") if payload else None

    def close(self):
        self.sock.close()


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
