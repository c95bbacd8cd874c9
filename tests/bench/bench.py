#!/usr/bin/python3
"""The wspush fan-out benchmark, beside nchan, Socket.IO and a bare C floor.

Started by run.sh. For each server it starts a private redis-server and the
server itself (stopped by PID), opens connections with wsb_client processes
(one thread, epoll, up to ~10,000 connections each, spread over 127.0.0.x
source addresses), publishes with wsb_pub and reads back per-connection
accounting (loss, duplicates, order) and a latency histogram. The figure that
survives a noisy shared machine is CPU-us per delivery: the on-CPU time
(utime+stime, read at ns resolution from every thread's schedstat) of every
process of the server (wspush: gateway master, workers, bridge; Redis
reported apart) divided by the messages the clients received.

The servers, each with its own private redis-server:
  wspush     wspush-bridge + wspush-gateway (workers = 2, auth none), the
             publisher does PUBLISH wspush:channel:<c> / wspush:user:<u>
  nchan      Debian nginx + libnginx-mod-nchan, 2 workers, Redis mode
             (nchan_redis_pass), websocket subscribers on /sub/<id>, the
             publisher POSTs to /pub/<id> on one keep-alive connection
             (nchan stores and fans out through Redis)
  sio        Socket.IO + @socket.io/redis-adapter, 2 node processes on two
             ports (the clients alternate, as behind an L4 balancer); each
             socket joins the room in its query; the publisher PUBLISHes
             the adapter's msgpack format, as @socket.io/redis-emitter does
  floor      wsb_floor: 2 workers writing one precomputed frame per
             connection with one write() each
Payloads are 100 bytes: {"s":<phase*1e9+seq>,"t":<us>,"p":"xxx..."}.

Scenarios (full run), in this order per server:
  memory     10,000 then 30,000 idle connections, one user each: server RSS
             growth per connection (VmRSS, /proc)
  user       on the 10,000: 10,000 messages, each to one user (2,000/s)
  latency    5,000 connections on one channel, 10 msg/s for 10 s: p50/p99/
             p999 and CPU-us per delivery (also the 5,000 point of scaling)
  burst      500 messages at once to the 5,000: deliveries/s
  fanout     publish rate stepped over a fixed grid (3 s steps, a failing
             step is retried once) until not every message arrives with
             p99 < 100 ms: the highest passing rate
  scaling    1,000 conns x 50 msg/s and 20,000 conns x 2.5 msg/s (50,000
             deliveries/s each, like the 5,000 x 10 point)
The smoke mode (--smoke) runs 200 connections for a few seconds against
wspush only and exits non-zero on any loss, duplicate or reorder.
"""
import argparse
import datetime
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CLK_TCK = os.sysconf("SC_CLK_TCK")
PHASE_MUL = 1000000000
HIST_BUCKETS = 32 + 36 * 16
FANOUT_GRID = [2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30, 40, 50, 60, 80,
               100, 120, 150, 200, 250, 300, 400, 500, 600, 800, 1000, 1200,
               1500, 2000, 2500, 3000, 4000, 5000]
USER_GRID = [2000, 3000, 4000, 6000, 8000, 10000, 12000, 15000, 20000,
             25000, 30000, 40000, 50000]
PEERS = {"wspush": "wspush", "nchan": "nchan", "sio": "Socket.IO",
         "floor": "C floor"}


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


class BenchError(Exception):
    pass


# ---- processes -------------------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def proc_table():
    """pid -> (ppid, utime+stime ticks) for every process we can read."""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                s = f.read()
        except OSError:
            continue
        rest = s[s.rindex(")") + 2:].split()
        out[int(d)] = (int(rest[1]), int(rest[11]) + int(rest[12]))
    return out


def tree(roots, table=None):
    table = table or proc_table()
    pids = [p for p in roots if p in table]
    seen = set(pids)
    i = 0
    while i < len(pids):
        for p, (pp, _) in table.items():
            if pp == pids[i] and p not in seen:
                seen.add(p)
                pids.append(p)
        i += 1
    return pids


def cpu_us(roots):
    """CPU time of the processes and all their descendants, in us.

    Read from each thread's /proc/PID/task/TID/schedstat (on-CPU time in ns,
    user + system): the same time as utime+stime, without their 10 ms
    ticks. Falls back to utime+stime where schedstat is missing."""
    table = proc_table()
    total = 0.0
    for p in tree(roots, table):
        ns, ok = 0, False
        try:
            for t in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{t}/schedstat") as f:
                    ns += int(f.read().split()[0])
                    ok = True
        except (OSError, ValueError, IndexError):
            ok = False
        total += ns / 1000 if ok else table[p][1] * 1e6 / CLK_TCK
    return total


def fds_by_process(roots):
    """[(comm, open descriptors, soft limit)] for every process of the
    trees, most first: how the connections spread over a server's
    workers (each has a 20,000-descriptor limit here)."""
    out = []
    for p in tree(roots):
        try:
            with open(f"/proc/{p}/comm") as f:
                comm = f.read().strip()
            n = len(os.listdir(f"/proc/{p}/fd"))
            limit = 0
            with open(f"/proc/{p}/limits") as f:
                for line in f:
                    if line.startswith("Max open files"):
                        limit = int(line.split()[3])
            out.append((comm, n, limit))
        except (OSError, ValueError, IndexError):
            pass
    return sorted(out, key=lambda x: -x[1])


def mem_kib(roots, path="status", field="VmRSS:"):
    """Summed VmRSS (or, with smaps_rollup/Pss:, proportional set size,
    which splits pages shared between a master and its workers)."""
    total = 0
    for p in tree(roots):
        try:
            with open(f"/proc/{p}/{path}") as f:
                for line in f:
                    if line.startswith(field):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def rss_kib(roots):
    return mem_kib(roots)


def pss_kib(roots):
    return mem_kib(roots, "smaps_rollup", "Pss:")


# The kernel's counters that say why loopback connections or deliveries
# stalled: a full accept queue (ListenOverflows: the SYN or final ACK is
# dropped and the client retransmits it after 1, 3, 7... s), SYN
# retransmissions, retransmission timeouts, packets dropped because a CPU's
# input queue was full (softnet, net.core.netdev_max_backlog). They are
# machine-wide: on a shared machine other runs add to them.
NET_KEYS = ("ListenOverflows", "ListenDrops", "TCPReqQFullDrop",
            "TCPReqQFullDoCookies", "TCPSynRetrans", "TCPTimeouts",
            "RetransSegs", "TCPAbortOnMemory", "TCPMemoryPressures",
            "TCPTimeWaitOverflow", "EstabResets", "softnet_dropped",
            "softnet_squeezed")


def net_counters():
    out = {}
    for path in ("/proc/net/netstat", "/proc/net/snmp"):
        try:
            with open(path) as f:
                lines = f.read().splitlines()
        except OSError:
            continue
        for head, vals in zip(lines[::2], lines[1::2]):
            for k, v in zip(head.split()[1:], vals.split()[1:]):
                if k in NET_KEYS:
                    try:
                        out[k] = int(v)
                    except ValueError:
                        pass
    try:
        with open("/proc/net/softnet_stat") as f:
            for line in f:
                col = line.split()
                out["softnet_dropped"] = (out.get("softnet_dropped", 0) +
                                          int(col[1], 16))
                out["softnet_squeezed"] = (out.get("softnet_squeezed", 0) +
                                           int(col[2], 16))
    except (OSError, IndexError, ValueError):
        pass
    return out


def delta_text(before, after):
    """The counters that changed, "k=+n ...", or "none"."""
    parts = [f"{k}=+{after[k] - before.get(k, 0)}" for k in sorted(after)
             if after[k] - before.get(k, 0) > 0]
    return " ".join(parts) or "none"


