"""redis_cluster.py - a private Redis Cluster for tests, and a driver for
the bridge's RESP connection module.

RedisCluster: Debian's redis-server with `cluster-enabled yes`, N masters
(and optionally one replica each) on free loopback ports in the test's
directory, joined with `redis-cli --cluster create ... --cluster-yes`,
stopped by PID through the wsp.Harness like every other process. It can
tell which master owns a key, publish with SPUBLISH on the owner, move one
slot to another master (CLUSTER SETSLOT, the steps `redis-cli --cluster
reshard` takes), and kill a master and wait for its replica to take over.

Probe: tests/tools/resp_probe (bridge/resp_conn.c on the bridge loop),
fed commands on stdin; its JSON lines are read back here.
"""

import json
import os
import queue
import subprocess
import threading
import time
import uuid

import redis as redislib

import wsp


def free_ports(n):
    """n distinct loopback TCP ports that were free a moment ago (a cluster
    needs 2 ports per server; wsp.free_port() never hands one out twice
    in a run)."""
    return [wsp.free_port() for _ in range(n)]


class ClusterNode:
    def __init__(self, rc, index, host, port, bus_port):
        self.rc = rc
        self.index = index
        self.host = host
        self.port = port
        self.bus_port = bus_port
        self.dir = os.path.join(rc.dir, f"node-{self.port}")
        os.makedirs(self.dir, exist_ok=True)
        self.proc = None

    @property
    def addr(self):
        return f"{self.host}:{self.port}"

    def start(self):
        argv = list(self.rc.argv_prefix) + [
            "redis-server", "--port", self.port, "--bind", self.host,
            "--cluster-enabled", "yes", "--cluster-port", self.bus_port,
            "--protected-mode", "no",
            "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", self.rc.node_timeout_ms,
            "--save", "", "--appendonly", "no", "--dir", self.dir,
            "--daemonize", "no"]
        self.proc = self.rc.h.spawn(f"redis-c{self.index}", argv)
        c = self.client()
        wsp.wait_until(lambda: wsp._ping(c), 10,
                       f"cluster node redis-server on {self.port}",
                       check=self.proc.check_running)
        return self

    def client(self):
        return redislib.Redis(host=self.host, port=self.port,
            socket_timeout=wsp.T(10), socket_connect_timeout=wsp.T(5),
            decode_responses=True)

    def alive(self):
        return self.proc is not None and self.proc.running()

    def kill(self):
        self.proc.kill()