class Proc:
    """A child process with its output in a log file, stopped by PID."""

    def __init__(self, name, args, logdir, env=None, cwd=None):
        self.name = name
        self.logpath = os.path.join(logdir, f"{name}.log")
        self.logf = open(self.logpath, "ab")
        self.p = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                  stdout=self.logf, stderr=subprocess.STDOUT,
                                  env=env, cwd=cwd)
        self.pid = self.p.pid

    def alive(self):
        return self.p.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=10):
        if self.p.poll() is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.p.wait(5)
        self.logf.close()

    def tail(self, n=15):
        try:
            with open(self.logpath, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""


def wait_until(cond, timeout, procs=(), what="ready"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        for p in procs:
            if not p.alive():
                raise BenchError(f"{p.name} exited while waiting for {what}:"
                                 f"\n{p.tail()}")
        if cond():
            return
        time.sleep(0.05)
    raise BenchError(f"timed out waiting for {what}")


# ---- servers ---------------------------------------------------------------

class Server:
    """One server under test with its own private Redis."""
    mode = None

    def __init__(self, bench, workdir):
        self.bench = bench
        self.dir = workdir
        os.makedirs(workdir, exist_ok=True)
        self.procs = []
        self.redis = None

    def start_redis(self):
        self.redis_port = free_port()
        self.redis = Proc("redis", ["redis-server", "--port",
                                    str(self.redis_port), "--bind",
                                    "127.0.0.1", "--save", "",
                                    "--appendonly", "no", "--dir", self.dir],
                          self.dir)
        wait_until(lambda: port_open(self.redis_port), 10, [self.redis],
                   "redis")

    def roots(self):
        return [p.pid for p in self.procs]

    def cpu(self):
        return cpu_us(self.roots())

    def redis_cpu(self):
        return cpu_us([self.redis.pid])

    def rss(self):
        return rss_kib(self.roots())

    def pss(self):
        return pss_kib(self.roots())

    def redis_rss(self):
        return rss_kib([self.redis.pid])

    def check_alive(self):
        for p in self.procs + [self.redis]:
            if not p.alive():
                raise BenchError(f"{p.name} died:\n{p.tail()}")

    def stop(self):
        """Stops everything by PID; returns sanitizer reports found in
        the servers' logs (an ASan build of wspush in the smoke run)."""
        for p in reversed(self.procs):
            p.stop()
        if self.redis:
            self.redis.stop()
        found = []
        for p in self.procs:
            text = p.tail(100000)
            for mark in ("ERROR: AddressSanitizer", "runtime error:",
                         "ERROR: LeakSanitizer"):
                if mark in text:
                    found.append(f"{p.name}: {mark} (see {p.logpath})")
        return found

    def diag(self):
        """Counters of the server that explain refusals and losses
        (name -> value), compared before/after a step; {} if none."""
        return {}

    # What the clients and the publisher need.
    def client_ports(self):
        return [self.port]

    def pub_args(self):
        return ["--mode", self.mode, "--port", str(self.redis_port)]


class WspushServer(Server):
    mode = "wspush"
    label = "wspush"

    def start(self):
        b = self.bench
        for exe in (b.gateway, b.bridge):
            if not os.access(exe, os.X_OK):
                raise BenchError(f"{exe} is not built")
        self.start_redis()
        self.port = free_port()
        run = os.path.join(self.dir, "run")
        os.makedirs(run, exist_ok=True)
        self.metrics_port = free_port()
        conf = os.path.join(self.dir, "wspush.conf")
        with open(conf, "w") as f:
            f.write(f"""[node]
id = bench
runtime_dir = {run}
log_level = warn
[redis]
url = redis://127.0.0.1:{self.redis_port}
[gateway]
listen = 127.0.0.1:{self.port}
workers = {getattr(b.args, "workers", 2)}
max_queued_bytes = 67108864
[auth]
mode = none
[bridge]
metrics_listen = 127.0.0.1:{self.metrics_port}
""")
            # --wspush-set section.key=value: after the defaults above
            # (a section may appear twice in the file).
            # (getattr: bench_history.py and others bring their own
            # options, without these two.)
            for kv in getattr(b.args, "wspush_set", []):
                key, _, val = kv.partition("=")
                sec, _, name = key.partition(".")
                f.write(f"[{sec}]\n{name} = {val}\n")
        bridge = Proc("bridge", [b.bridge, "-c", conf], self.dir)
        self.procs.append(bridge)
        # bus1.ipc: slot 1's bus stream (bus.ipc: builds before per-slot
        # routing, for before/after runs).
        wait_until(lambda: any(os.path.exists(os.path.join(run, s))
                               for s in ("bus1.ipc", "bus.ipc")),
                   10, [bridge], "the bridge's bus socket")
        gw = Proc("gateway", [b.gateway, "-c", conf], self.dir)
        self.procs.append(gw)
        wait_until(lambda: port_open(self.port), 15, [bridge, gw],
                   "the gateway port")
        # Every worker answers /healthz 200 once attached to the bridge;
        # ask a few times so both workers are likely to have answered.
        oks = 0
        end = time.monotonic() + 15
        while oks < 6 and time.monotonic() < end:
            if http_status(self.port, "/healthz") == 200:
                oks += 1
            else:
                time.sleep(0.1)
        if oks == 0:
            log("wspush: /healthz never answered 200; going on")

    # Series (worker and gen labels summed away) whose growth means a
    # refusal, a drop or an outage; and gauges worth a look.
    DIAG_WORDS = ("drop", "reject", "closed", "outage", "restart", "fail",
                  "gap", "crash", "reconnect")
    DIAG_GAUGES = ("wspush_interest_pending", "wspush_handshakes_pending",
                   "wspush_queue_bytes")
    # Where messages got to: from Redis into the bridge, onto the bus,
    # into the workers, out to the connections.
    DIAG_FLOW = ("wspush_messages_from_redis_total",
                 "wspush_envelopes_published_total",
                 "wspush_bus_messages_in_total",
                 "wspush_frames_delivered_total")

    def diag(self):
        """The bridge's /metrics (workers report to it about once a
        second, so a count may lag a little)."""
        data = http_get(self.metrics_port, "/metrics")
        if data is None:
            return {}
        out = {}
        for line in data.decode(errors="replace").split("\r\n\r\n", 1)[-1] \
                .splitlines():
            if line.startswith("#") or " " not in line:
                continue
            name, _, val = line.rpartition(" ")
            base = name.split("{", 1)[0]
            if not (base in self.DIAG_GAUGES or base in self.DIAG_FLOW or (
                    base.endswith("_total") and
                    any(w in base for w in self.DIAG_WORDS))):
                continue
            labels = ""
            if "{" in name:
                kept = [kv for kv in name[name.index("{") + 1:-1].split(",")
                        if kv and not kv.startswith(("worker=", "gen="))]
                labels = "{" + ",".join(kept) + "}" if kept else ""
            try:
                out[base + labels] = out.get(base + labels, 0) + float(val)
            except ValueError:
                pass
        return out


def http_get(port, path, timeout=5):
    """The whole answer (head and body) to GET path on a loopback port, or
    None if the connection failed."""
    try:
        with socket.create_connection(("127.0.0.1", port),
                                      timeout=timeout) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n"
                      "Connection: close\r\n\r\n".encode())
            data = b""
            while True:
                chunk = s.recv(1 << 16)
                if not chunk:
                    return data
                data += chunk
    except OSError:
        return None


def http_status(port, path):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n"
                      "Connection: close\r\n\r\n".encode())
            data = s.recv(256)
        return int(data.split()[1])
    except (OSError, ValueError, IndexError):
        return 0