class RedisCluster:
    """masters x (1 + replicas) redis-server processes forming one cluster.
    argv_prefix: run each server under it (e.g. `ip netns exec NS`)."""

    def __init__(self, h, masters=3, replicas=0, host="127.0.0.1",
                 argv_prefix=(), node_timeout_ms=1000):
        self.h = h
        self.host = host
        self.argv_prefix = tuple(argv_prefix)
        self.node_timeout_ms = node_timeout_ms
        self.dir = os.path.join(h.dir, "redis-cluster")
        os.makedirs(self.dir, exist_ok=True)
        count = masters * (1 + replicas)
        ports = free_ports(2 * count)
        self.nodes = [ClusterNode(self, i, host, ports[2 * i],
                                  ports[2 * i + 1]) for i in range(count)]
        self.replicas = replicas
        self.masters_wanted = masters

    def start(self):
        for n in self.nodes:
            n.start()
        argv = ["redis-cli", "--cluster", "create",
                *[n.addr for n in self.nodes],
                "--cluster-replicas", str(self.replicas), "--cluster-yes"]
        cp = subprocess.run(argv, capture_output=True, text=True,
                            stdin=subprocess.DEVNULL, timeout=wsp.T(60))
        if cp.returncode != 0:
            raise wsp.HarnessError(f"{' '.join(argv)} failed "
                f"({cp.returncode}):\n{cp.stdout}\n{cp.stderr}")
        self.wait_ok()
        return self

    # -- state

    def live(self):
        return [n for n in self.nodes if n.alive()]

    def node(self, port):
        for n in self.nodes:
            if n.port == port:
                return n
        raise wsp.HarnessError(f"no cluster node on port {port}")

    def _agree(self):
        """Every live node reports state ok, knows every node, and they
        all report the same slot owners."""
        views = []
        for n in self.live():
            try:
                c = n.client()
                info = c.execute_command("CLUSTER", "INFO")
                if "cluster_state:ok" not in info:
                    return False
                views.append(sorted((s[0], s[1], s[2][1])
                    for s in c.execute_command("CLUSTER", "SLOTS")))
            except redislib.exceptions.RedisError:
                return False
        return bool(views) and all(v == views[0] for v in views)

    def _replicas_synced(self):
        for n in self.live():
            info = n.client().info("replication")
            if info.get("role") == "slave" and \
                    info.get("master_link_status") != "up":
                return False
        return True

    def wait_ok(self, timeout=30):
        """Until the live nodes agree on a full slot map and every replica
        is in sync with its master."""
        wsp.wait_until(lambda: self._agree() and self._replicas_synced(),
            timeout, "the Redis Cluster to agree on its slot map",
            check=self.check_running, interval=0.1)

    def check_running(self):
        for n in self.nodes:
            if n.proc is not None and not n.proc.expect_exit:
                n.proc.check_running()

    def any(self):
        return self.live()[0]

    def slots(self):
        """[(start, end, master_port), ...] as a live node reports them."""
        return sorted((s[0], s[1], s[2][1]) for s in
                      self.any().client().execute_command("CLUSTER", "SLOTS"))

    def masters(self):
        """Ports of the masters that own slots."""
        return sorted({p for _, _, p in self.slots()})

    def keyslot(self, key):
        return self.any().client().execute_command("CLUSTER", "KEYSLOT", key)

    def owner(self, key):
        """Port of the master owning key's slot."""
        slot = self.keyslot(key)
        for lo, hi, port in self.slots():
            if lo <= slot <= hi:
                return port
        raise wsp.HarnessError(f"slot {slot} of {key!r} has no owner")

    def node_id(self, port):
        return self.node(port).client().execute_command("CLUSTER", "MYID")

    def names_on_each_master(self, prefix, per_master=1):
        """{master port: [name, ...]}: names f"{prefix}{i}" picked so that
        every master owns per_master of them."""
        want = {p: [] for p in self.masters()}
        i = 0
        while any(len(v) < per_master for v in want.values()):
            name = f"{prefix}{i}"
            i += 1
            owner = self.owner(name)
            if len(want[owner]) < per_master:
                want[owner].append(name)
            if i > 10000:
                raise wsp.HarnessError("could not spread names over masters")
        return want

    # -- publishing

    def spublish(self, channel, payload):
        """SPUBLISH on the owning master (what `redis-cli -c` does);
        returns the receiver count."""
        for _ in range(5):
            port = self.owner(channel)
            try:
                return self.node(port).client().execute_command(
                    "SPUBLISH", channel, payload)
            except redislib.exceptions.ResponseError as e:
                if not str(e).startswith("MOVED"):
                    raise
        raise wsp.HarnessError(f"SPUBLISH {channel}: MOVED five times")

    # -- faults

    def move_slot(self, slot, dst_port):
        """Moves one slot (and its keys) to the master on dst_port with
        the CLUSTER SETSLOT steps of a reshard; returns the old owner."""
        src_port = None
        for lo, hi, port in self.slots():
            if lo <= slot <= hi:
                src_port = port
        if src_port is None or src_port == dst_port:
            raise wsp.HarnessError(f"slot {slot}: cannot move from "
                                   f"{src_port} to {dst_port}")
        src, dst = self.node(src_port).client(), self.node(dst_port).client()
        src_id, dst_id = self.node_id(src_port), self.node_id(dst_port)
        dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", src_id)
        src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", dst_id)
        while True:
            keys = src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 100)
            if not keys:
                break
            src.execute_command("MIGRATE", self.host, dst_port, "", 0,
                                5000, "KEYS", *keys)
        for n in self.live():
            if n.client().info("replication").get("role") == "master":
                n.client().execute_command("CLUSTER", "SETSLOT", slot,
                                           "NODE", dst_id)
        self.wait_ok()
        return src_port

    def reshard(self, src_port, dst_port, count=1):
        """`redis-cli --cluster reshard`: count slots of src to dst (which
        ones is redis-cli's choice)."""
        argv = ["redis-cli", "--cluster", "reshard",
                f"{self.host}:{src_port}",
                "--cluster-from", self.node_id(src_port),
                "--cluster-to", self.node_id(dst_port),
                "--cluster-slots", str(count), "--cluster-yes"]
        cp = subprocess.run(argv, capture_output=True, text=True,
                            stdin=subprocess.DEVNULL, timeout=wsp.T(60))
        if cp.returncode != 0:
            raise wsp.HarnessError(f"reshard failed:\n{cp.stdout}\n"
                                   f"{cp.stderr}")
        self.wait_ok()

    def kill_master(self, port, timeout=30):
        """kill -9 the master on port; returns once another node owns its
        slots (its replica was promoted) and the survivors agree."""
        before = [(lo, hi) for lo, hi, p in self.slots() if p == port]
        self.node(port).kill()

        def taken_over():
            try:
                now = self.slots()
            except redislib.exceptions.RedisError:
                return False
            owners = {(lo, hi): p for lo, hi, p in now}
            return all(owners.get(r) not in (None, port) for r in before)
        wsp.wait_until(taken_over, timeout,
                       f"a replica to take over the slots of {port}",
                       check=self.check_running, interval=0.2)
        self.wait_ok(timeout)