class NchanServer(Server):
    mode = "nchan"
    label = "nchan"

    def start(self):
        self.start_redis()
        self.port = free_port()
        d = self.dir
        conf = os.path.join(d, "nginx.conf")
        mod = "/usr/lib/nginx/modules/ngx_nchan_module.so"
        with open(conf, "w") as f:
            f.write(f"""load_module {mod};
daemon off;
master_process on;
worker_processes {self.bench.args.nginx_workers};
worker_rlimit_nofile 20000;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 19900; }}
http {{
  access_log off;
  keepalive_requests 100000000;
  keepalive_timeout 600s;
  client_body_temp_path {d}/tmp_body;
  proxy_temp_path {d}/tmp_proxy;
  fastcgi_temp_path {d}/tmp_fcgi;
  uwsgi_temp_path {d}/tmp_uwsgi;
  scgi_temp_path {d}/tmp_scgi;
  upstream redis_bench {{ nchan_redis_server redis://127.0.0.1:{self.redis_port}; }}
  server {{
    listen 127.0.0.1:{self.port} reuseport backlog=4096;
    location ~ ^/sub/(.+)$ {{
      nchan_subscriber websocket;
      nchan_channel_id $1;
      nchan_redis_pass redis_bench;
      nchan_subscriber_first_message newest;
    }}
    location ~ ^/msub/(.+)$ {{
      nchan_subscriber websocket;
      nchan_channel_id $1 all;
      nchan_redis_pass redis_bench;
      nchan_subscriber_first_message newest;
    }}
    location = /nchan_status {{
      nchan_stub_status;
    }}
    location ~ ^/pub/(.+)$ {{
      nchan_publisher;
      nchan_channel_id $1;
      nchan_redis_pass redis_bench;
    }}
  }}
}}
""")
        ngx = Proc("nginx", ["nginx", "-p", d, "-c", conf, "-e",
                             os.path.join(d, "error.log")], d)
        self.procs.append(ngx)
        wait_until(lambda: port_open(self.port), 10, [ngx], "nginx")
        # Let both workers connect to Redis.
        time.sleep(1.0)

    # error.log lines that explain refusals and losses: a worker that
    # crashed (its connections are gone), Redis marked failed (nchan then
    # answers 503 and stops delivering), shared memory exhausted, too few
    # worker_connections.
    DIAG_MARKS = (("worker_crashed", "exited on signal"),
                  ("redis_timeouts", "took longer than the timeout"),
                  ("redis_errors", "nchan: Redis"),
                  ("shm_exhausted", "shared memory"),
                  ("conns_exhausted", "worker_connections are not enough"),
                  ("fd_exhausted", "Too many open files"))

    def status(self):
        """nchan_stub_status as name -> number (shared memory used and
        its limit in KiB, channels, subscribers, ...)."""
        out = {}
        data = http_get(self.port, "/nchan_status")
        if data is None:
            return out
        for line in data.decode(errors="replace").splitlines():
            k, sep, v = line.partition(":")
            if sep:
                try:
                    out[k.strip()] = float(v.strip().rstrip("K"))
                except ValueError:
                    pass
        return out

    def diag(self):
        out = {k: 0 for k, _ in self.DIAG_MARKS}
        out["error_lines"] = 0
        try:
            with open(os.path.join(self.dir, "error.log"), "rb") as f:
                for raw in f:
                    line = raw.decode(errors="replace")
                    if "[error]" in line or "[alert]" in line or \
                            "[crit]" in line or "[emerg]" in line:
                        out["error_lines"] += 1
                    for k, mark in self.DIAG_MARKS:
                        if mark in line:
                            out[k] += 1
        except OSError:
            pass
        return out

    def pub_args(self):
        return ["--mode", "nchan", "--port", str(self.port)]


class SioServer(Server):
    mode = "sio"
    label = "Socket.IO"

    def start(self):
        if not os.path.isdir(os.path.join(HERE, "node_modules")):
            raise BenchError("node_modules missing: run.sh runs npm ci")
        self.start_redis()
        self.ports = [free_port(), free_port()]
        env = dict(os.environ, NODE_ENV="production")
        for i, port in enumerate(self.ports):
            p = Proc(f"sio{i}", ["node", os.path.join(HERE, "sio_server.js"),
                                 str(port), str(self.redis_port)],
                     self.dir, env=env, cwd=HERE)
            self.procs.append(p)
        for p, port in zip(self.procs, self.ports):
            wait_until(lambda port=port: port_open(port), 20, [p],
                       p.name)
            wait_until(lambda p=p: "READY" in p.tail(), 10, [p], p.name)

    def client_ports(self):
        return self.ports


class FloorServer(Server):
    mode = "floor"
    label = "C floor"

    def start(self):
        self.start_redis()
        self.port = free_port()
        p = Proc("floor", [self.bench.bin("wsb_floor"), "--port",
                           str(self.port), "--redis-port",
                           str(self.redis_port), "--workers", "2"],
                 self.dir)
        self.procs.append(p)
        wait_until(lambda: port_open(self.port), 10, [p], "floor")
        time.sleep(0.3)  # the workers' PSUBSCRIBE


SERVERS = {"wspush": WspushServer, "nchan": NchanServer, "sio": SioServer,
           "floor": FloorServer}


# ---- clients ---------------------------------------------------------------

class Client:
    def __init__(self, args, logpath):
        self.logf = open(logpath, "ab")
        self.p = subprocess.Popen(args, stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=self.logf)
        self.buf = b""

    def send(self, line):
        self.p.stdin.write((line + "\n").encode())
        self.p.stdin.flush()

    def readline(self, timeout):
        end = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = end - time.monotonic()
            if left <= 0:
                raise BenchError("client did not answer in time")
            r, _, _ = select.select([self.p.stdout], [], [], left)
            if r:
                chunk = os.read(self.p.stdout.fileno(), 1 << 20)
                if not chunk:
                    raise BenchError(f"client exited ({self.p.poll()})")
                self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode()

    def close(self):
        if self.p.poll() is None:
            try:
                self.send("QUIT")
            except OSError:
                pass
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(5)
        self.logf.close()


def merge(reports):
    m = {"conns": 0, "uniq": 0, "dup": 0, "reorder": 0, "stray": 0, "bad": 0,
         "other": 0, "closed": 0, "late": 0, "expect": reports[0]["expect"],
         "first_us": 0, "last_us": 0, "hist": [0] * HIST_BUCKETS}
    for r in reports:
        for k in ("conns", "uniq", "dup", "reorder", "stray", "bad", "other",
                  "closed", "late"):
            m[k] += r.get(k, 0)
        if r["first_us"] and (not m["first_us"] or
                              r["first_us"] < m["first_us"]):
            m["first_us"] = r["first_us"]
        m["last_us"] = max(m["last_us"], r["last_us"])
        for b, n in r["hist"]:
            m["hist"][b] += n
    return m


def bucket_mid(b):
    if b < 32:
        return b + 0.5
    e = 5 + (b - 32) // 16
    m = (b - 32) % 16
    lo = (16 + m) << (e - 4)
    return lo + (1 << (e - 4)) / 2


def percentile(hist, q):
    total = sum(hist)
    if total == 0:
        return None
    want = q * total
    acc = 0
    for b, n in enumerate(hist):
        acc += n
        if acc >= want:
            return bucket_mid(b)
    return bucket_mid(len(hist) - 1)


class Group:
    """n connections over several wsb_client processes."""

    def __init__(self, bench, srv, n, procs, topic=None, user_prefix=None,
                 user_base=0, src_slot=0, extra=(), inflight=200,
                 connect_rate=0, connect_timeout_s=120):
        """inflight and connect_rate are for the whole group (split over
        its processes), so that a group's pace does not depend on how
        many processes it has."""
        self.clients = []
        per = [n // procs + (1 if i < n % procs else 0) for i in range(procs)]
        base = user_base
        for i, k in enumerate(per):
            pace = ["--inflight", str(max(1, inflight // procs))]
            if connect_rate:
                pace += ["--connect-rate",
                         str(max(1, int(connect_rate / procs)))]
            args = [bench.bin("wsb_client"), "--mode", srv.mode, "--port",
                    ",".join(map(str, srv.client_ports())), "--conns",
                    str(k), "--user-base", str(base), "--src-base",
                    str(2 + 16 * ((src_slot + i) % 15)), "--src-count", "16",
                    "--connect-timeout-s", str(int(connect_timeout_s))
                    ] + pace + list(extra)
            if topic:
                args += ["--topic", topic]
            else:
                args += ["--user-prefix", user_prefix]
            self.clients.append(Client(args, os.path.join(
                srv.dir, f"client-{topic or user_prefix}-{base}.log")))
            base += k
        self.n = n

    def wait_ready(self, timeout=150):
        """Sums the clients' READY lines: (ok, failed); self.why gets the
        reasons (fail_*, drop_* counts summed; the handshake times' worst
        client)."""
        ok = fail = 0
        self.why = {}
        end = time.monotonic() + timeout
        for c in self.clients:
            line = c.readline(max(1.0, end - time.monotonic()))
            parts = line.split()
            if not parts or parts[0] != "READY":
                raise BenchError(f"client said {line!r}")
            ok += int(parts[1])
            fail += int(parts[2])
            for kv in parts[3:]:
                k, _, v = kv.partition("=")
                try:
                    v = float(v)
                except ValueError:
                    continue
                if k.startswith("hs_") or k == "open_s":
                    self.why[k] = max(self.why.get(k, 0), v)
                else:
                    self.why[k] = self.why.get(k, 0) + int(v)
        return ok, fail

    def phase(self, pid, expect):
        for c in self.clients:
            c.send(f"PHASE {pid} {expect}")
        for c in self.clients:
            if c.readline(30) != "OK":
                raise BenchError("client refused PHASE")

    def wait(self, quiet_ms, max_ms):
        for c in self.clients:
            c.send(f"WAIT {quiet_ms} {max_ms}")
        return merge([json.loads(c.readline(max_ms / 1000 + 30))
                      for c in self.clients])

    def pids(self):
        return [c.p.pid for c in self.clients]

    def close(self):
        """Stops the clients; returns the exit codes that were not 0."""
        bad = []
        for c in self.clients:
            c.close()
            if c.p.returncode not in (0, None):
                bad.append(c.p.returncode)
        return bad


# ---- the benchmark ---------------------------------------------------------

class Bench:
    def __init__(self, args):
        self.args = args
        self.build = os.path.abspath(args.build_dir)
        self.bindir = os.path.abspath(args.bin_dir)
        self.gateway = os.path.join(self.build, "gateway", "wspush-gateway")
        self.bridge = os.path.join(self.build, "bridge", "wspush-bridge")
        self.phase_no = 0
        self.failures = []

    def n(self, conns):
        """A connection count, scaled down for development runs."""
        return max(10, int(conns * self.args.scale))

    def bin(self, name):
        return os.path.join(self.bindir, name)

    def next_phase(self):
        self.phase_no += 1
        return self.phase_no

    def publish(self, srv, count, rate, topic=None, users=None,
                user_prefix=None, timeout=120):
        args = [self.bin("wsb_pub")] + srv.pub_args() + [
            "--phase", str(self.phase_no), "--count", str(count), "--rate",
            str(rate), "--size", "100"]
        if topic:
            args += ["--topic", topic]
        else:
            args += ["--users", str(users), "--user-prefix", user_prefix]
        r = subprocess.run(args, capture_output=True, text=True,
                           timeout=timeout)
        if r.returncode != 0 or not r.stdout.strip():
            raise BenchError(f"wsb_pub failed ({r.returncode}): "
                             f"{r.stderr.strip()[-500:]}")
        return json.loads(r.stdout.strip().splitlines()[-1])

    def run_phase(self, srv, group, name, count, rate, topic=None,
                  users=None, user_prefix=None, quiet_ms=1500,
                  max_ms=60000):
        """Publishes count messages and measures; every connection of the
        group expects count/users (or count) of them."""
        expect = count // users if users else count
        pid = self.next_phase()
        group.phase(pid, expect)
        srv.check_alive()
        perf = self.perf_start(srv, name)
        c0, r0, k0 = srv.cpu(), srv.redis_cpu(), cpu_us(group.pids())
        t0 = time.monotonic()
        pub = self.publish(srv, count, rate, topic, users, user_prefix)
        m = group.wait(quiet_ms, max_ms)
        wall = time.monotonic() - t0
        c1, r1, k1 = srv.cpu(), srv.redis_cpu(), cpu_us(group.pids())
        perf_out = self.perf_stop(perf)
        want = expect * m["conns"]
        d = m["uniq"]
        res = {
            "name": name, "conns": m["conns"], "published": pub["ok"],
            "rate": rate, "deliveries": d, "expected": want,
            "lost": want - d, "dup": m["dup"], "reorder": m["reorder"],
            "closed": m["closed"], "stray": m["stray"], "bad": m["bad"],
            "late": m["late"],
            "pub_errors": pub["err"],
            "cpu_us": c1 - c0, "redis_cpu_us": r1 - r0,
            "client_cpu_us": k1 - k0, "wall_s": wall,
        }
        res["cpu_us_per_delivery"] = res["cpu_us"] / d if d else None
        if perf_out is not None and d:
            res["perf"] = {k: v / d for k, v in perf_out.items()}
            log(f"  perf stat per delivery: " + ", ".join(
                f"{k}={v:.2f}" for k, v in sorted(res["perf"].items())))
            res["perf_threads"] = {
                who: {k: v / d for k, v in kv.items()}
                for who, kv in self.perf_by_thread.items()}
            for who, kv in sorted(res["perf_threads"].items(),
                                  key=lambda x: -x[1].get("task_clock_us",
                                                          0)):
                if kv.get("task_clock_us", 0) >= 0.5:
                    log(f"    {who}: " + ", ".join(
                        f"{k}={v:.2f}" for k, v in sorted(kv.items())))
        res["redis_cpu_us_per_delivery"] = (res["redis_cpu_us"] / d
                                            if d else None)
        res["client_cpu_us_per_delivery"] = (res["client_cpu_us"] / d
                                             if d else None)
        span = (m["last_us"] - pub["start_us"]) / 1e6
        res["deliveries_per_s"] = d / span if d and span > 0 else None
        res["pub_seconds"] = (pub["end_us"] - pub["start_us"]) / 1e6
        for q, k in ((0.5, "p50_ms"), (0.99, "p99_ms"), (0.999, "p999_ms"),
                     (1.0, "max_ms")):
            v = percentile(m["hist"], q)
            res[k] = v / 1000 if v is not None else None
        res["clean"] = (res["lost"] == 0 and res["dup"] == 0 and
                        res["reorder"] == 0 and res["closed"] == 0 and
                        res["bad"] == 0 and res["pub_errors"] == 0 and
                        d > 0)
        log(f"  {srv.mode} {name}: conns={m['conns']} rate={rate} "
            f"deliv={d}/{want} lost={res['lost']} dup={res['dup']} "
            f"reord={res['reorder']} closed={res['closed']} "
            f"cpu/deliv={fmt(res['cpu_us_per_delivery'])}us "
            f"redis={fmt(res['redis_cpu_us_per_delivery'])}us "
            f"client={fmt(res['client_cpu_us_per_delivery'])}us "
            f"deliv/s={fmt(res['deliveries_per_s'], 0)} "
            f"p50={fmt(res['p50_ms'])} p99={fmt(res['p99_ms'])} "
            f"p999={fmt(res['p999_ms'])}ms" +
            (f" late={m['late']}" if m["late"] else "") +
            (f" stray={m['stray']}" if m["stray"] else "") +
            (f" pub_err={pub['err']}" if pub["err"] else ""))
        return res

    def perf_start(self, srv, name):
        """perf stat over every thread of the server (not Redis) for the
        phases named in --perf; None if not asked for."""
        if name not in self.args.perf.split(","):
            return None
        procs = tree(srv.roots())
        pids = ",".join(str(p) for p in procs)
        # tid -> "process/thread" names, to group perf's per-thread lines
        self.perf_threads = {}
        for pid in procs:
            try:
                with open(f"/proc/{pid}/comm") as f:
                    pcomm = f.read().strip()
                for tid in os.listdir(f"/proc/{pid}/task"):
                    with open(f"/proc/{pid}/task/{tid}/comm") as f:
                        self.perf_threads[int(tid)] = \
                            f"{pcomm}/{f.read().strip()}"
            except OSError:
                continue
        path = os.path.join(srv.dir, f"perf-{name}-{self.phase_no}.txt")
        p = subprocess.Popen(["perf", "stat", "--per-thread", "-x", ",",
                              "-o", path, "-e",
                              "task-clock,context-switches,cpu-migrations",
                              "-p", pids], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        rec = None
        if self.args.perf_record:
            rec = subprocess.Popen(
                ["perf", "record", "-F", "1999", "-g", "-o",
                 os.path.join(srv.dir, f"perf-{name}.data"), "-p", pids],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.3)  # perf attaches to every thread
        return (p, path, rec)

    def perf_stop(self, perf):
        if perf is None:
            return None
        p, path, rec = perf
        for q in (p, rec):
            if q is not None:
                q.send_signal(signal.SIGINT)
        for q in (p, rec):
            if q is not None:
                q.wait(30)
        out, by = {}, {}
        with open(path) as f:
            for line in f:
                # per thread: comm-tid,value,unit,event,...
                parts = line.strip().split(",")
                if len(parts) < 4 or "-" not in parts[0]:
                    continue
                try:
                    tid = int(parts[0].rsplit("-", 1)[1])
                    v = float(parts[1])
                except ValueError:
                    continue
                key = {"task-clock": "task_clock_us"}.get(parts[3],
                                                          parts[3])
                if key == "task_clock_us":
                    v *= 1000
                out[key] = out.get(key, 0) + v
                who = self.perf_threads.get(tid, parts[0].rsplit("-", 1)[0])
                by.setdefault(who, {}).setdefault(key, 0)
                by[who][key] += v
        self.perf_by_thread = by
        return out

    def open_group(self, srv, n, procs, **kw):
        t0 = time.monotonic()
        g = Group(self, srv, n, procs, **kw)
        try:
            ok, fail = g.wait_ready(
                timeout=kw.get("connect_timeout_s", 120) + 30)
        except BaseException:
            g.close()
            raise
        g.ok = ok
        dropped = g.why.get("dropped", 0)
        log(f"  {srv.mode}: {ok} connections ready, {fail} failed, "
            f"{dropped} dropped after opening "
            f"({time.monotonic() - t0:.1f} s; handshake p50 "
            f"{g.why.get('hs_p50_ms', 0):.1f} p99 "
            f"{g.why.get('hs_p99_ms', 0):.1f} max "
            f"{g.why.get('hs_max_ms', 0):.1f} ms)")
        reasons = " ".join(f"{k}={v}" for k, v in sorted(g.why.items())
                           if k.startswith(("fail_", "drop_", "http_")))
        if fail or dropped:
            log(f"  {srv.mode}: why: {reasons}")
            self.failures.append(f"{srv.mode}: {fail + dropped} of {n} "
                                 f"connections failed to open or were "
                                 f"dropped ({reasons})")
        return g

    def close_group(self, srv, g):
        bad = g.close()
        if bad:
            self.failures.append(f"{srv.mode}: wsb_client exited with "
                                 f"{bad}")

    def note(self, srv, res):
        if not res["clean"]:
            self.failures.append(
                f"{srv.mode} {res['name']}: lost={res['lost']} "
                f"dup={res['dup']} reorder={res['reorder']} "
                f"closed={res['closed']} bad={res['bad']}")

    # -- scenarios --

    def scen_memory_user(self, srv, out):
        n1, n2 = self.n(10000), self.n(20000)
        time.sleep(1.0)
        base, rbase, pbase = srv.rss(), srv.redis_rss(), srv.pss()
        g1 = self.open_group(srv, n1, 2, user_prefix="u", src_slot=0)
        groups = [g1]
        try:
            time.sleep(2.0)
            r10 = srv.rss()
            out["rss_base_kib"] = base
            out["rss_per_conn_10k_kib"] = (r10 - base) / n1
            out["pss_per_conn_10k_kib"] = (srv.pss() - pbase) / n1
            out["redis_rss_per_conn_10k_kib"] = (srv.redis_rss() -
                                                 rbase) / n1
            log(f"  {srv.mode} memory: base {base} KiB, 10k: {r10} KiB -> "
                f"{out['rss_per_conn_10k_kib']:.2f} KiB/conn")
            res = self.run_phase(srv, g1, "user", n1, 2000, users=n1,
                                 user_prefix="u", quiet_ms=2000)
            out["user"] = res
            self.note(srv, res)
            g2 = self.open_group(srv, n2, 2, user_prefix="u",
                                 user_base=n1, src_slot=2)
            groups.append(g2)
            time.sleep(2.0)
            r30 = srv.rss()
            out["rss_per_conn_30k_kib"] = (r30 - base) / (n1 + n2)
            out["pss_per_conn_30k_kib"] = (srv.pss() - pbase) / (n1 + n2)
            out["redis_rss_per_conn_30k_kib"] = (srv.redis_rss() -
                                                 rbase) / (n1 + n2)
            log(f"  {srv.mode} memory: 30k: {r30} KiB -> "
                f"{out['rss_per_conn_30k_kib']:.2f} KiB/conn")
        finally:
            for g in groups:
                self.close_group(srv, g)
        time.sleep(2.0)

    def scen_user(self, srv, out):
        """10,000 users, one connection each; every user gets
        --user-msgs messages, each with the user's own sequence (the
        client checks order and exactly-once per connection), at 2,000/s
        in total."""
        n = self.n(10000)
        g = self.open_group(srv, n, 2, user_prefix="t", src_slot=6)
        try:
            time.sleep(1.0)
            self.run_phase(srv, g, "userwarm", n, 4000, users=n,
                           user_prefix="t", quiet_ms=1000)
            k = self.args.user_msgs
            res = self.run_phase(srv, g, "user", n * k, 2000, users=n,
                                 user_prefix="t", quiet_ms=2000)
            out["user"] = res
            self.note(srv, res)
            if "usermax" in self.args.scenarios.split(","):
                self.user_max(srv, g, n, out)
        finally:
            self.close_group(srv, g)
        time.sleep(1.5)

    def user_max(self, srv, g, n, out):
        """The highest user-targeted rate (grid) where every message
        arrives with p99 < 100 ms, >= 3 s per step, a failing step retried
        once."""
        best = None
        for rate in USER_GRID:
            if time.monotonic() > self.srv_deadline:
                out["usermax_note"] = "out of time"
                break
            ok = False
            # Whole rounds over the users (each expects the same count),
            # at least ~3 s of publishing.
            count = n * max(1, -(-rate * 3 // n))
            for _ in range(2):
                r = self.run_phase(srv, g, f"usermax{rate}", count,
                                   rate, users=n, user_prefix="t",
                                   quiet_ms=1000, max_ms=30000)
                if self.step_ok(r):
                    ok = True
                    break
            if not ok:
                break
            best = rate
        out["user_max_rate"] = best

    def scen_c100k(self, srv, out):
        """100,000 connections (10,000 per client process: the per-process
        descriptor limit is 20,000), each its own user: RSS per connection
        of the server's processes, one `all` message (time until every
        connection has it: p50/p99/max, three times), then user-targeted
        messages round-robin over every user at --c100k-rate
        (--c100k-user-msgs per user; order and exactly-once checked per
        connection). Run with --workers 6 --nginx-workers 6.

        Both servers get the same pace: --c100k-connect-rate connections
        started per second and at most --c100k-inflight unfinished
        handshakes, summed over the client processes, and the same connect
        time limit. Unpaced (200 in flight per process, 2,000 in all) the
        handshakes came faster than the 2 cores could serve them: nchan's
        Redis fell more than 5 s behind, nchan marked it failed and its
        workers crashed; wspush's handshakes queued up past the time
        limit. A phase's window closes once every connection has its
        messages, else after quiet_ms without any message (of this phase
        or a late one of an earlier phase, which a connection must get
        through first), else at max_ms: both long enough that a slow but
        complete delivery is measured, not counted lost."""
        a = self.args
        n = self.n(100000)
        procs = max(1, (n + 9999) // 10000)
        extra = ["--nchan-path", "/msub/"] if srv.mode == "nchan" else []
        rate = a.c100k_connect_rate
        limit_s = a.c100k_connect_timeout_s or (
            int(n / rate) + 120 if rate else 120)
        time.sleep(1.0)
        base, pbase = srv.rss(), srv.pss()
        log(f"  {srv.mode} c100k: opening {n} connections from {procs} "
            f"processes at {rate}/s, <= {a.c100k_inflight} in flight, "
            f"limit {limit_s} s")
        net0, d0 = net_counters(), srv.diag()
        r0 = srv.redis_cpu()
        t0 = time.monotonic()
        g = self.open_group(srv, n, procs, user_prefix="h", src_slot=0,
                            extra=extra, inflight=a.c100k_inflight,
                            connect_rate=rate, connect_timeout_s=limit_s)
        try:
            out["c100k_open_s"] = time.monotonic() - t0
            out["c100k_open_why"] = g.why
            time.sleep(1.5)  # the workers' next report, as below
            log(f"  {srv.mode} c100k open: redis CPU "
                f"{(srv.redis_cpu() - r0) / 1e6:.1f} s; net: "
                f"{delta_text(net0, net_counters())}; server: "
                f"{delta_text(d0, srv.diag())}")
            # Settle, and measure what the idle server costs: the user
            # phase's CPU per delivery includes it.
            c0, rc0, t1 = srv.cpu(), srv.redis_cpu(), time.monotonic()
            time.sleep(3.0)
            dt = time.monotonic() - t1
            out["c100k_idle_cpu_cores"] = (srv.cpu() - c0) / 1e6 / dt
            out["c100k_idle_redis_cpu_cores"] = ((srv.redis_cpu() - rc0) /
                                                 1e6 / dt)
            r, p = srv.rss(), srv.pss()
            out["c100k_conns"] = g.ok  # per connection actually open
            out["c100k_rss_per_conn_kib"] = (r - base) / max(1, g.ok)
            out["c100k_pss_per_conn_kib"] = (p - pbase) / max(1, g.ok)
            fds = fds_by_process(srv.roots())
            out["c100k_fds"] = [n for _, n, _ in fds]
            log(f"  {srv.mode} c100k: descriptors per process: " +
                " ".join(f"{c}={n}" for c, n, _ in fds))
            # A process at its limit refuses (nginx) or stops accepting
            # (wspush pauses that worker's accepts): say so when near.
            for c, k, lim in fds:
                if lim and k > 0.9 * lim:
                    log(f"  {srv.mode} c100k: WARNING {c} holds {k} of its "
                        f"{lim} descriptors")
            if srv.mode == "nchan":
                st = srv.status()
                out["c100k_nchan_status"] = st
                log(f"  nchan c100k: shared memory used "
                    f"{st.get('shared memory used', -1):.0f} of "
                    f"{st.get('shared memory limit', -1):.0f} KiB, "
                    f"channels {st.get('channels', -1):.0f}, subscribers "
                    f"{st.get('subscribers', -1):.0f}")
            log(f"  {srv.mode} c100k: {g.ok} conns, RSS {base} -> {r} KiB: "
                f"{out['c100k_rss_per_conn_kib']:.2f} KiB/conn (PSS "
                f"{out['c100k_pss_per_conn_kib']:.2f}); idle server CPU "
                f"{out['c100k_idle_cpu_cores']:.2f} cores, its Redis "
                f"{out['c100k_idle_redis_cpu_cores']:.2f}")
            alls = []
            for i in range(3):
                res = self.c100k_phase(srv, g, f"all{i}", 1, 0,
                                       topic="*all*", quiet_ms=15000,
                                       max_ms=180000)
                alls.append(res)
                time.sleep(0.5)
            out["c100k_all"] = median_out(alls)
            rate = a.c100k_rate
            # Round-robin over every user, --c100k-user-msgs rounds: a
            # connection that gets a user's second message before the
            # first counts as reordered.
            count = n * a.c100k_user_msgs
            res = self.c100k_phase(srv, g, "user100k", count, rate, users=n,
                                   user_prefix="h", quiet_ms=15000,
                                   max_ms=int(count / rate * 1000) + 180000)
            # Less what the server burns idle with this many connections
            # over the same time.
            if res["deliveries"]:
                res["cpu_us_per_delivery_less_idle"] = (
                    res["cpu_us"] - out["c100k_idle_cpu_cores"] * 1e6 *
                    res["wall_s"]) / res["deliveries"]
                log(f"    user100k: CPU-us/delivery less idle "
                    f"{res['cpu_us_per_delivery_less_idle']:.2f}")
            out["c100k_user"] = res
        finally:
            self.close_group(srv, g)
        time.sleep(2.0)

    def c100k_phase(self, srv, g, name, *args, **kw):
        """run_phase, with the machine's and the server's counters that
        explain a shortfall logged beside it."""
        net0, d0 = net_counters(), srv.diag()
        res = self.run_phase(srv, g, name, *args, **kw)
        # wspush's workers report their counters to the bridge once a
        # second: wait for the report that covers the phase.
        time.sleep(1.5)
        net1, d1 = net_counters(), srv.diag()
        log(f"    {name}: net: {delta_text(net0, net1)}; server: "
            f"{delta_text(d0, d1)}")
        res["net"] = {k: net1[k] - net0.get(k, 0) for k in net1}
        self.note(srv, res)
        return res

    def scen_5k(self, srv, out):
        g = self.open_group(srv, self.n(5000), 2, topic="c5k", src_slot=4)
        try:
            # Warm-up, not reported: first writes on fresh connections.
            self.run_phase(srv, g, "warmup", 10, 20, topic="c5k",
                           quiet_ms=1000)
            res = self.run_phase(srv, g, "latency", 100, 10, topic="c5k")
            out["latency"] = res
            self.note(srv, res)
            res = self.run_phase(srv, g, "burst", 500, 0, topic="c5k",
                                 quiet_ms=3000, max_ms=90000)
            out["burst"] = res
            self.note(srv, res)
            self.fanout(srv, g, out, out["latency"])
        finally:
            self.close_group(srv, g)
        time.sleep(1.5)

    def step_ok(self, r):
        return r["clean"] and r["p99_ms"] is not None and r["p99_ms"] < 100

    def fanout(self, srv, g, out, lat):
        steps = []
        # Start on the grid at 60 % of what the latency run's CPU per
        # delivery (server + Redis + client) allows on this machine's cores;
        # step down while that fails, then up until a step fails.
        start = 6
        per = [lat.get(k) for k in ("cpu_us_per_delivery",
                                    "redis_cpu_us_per_delivery",
                                    "client_cpu_us_per_delivery")]
        if all(per) and g.n:
            est = 0.6 * (os.cpu_count() or 2) * 1e6 / sum(per) / g.n
            start = max([i for i, r in enumerate(FANOUT_GRID) if r <= est]
                        or [0])
        i, best, went_down = start, None, False
        budget = min(self.args.fanout_budget_s,
                     self.srv_deadline - time.monotonic() - 40)
        deadline = time.monotonic() + max(10.0, budget)
        while 0 <= i < len(FANOUT_GRID) and time.monotonic() < deadline:
            rate = FANOUT_GRID[i]
            count = max(5, int(rate * 3))
            r = self.run_phase(srv, g, f"fanout@{rate}", count, rate,
                               topic="c5k", quiet_ms=1000, max_ms=30000)
            if not self.step_ok(r) and not r["closed"]:
                # The machine is shared: one retry before a step fails.
                r = self.run_phase(srv, g, f"fanout@{rate}", count, rate,
                                   topic="c5k", quiet_ms=1000, max_ms=30000)
            steps.append({k: r[k] for k in ("rate", "clean", "p99_ms",
                                            "lost", "deliveries_per_s",
                                            "cpu_us_per_delivery")})
            if r["closed"]:
                break  # the group lost connections: stop here
            if self.step_ok(r):
                best = rate
                if went_down:
                    break
                i += 1
            else:
                if best is not None:
                    break
                went_down = True
                i -= 1
        out["fanout_steps"] = steps
        out["fanout_max_rate"] = best
        out["fanout_max_deliveries_per_s"] = (best * g.n if best else None)
        if best is None and steps:
            # Not even the lowest step tried passed.
            low = min(st["rate"] for st in steps)
            out["fanout_max_rate"] = f"<{fmt(low, 0)}"
            out["fanout_max_deliveries_per_s"] = f"<{fmt(low * g.n, 0)}"

    def scen_scaling(self, srv, out):
        for n, rate, procs, slot in ((1000, 50, 1, 6), (20000, 2.5, 2, 8)):
            g = self.open_group(srv, self.n(n), procs, topic=f"c{n}",
                                src_slot=slot)
            try:
                time.sleep(0.5)
                res = self.run_phase(srv, g, f"scaling{n}", int(rate * 6),
                                     rate, topic=f"c{n}", quiet_ms=2000)
                out[f"scaling_{n}"] = res
                self.note(srv, res)
            finally:
                self.close_group(srv, g)
            time.sleep(2.0)

    def scen_smoke(self, srv, out):
        g = self.open_group(srv, 200, 1, topic="smoke", src_slot=0)
        try:
            out["latency"] = self.run_phase(srv, g, "paced", 40, 20,
                                            topic="smoke", max_ms=20000)
            out["burst"] = self.run_phase(srv, g, "burst", 100, 0,
                                          topic="smoke", max_ms=20000)
        finally:
            self.close_group(srv, g)
        g = self.open_group(srv, 200, 1, user_prefix="s", src_slot=1)
        try:
            out["user"] = self.run_phase(srv, g, "user", 400, 0, users=200,
                                         user_prefix="s", max_ms=20000)
        finally:
            self.close_group(srv, g)
        for k in ("latency", "burst", "user"):
            self.note(srv, out[k])

    def run_server(self, name, left):
        now = time.monotonic()
        self.srv_deadline = now + (self.deadline - now) / left
        srv = SERVERS[name](self, os.path.join(self.workdir, name))
        out = {"server": name}
        t0 = time.monotonic()
        log(f"== {PEERS[name]}")
        try:
            srv.start()
            if self.args.smoke:
                self.scen_smoke(srv, out)
            else:
                sc = self.args.scenarios.split(",")
                if "memory" in sc:
                    self.scen_memory_user(srv, out)
                if "c100k" in sc:
                    self.scen_c100k(srv, out)
                if "user" in sc or "usermax" in sc:
                    self.scen_user(srv, out)
                if "5k" in sc:
                    self.scen_5k(srv, out)
                if "scaling" in sc:
                    if time.monotonic() > self.deadline - 40:
                        out["skipped"] = "scaling: out of time"
                        self.failures.append(f"{name}: scaling skipped, "
                                             "out of time")
                    else:
                        self.scen_scaling(srv, out)
            srv.check_alive()
        except (BenchError, subprocess.TimeoutExpired, OSError,
                ValueError, KeyError) as e:
            out["error"] = str(e)
            self.failures.append(f"{name}: {e}")
            log(f"  {name}: ERROR: {e}")
        finally:
            for f in srv.stop():
                self.failures.append(f"{name}: {f}")
                out.setdefault("error", f)
        out["seconds"] = time.monotonic() - t0
        log(f"  {name}: done in {out['seconds']:.0f} s")
        return out

    def main(self):
        if (self.args.smoke and "wspush" in self.args.servers and not (
                os.access(self.gateway, os.X_OK) and
                os.access(self.bridge, os.X_OK))):
            print(f"bench smoke skipped: {self.gateway} or {self.bridge} "
                  "is not built")
            return 77
        self.workdir = tempfile.mkdtemp(prefix="wspush-bench-")
        t0 = time.monotonic()
        results = {"date": datetime.date.today().isoformat(),
                   "machine": machine(), "smoke": self.args.smoke,
                   "servers": {}}
        self.deadline = t0 + self.args.budget_s
        rounds = {name: [] for name in self.args.servers}
        runs = [(r, name) for r in range(self.args.rounds)
                for name in self.args.servers]
        for i, (r, name) in enumerate(runs):
            if r > 0:
                log(f"round {r + 1} of {self.args.rounds}")
            rounds[name].append(self.run_server(name, len(runs) - i))
        for name, outs in rounds.items():
            results["servers"][name] = median_out(outs)
            if len(outs) > 1:
                results["servers"][name]["rounds"] = outs
        results["seconds"] = time.monotonic() - t0
        results["failures"] = self.failures
        if self.args.json:
            with open(self.args.json, "w") as f:
                json.dump(results, f, indent=1)
        if not self.args.smoke:
            table = render(results)
            print(table)
            if self.args.md:
                with open(self.args.md, "w") as f:
                    f.write(table + "\n")
        ok = not self.failures
        if self.args.smoke:
            for name, out in results["servers"].items():
                for k in ("latency", "burst", "user"):
                    r = out.get(k)
                    if r:
                        print(f"smoke {name} {k}: {r['deliveries']}/"
                              f"{r['expected']} delivered, lost {r['lost']},"
                              f" dup {r['dup']}, reorder {r['reorder']}")
        for f in self.failures:
            print(f"FAIL: {f}")
        if ok and self.args.keep:
            print(f"work dir: {self.workdir}")
        if ok and not self.args.keep:
            shutil.rmtree(self.workdir, ignore_errors=True)
        elif not ok:
            print(f"logs kept in {self.workdir}")
        print(f"total {results['seconds']:.0f} s")
        return 0 if ok else 1


def median_out(outs):
    """One result dict whose numbers are the medians over the rounds (the
    middle one for an odd count; lists and strings from the first)."""
    if len(outs) == 1:
        return outs[0]

    def med(vals):
        if all(isinstance(v, dict) for v in vals):
            keys = [k for k in vals[0] if all(k in v for v in vals)]
            return {k: med([v[k] for v in vals]) for k in keys}
        if all(isinstance(v, (int, float)) and not isinstance(v, bool)
               for v in vals):
            v = sorted(vals)
            return v[len(v) // 2] if len(v) % 2 else \
                (v[len(v) // 2 - 1] + v[len(v) // 2]) / 2
        return vals[0]
    return med(outs)


def machine():
    cores = os.cpu_count()
    with open("/proc/meminfo") as f:
        mem = int(f.readline().split()[1]) / 1024 / 1024
    osname = "?"
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    osname = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cores} cores ({model}), {mem:.0f} GiB, {osname}"


def fmt(v, digits=2):
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    if digits == 0 or abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.{digits}f}"


def render(results):
    srv = results["servers"]
    names = [n for n in ("wspush", "nchan", "sio", "floor") if n in srv]

    def get(n, *path):
        v = srv[n]
        for p in path:
            if not isinstance(v, dict) or p not in v:
                return None
            v = v[p]
        return v

    L, H = "lower", "higher"
    rows = [
        ("CPU-us/delivery, 5k conns x 10 msg/s",
         ("latency", "cpu_us_per_delivery"), 2, L),
        ("  Redis CPU-us/delivery (apart)",
         ("latency", "redis_cpu_us_per_delivery"), 2, L),
        ("  load client CPU-us/delivery (same client)",
         ("latency", "client_cpu_us_per_delivery"), 2, L),
        ("p50 latency ms, 5k x 10/s", ("latency", "p50_ms"), 2, L),
        ("p99 latency ms, 5k x 10/s", ("latency", "p99_ms"), 2, L),
        ("p999 latency ms, 5k x 10/s", ("latency", "p999_ms"), 2, L),
        ("burst 500 msgs to 5k: deliveries/s",
         ("burst", "deliveries_per_s"), 0, H),
        ("  burst CPU-us/delivery", ("burst", "cpu_us_per_delivery"), 2, L),
        ("  burst p99 ms", ("burst", "p99_ms"), 0, L),
        ("fan-out: max msg/s, p99<100ms, 5k", ("fanout_max_rate",), 0, H),
        ("  = deliveries/s", ("fanout_max_deliveries_per_s",), 0, H),
        ("RSS KiB/conn, 10k idle", ("rss_per_conn_10k_kib",), 2, L),
        ("RSS KiB/conn, 30k idle", ("rss_per_conn_30k_kib",), 2, L),
        ("  PSS KiB/conn, 10k idle", ("pss_per_conn_10k_kib",), 2, L),
        ("  Redis RSS KiB/conn, 10k (apart)",
         ("redis_rss_per_conn_10k_kib",), 2, L),
        ("user-targeted 10k: CPU-us/delivery",
         ("user", "cpu_us_per_delivery"), 2, L),
        ("  user-targeted p99 ms", ("user", "p99_ms"), 2, L),
        ("user-targeted max msg/s, p99<100ms, 10k", ("user_max_rate",), 0,
         H),
        ("  user-targeted context switches/delivery",
         ("user", "perf", "context-switches"), 2, L),
        ("100k: connections open", ("c100k_conns",), 0, H),
        ("100k conns: RSS KiB/conn", ("c100k_rss_per_conn_kib",), 2, L),
        ("100k: `all` time-to-all p50 ms", ("c100k_all", "p50_ms"), 1, L),
        ("100k: `all` time-to-all p99 ms", ("c100k_all", "p99_ms"), 1, L),
        ("100k: `all` time-to-all max ms", ("c100k_all", "max_ms"), 1, L),
        ("100k: user-targeted CPU-us/delivery",
         ("c100k_user", "cpu_us_per_delivery"), 2, L),
        ("100k: user-targeted p99 ms", ("c100k_user", "p99_ms"), 2, L),
        ("scaling CPU-us/deliv, 1k x 50/s",
         ("scaling_1000", "cpu_us_per_delivery"), 2, L),
        ("scaling CPU-us/deliv, 5k x 10/s",
         ("latency", "cpu_us_per_delivery"), 2, L),
        ("scaling CPU-us/deliv, 20k x 2.5/s",
         ("scaling_20000", "cpu_us_per_delivery"), 2, L),
    ]
    peers = [n for n in names if n != "wspush"]
    head = ["metric", "better"] + [PEERS[n] for n in names]
    if "wspush" in names:
        head += [f"wspush/{PEERS[n]}" for n in peers]
    lines = [head]
    for label, path, digits, goal in rows:
        vals = [get(n, *path) for n in names]
        line = [label, goal] + [fmt(v, digits) for v in vals]
        if "wspush" in names:
            w = vals[names.index("wspush")]
            for n in peers:
                p = get(n, *path)
                num = all(isinstance(v, (int, float)) for v in (w, p))
                line.append(f"{w / p:.2f}" if num and p else "-")
        lines.append(line)
    # Scaling linearity and the loss summary.
    line = ["scaling: 20k/1k CPU per delivery", "~1"]
    for n in names:
        a, b = get(n, "scaling_1000", "cpu_us_per_delivery"), get(
            n, "scaling_20000", "cpu_us_per_delivery")
        line.append(f"{b / a:.2f}" if a and b else "-")
    lines.append(line + [""] * (len(head) - len(line)))
    line = ["lost/dup/reordered (all scenarios)", "0"]
    for n in names:
        tot = [0, 0, 0]
        for k, v in srv[n].items():
            if isinstance(v, dict) and "lost" in v and not k.startswith(
                    "fanout"):
                tot[0] += v["lost"]
                tot[1] += v["dup"]
                tot[2] += v["reorder"]
        line.append("/".join(map(str, tot)))
    lines.append(line + [""] * (len(head) - len(line)))
    for n in names:
        if "error" in srv[n]:
            lines.append([f"{PEERS[n]}: error", "", srv[n]["error"][:80]] +
                         [""] * (len(head) - 3))
    widths = [max(len(str(r[i])) for r in lines) for i in range(len(head))]
    out = []
    for j, r in enumerate(lines):
        out.append("| " + " | ".join(str(c).ljust(widths[i]) if i < 2 else
                                     str(c).rjust(widths[i])
                                     for i, c in enumerate(r)) + " |")
        if j == 0:
            out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("build_dir")
    ap.add_argument("--bin-dir", required=True,
                    help="where wsb_client, wsb_pub and wsb_floor are")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--servers", default=None,
                    help="comma list of wspush,nchan,sio,floor")
    ap.add_argument("--json", help="write every figure as JSON here")
    ap.add_argument("--md", help="write the table here")
    ap.add_argument("--keep", action="store_true", help="keep the work dir")
    ap.add_argument("--fanout-budget-s", type=float, default=60)
    ap.add_argument("--budget-s", type=float, default=1500,
                    help="the whole run's time budget (the main table of "
                    "make bench, four servers)")
    ap.add_argument("--scenarios", default="memory,usermax,5k,scaling",
                    help="memory (with user), user (10k users x 2 msgs), "
                    "usermax (user, then the highest rate with p99 < 100 "
                    "ms), 5k (latency, burst, fanout), scaling, c100k "
                    "(100,000 connections: use --workers 6 "
                    "--nginx-workers 6)")
    ap.add_argument("--workers", type=int, default=2,
                    help="wspush gateway workers")
    ap.add_argument("--nginx-workers", type=int, default=2,
                    help="nchan's nginx worker processes")
    ap.add_argument("--c100k-rate", type=int, default=5000,
                    help="user-targeted msg/s in the c100k scenario")
    ap.add_argument("--c100k-user-msgs", type=int, default=2,
                    help="c100k: user-targeted messages per user (rounds "
                    "over every user; 2 or more checks their order)")
    ap.add_argument("--c100k-connect-rate", type=int, default=2000,
                    help="c100k: connections started per second, all "
                    "client processes together (both servers alike; 0: "
                    "unpaced)")
    ap.add_argument("--c100k-inflight", type=int, default=1000,
                    help="c100k: unfinished handshakes at most, all client "
                    "processes together (below the servers' listen "
                    "backlog of 4,096)")
    ap.add_argument("--c100k-connect-timeout-s", type=int, default=0,
                    help="c100k: connect time limit (0: connections / "
                    "rate + 120 s)")
    ap.add_argument("--user-msgs", type=int, default=2,
                    help="messages per user in the user scenario")
    ap.add_argument("--perf", default="",
                    help="comma list of phase names (e.g. user) to run "
                    "under perf stat (context switches, migrations, "
                    "task-clock; per delivery)")
    ap.add_argument("--perf-record", action="store_true",
                    help="with --perf: also perf record -g into the work "
                    "dir (keep it with --keep)")
    ap.add_argument("--wspush-set", action="append", default=[],
                    metavar="SECTION.KEY=VALUE",
                    help="a wspush config value for this run (e.g. "
                    "bridge.coalesce_ms=0); repeatable")
    ap.add_argument("--rounds", type=int, default=1,
                    help="run the servers this many times, alternating "
                    "(paired runs); the table shows each figure's median")
    ap.add_argument("--scale", type=float, default=1.0,
                    help="multiply connection counts (development runs)")
    args = ap.parse_args()
    if args.servers is None:
        args.servers = ("wspush" if args.smoke else
                        "wspush,nchan,floor,sio")
    args.servers = [s for s in args.servers.split(",") if s]
    for s in args.servers:
        if s not in SERVERS:
            ap.error(f"unknown server {s}")
    sys.exit(Bench(args).main())


if __name__ == "__main__":
    main()