# --------------------------------------------------------------------------
# resp_probe: bridge/resp_conn.c driven from a test


class Probe(wsp.Proc):
    """tests/tools/resp_probe as a process of the harness: stdin is a pipe,
    stdout lines (JSON) are queued and copied to <name>.out."""

    def __init__(self, h, host, port, pubsub=False, user=None, password=None,
                 ping_ms=None, connect_timeout_ms=None, backoff=None,
                 name="probe"):
        argv = [wsp.binary("tests/tools/resp_probe")]
        if pubsub:
            argv.append("--pubsub")
        for flag, v in (("--user", user), ("--password", password),
                        ("--ping", ping_ms),
                        ("--connect-timeout", connect_timeout_ms),
                        ("--backoff", backoff)):
            if v is not None:
                argv += [flag, str(v)]
        argv += [host, str(port)]
        names = {p.name for p in h.procs}
        base, n = name, 1
        while name in names:
            n += 1
            name = f"{base}.{n}"
        super().__init__(h, name, argv)
        self.q = queue.Queue()
        self.seen = []

    def start(self):
        with open(self.err, "ab") as e:
            self.popen = subprocess.Popen(self.argv, stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=e, cwd=self.cwd,
                env=self.env, preexec_fn=wsp._child_setup)
        self.h.procs.append(self)
        threading.Thread(target=self._pump, daemon=True).start()
        return self

    def _pump(self):
        with open(self.out, "ab") as o:
            for line in self.popen.stdout:
                o.write(line)
                o.flush()
                try:
                    self.q.put(json.loads(line))
                except ValueError:
                    self.q.put({"t": "garbage", "line": line.decode(
                        "utf-8", "replace")})
        self.q.put(None)

    def send(self, line):
        self.popen.stdin.write(line.encode() + b"\n")
        self.popen.stdin.flush()

    def expect(self, pred, timeout=10, what="a probe line"):
        """The first line (dict) matching pred, looking at the lines kept
        earlier (self.seen) first; lines passed over are kept. Fails on
        timeout or if the probe exited."""
        for i, m in enumerate(self.seen):
            if pred(m):
                del self.seen[i]
                return m
        deadline = time.monotonic() + wsp.T(timeout)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise wsp.HarnessError(f"{self.name}: no {what} within "
                    f"{wsp.T(timeout):.1f}s; recent: {self.seen[-10:]!r}")
            try:
                m = self.q.get(timeout=min(left, 0.25))
            except queue.Empty:
                continue
            if m is None:
                raise wsp.HarnessError(f"{self.name} exited while waiting "
                    f"for {what}\n" + self.logs())
            if pred(m):
                return m
            self.seen.append(m)

    def wait_state(self, up, timeout=10):
        return self.expect(lambda m: m.get("t") == "state"
                           and m.get("up") == up, timeout,
                           f"state up={up}")

    def cmd(self, *args, timeout=10):
        """Queues a command; returns its id (fails if refused)."""
        enc = [a.replace("%", "%25").replace(" ", "%20") for a in map(str, args)]
        self.send("cmd " + " ".join(enc))
        m = self.expect(lambda m: m.get("t") in ("queued", "refused"),
                        timeout, "queued/refused")
        if m["t"] != "queued":
            raise wsp.HarnessError(f"{self.name}: {args!r} refused")
        return m["id"]

    def try_cmd(self, *args, timeout=10):
        """Like cmd(); returns None when refused."""
        self.send("cmd " + " ".join(map(str, args)))
        m = self.expect(lambda m: m.get("t") in ("queued", "refused"),
                        timeout, "queued/refused")
        return m.get("id")

    def reply(self, id, timeout=10):
        return self.expect(lambda m: m.get("t") == "reply"
                           and m.get("id") == id, timeout,
                           f"reply {id}")["r"]

    def call(self, *args, timeout=10):
        return self.reply(self.cmd(*args, timeout=timeout), timeout)

    def push(self, pred=lambda r: True, timeout=10, what="a push"):
        return self.expect(lambda m: m.get("t") == "push" and pred(m["r"]),
                           timeout, what)["r"]

    def stats(self):
        self.send("stats")
        return self.expect(lambda m: m.get("t") == "stats", 10, "stats")

    def map(self, which="map"):
        self.send(which)
        return self.expect(lambda m: m.get("t") == "map", 10, "map")

    def owners(self, *names):
        self.send("owner " + " ".join(names))
        return [self.expect(lambda m: m.get("t") == "owner", 10, "owner")
                for _ in names]

    def quit(self):
        """Asks the probe to exit (it frees everything: LeakSanitizer
        checks) and waits for a clean exit."""
        self.expect_exit = True
        try:
            self.send("quit")
            rc = self.popen.wait(wsp.T(10))
        except (OSError, subprocess.TimeoutExpired) as e:
            raise wsp.HarnessError(f"{self.name} did not quit: {e}")
        if rc != 0:
            raise wsp.HarnessError(f"{self.name} quit with "
                                   f"{wsp.describe_rc(rc)}\n" + self.logs())


# --------------------------------------------------------------------------
# Fences for sharded pub/sub


def shard_fence(publish, clients, addrs_of, timeout=20):
    """wsp.fence() for a Redis Cluster. Order holds per channel only (each
    shard reaches the bridge over its own link), so one marker on `all`
    proves nothing about the other shards. This publishes a unique marker
    on every address some client has (publish(addr, payload)), and returns
    per client the frames received before all of its addresses' markers,
    markers removed. Anything published to those addresses before the
    markers arrived by then or never will."""
    token = uuid.uuid4().hex
    want = {}
    for c in clients:
        want[c] = set(addrs_of(c))
    for addr in sorted(set().union(*want.values())):
        publish(addr, json.dumps({"shard_fence": token, "addr": addr}))

    def marker(f):
        return (isinstance(f, dict) and f.get("op") == "msg"
                and isinstance(f.get("data"), dict)
                and f["data"].get("shard_fence") == token)
    out = []
    deadline = time.monotonic() + wsp.T(timeout)
    for c in clients:
        left, frames = set(want[c]), []
        while left:
            rest = deadline - time.monotonic()
            if rest <= 0:
                raise wsp.HarnessError(f"{c.label}: markers of {sorted(left)}"
                    f" not seen; got before them: {frames[:20]!r}")
            f = c.decode(c.recv(rest / wsp.MULT))
            if marker(f):
                left.discard(f["data"]["addr"])
            else:
                frames.append(wsp.norm(f))
        out.append(frames)
    return out


def by_address(frames):
    """{to: [frame, ...]}: the order that sharded pub/sub promises."""
    out = {}
    for f in frames:
        out.setdefault(f.get("to") if isinstance(f, dict) else None,
                       []).append(f)
    return out
