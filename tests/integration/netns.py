"""netns.py - a wspush deployment on separate network stacks, for tests.

Every machine of a small deployment is a Linux network namespace that the
test creates and deletes itself:

    <tag>-sw      a switch: one Linux bridge device, nothing else
    <tag>-redis   10.77.0.2   Redis (one server, or a Redis Cluster)
    <tag>-lb      10.77.0.5   nginx, the balancer (deploy/nginx/wspush.conf)
                  10.78.0.1   ... and the clients' side of it
    <tag>-n1..n3  10.77.0.11+ one wspush node each: bridge + gateway
    <tag>-cl      10.78.0.2   the clients; their only link goes to the
                              balancer, so they reach the nodes through
                              nginx or not at all

Nothing is added to the caller's own namespace: the switch lives in a
namespace too, so concurrent runs (and the host) never see each other's
addresses. A node is cut by setting its switch port down, as a pulled
cable would. Programs run inside with `ip netns exec`; this Python process
reaches a namespace from a thread that entered it with setns(2) (a
namespace is per thread for networking), see NsThread.

Needs root (CAP_SYS_ADMIN) and iproute2; unavailable() says why not, and
tests skip with that reason. The pytest hook at the bottom prints how many
namespace tests ran and how many were skipped.
"""

import asyncio
import concurrent.futures
import ctypes
import os
import re
import shutil
import subprocess
import threading

import redis as redislib
import websockets

import wsp

CLONE_NEWNET = 0x40000000
SUBNET = "10.77.0"
CLIENT_NET = "10.78.0"
REDIS_ADDR = f"{SUBNET}.2"
LB_ADDR = f"{SUBNET}.5"
LB_CLIENT_ADDR = f"{CLIENT_NET}.1"
CLIENT_ADDR = f"{CLIENT_NET}.2"
NGINX = "/usr/sbin/nginx"
NGINX_TEMPLATE = os.path.join(wsp.REPO, "deploy", "nginx", "wspush.conf")
# Inside its own namespace every node can use the same well-known ports.
GATEWAY_PORT = 8080
METRICS_PORT = 9100
REDIS_PORT = 6379

_libc = ctypes.CDLL(None, use_errno=True)
_tags = iter(range(1, 1 << 30))
_tags_lock = threading.Lock()


def node_addr(i):
    """Address of node i (1-based) on the switch."""
    return f"{SUBNET}.{10 + i}"


def ip(*args, check=True):
    """Runs `ip args...`; raises with its stderr when check and it fails."""
    cp = subprocess.run(["ip", *[str(a) for a in args]], capture_output=True,
                        text=True, timeout=wsp.T(20))
    if check and cp.returncode != 0:
        raise wsp.HarnessError(f"ip {' '.join(map(str, args))}: "
                               f"{cp.stderr.strip()}")
    return cp


def unavailable():
    """None when namespaces can be made here, else the reason (for a skip
    message)."""
    if os.environ.get("WSPUSH_TEST_NETNS", "") == "0":
        return "disabled by WSPUSH_TEST_NETNS=0"
    if os.geteuid() != 0:
        return (f"not root (euid {os.geteuid()}): creating network "
                "namespaces needs CAP_SYS_ADMIN")
    if shutil.which("ip") is None:
        return "`ip` (iproute2) is not installed"
    if not os.access(NGINX, os.X_OK):
        return f"{NGINX} is not installed"
    if shutil.which("redis-server") is None:
        return "`redis-server` is not installed"
    probe = f"wspprobe{os.getpid()}"
    try:
        cp = ip("netns", "add", probe, check=False)
    except (OSError, subprocess.SubprocessError) as e:
        return f"`ip netns add` could not run: {e}"
    if cp.returncode != 0:
        return f"`ip netns add` failed: {cp.stderr.strip()}"
    ip("netns", "del", probe, check=False)
    return None


def enter(ns):
    """Moves the calling thread's networking into namespace ns."""
    fd = os.open(f"/run/netns/{ns}", os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            e = ctypes.get_errno()
            raise OSError(e, f"setns({ns}): {os.strerror(e)}")
    finally:
        os.close(fd)


class NsThread:
    """A thread living in one namespace; run(fn, ...) calls fn there.
    Sockets keep the namespace they were created in, so whatever fn
    connects stays in ns."""

    def __init__(self, ns):
        self.ns = ns
        self.pool = concurrent.futures.ThreadPoolExecutor(1,
            thread_name_prefix=f"ns-{ns}", initializer=enter,
            initargs=(ns,))

    def run(self, fn, *args, timeout=30, **kw):
        return self.pool.submit(fn, *args, **kw).result(wsp.T(timeout))

    def close(self):
        self.pool.shutdown(wait=True, cancel_futures=True)


class NsLoop(wsp._Loop):
    """The WebSocket client loop of wsp.py, running inside a namespace."""

    def __init__(self, ns):
        self.ns = ns
        self.entered = threading.Event()
        self.error = None
        super().__init__()
        if not self.entered.wait(wsp.T(10)) or self.error:
            raise wsp.HarnessError(f"client loop could not enter {ns}: "
                                   f"{self.error}")

    def _run(self):
        try:
            enter(self.ns)
        except OSError as e:
            self.error = e
            self.entered.set()
            return
        self.entered.set()
        super()._run()

    def stop(self):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(wsp.T(10))


class NsClient(wsp.WsClient):
    """A wsp.WsClient on an NsLoop. It pings every second and gives up on
    the connection when no pong comes within 2 s, as a browser client's
    keepalive would: a cut node never closes its sockets, silence is the
    only sign."""

    def __init__(self, bed, url, label):
        super().__init__(url, label, track=False)
        self.bed = bed
        bed.clients.append(self)

    async def _open(self, timeout):
        self.ws = await websockets.connect(self.url, open_timeout=wsp.T(timeout),
            close_timeout=1, ping_interval=1, ping_timeout=2 * wsp.MULT,
            max_size=None, max_queue=None)
        asyncio.ensure_future(self._read())

    def open(self, timeout=20):
        self.bed.loop.call(self._open(timeout), timeout + 1)
        return self

    def send(self, data, timeout=5):
        self.bed.loop.call(self.ws.send(data), timeout)

    def close(self, timeout=5):
        if self.ws is not None and self.is_open():
            try:
                self.bed.loop.call(self.ws.close(), timeout)
            except Exception:
                pass


class Publisher:
    """What a backend does: PUBLISH on the Redis of the test bed. Has the
    `publish(channel, payload)` that wsp.fence() calls."""

    def __init__(self, bed):
        self.bed = bed
        self.r = redislib.Redis(host=REDIS_ADDR, port=REDIS_PORT,
            socket_timeout=wsp.T(10), socket_connect_timeout=wsp.T(5))

    def publish(self, channel, payload):
        return self.bed.redis_ns.run(self.r.publish, channel, payload)

    def to(self, addr, payload):
        return self.publish(f"{wsp.PREFIX}:{addr}", payload)

    def stored(self, addr, payload):
        """FCALL wspush_publish (history): returns the message's id."""
        return self.bed.redis_ns.run(self.r.fcall, "wspush_publish", 1,
            f"{wsp.PREFIX}:{addr}", payload).decode()

    def wait_history(self):
        """Until a bridge loaded the function library."""
        def loaded():
            try:
                return self.bed.redis_ns.run(self.r.fcall_ro,
                                             "wspush_config", 0)
            except redislib.exceptions.RedisError:
                return None
        wsp.wait_until(loaded, 20, "the wspush function library")


class ClusterPublisher:
    """Publisher for a Redis Cluster in the Redis namespace: SPUBLISH on
    the master owning the channel (redis_cluster.RedisCluster.spublish,
    run inside the namespace)."""

    def __init__(self, bed, rc):
        self.bed = bed
        self.rc = rc

    def publish(self, channel, payload):
        return self.bed.redis_ns.run(self.rc.spublish, channel, payload)

    def to(self, addr, payload):
        return self.publish(f"{wsp.PREFIX}:{addr}", payload)

    def _fcall(self, key, payload):
        owner = self.rc.node(self.rc.owner(key)).client()
        return owner.fcall("wspush_publish", 1, key, payload)

    def stored(self, addr, payload):
        """FCALL wspush_publish on the owning master: the message's id."""
        return self.bed.redis_ns.run(self._fcall, f"{wsp.PREFIX}:{addr}",
                                     payload)

    def _loaded_everywhere(self):
        for port in self.rc.masters():
            try:
                self.rc.node(port).client().fcall_ro("wspush_config", 0)
            except redislib.exceptions.RedisError:
                return False
        return True

    def wait_history(self):
        """Until the bridges loaded the library on every master."""
        wsp.wait_until(lambda: self.bed.redis_ns.run(self._loaded_everywhere),
                       20, "the wspush function library on every master")


class NsNode(wsp.Node):
    """A wsp.Node whose bridge and gateway run in namespace ns, listening on
    the node's address; readiness is checked from inside ns."""

    def __init__(self, bed, i, workers=1, conf=None):
        self.bed = bed
        self.index = i
        self.ns = bed.ns(f"n{i}")
        self.addr = node_addr(i)
        redis = _RedisRef(bed.redis_url)
        over = wsp.merge({
            "gateway": {"listen": f"0.0.0.0:{GATEWAY_PORT}"},
            "bridge": {"metrics_listen": f"127.0.0.1:{METRICS_PORT}"},
        }, conf)
        super().__init__(bed.h, f"n{i}", redis, workers=workers, conf=over)
        self.port = GATEWAY_PORT
        self.metrics_port = METRICS_PORT
        self.thread = NsThread(self.ns)

    def argv(self, prog):
        return ["ip", "netns", "exec", self.ns, wsp.binary(prog),
                "-c", self.conf]

    def start_bridge(self):
        socks = [os.path.join(self.runtime_dir, s)
                 for s in ("bus1.ipc", "up.ipc")]
        before = {s: wsp._file_id(s) for s in socks}
        self.bridge = self.h.spawn(f"bridge-{self.name}",
            self.argv("bridge/wspush-bridge"))
        wsp.wait_until(lambda: all(wsp._is_new_socket(s, before[s])
            for s in socks), 15, f"{self.bridge.name} to bind {socks}",
            check=self.bridge.check_running)

    def start_gateway(self):
        self.gateway = self.h.spawn(f"gateway-{self.name}",
            self.argv("gateway/wspush-gateway"), cls=wsp.GatewayProc)
        self.wait_workers()
        self.wait_healthy()

    def bridge_healthz(self):
        """(status, body) of the bridge's /healthz, asked inside the node."""
        return self.thread.run(wsp.http_get, self.metrics_port, "/healthz",
                               timeout=10)

    def wait_healthy(self, timeout=30):
        want = wsp.healthz_ok_re(self.workers)

        def ok():
            st, body = self.bridge_healthz()
            return st == 200 and want.fullmatch(
                body.decode(errors="replace").strip()) is not None
        wsp.wait_until(ok, timeout, f"{self.name}'s /healthz to say {want.pattern!r}",
                       check=self.check_running, interval=0.1)

    def wait_welcome(self):
        raise NotImplementedError("clients reach a node through nginx only")

    def url(self, *a, **kw):
        raise NotImplementedError("clients reach a node through nginx only")

    def stop(self):
        for p in (self.gateway, self.bridge):
            if p is not None:
                p.stop()
        self.thread.close()


class _RedisRef:
    """What wsp.Node needs of a Redis: its URL."""

    def __init__(self, url):
        self.url = url


def nginx_site(template, backends, listen, logdir):
    """The deployed nginx snippet with our upstream servers, listen address
    and log directory; everything else as shipped."""
    m = re.search(r"upstream\s+wspush\s*\{([^}]*)\}", template)
    if not m:
        raise wsp.HarnessError(f"{NGINX_TEMPLATE} has no upstream wspush {{}}")
    body = re.sub(r"^\s*server\s+[^;]*;[^\n]*\n?", "", m.group(1), flags=re.M)
    body += "".join(f"\tserver {b};\n" for b in backends)
    text = template[:m.start(1)] + body + template[m.end(1):]
    text, n = re.subn(r"^(\s*)listen\s+80\s*;", rf"\g<1>listen {listen};",
                      text, flags=re.M)
    if n != 1:
        raise wsp.HarnessError(f"{NGINX_TEMPLATE} has no `listen 80;` line")
    text = re.sub(r"^\s*listen\s+\[::\]:80[^;]*;[^\n]*\n", "", text,
                  flags=re.M)
    return re.sub(r"/var/log/nginx/", logdir.rstrip("/") + "/", text)


def nginx_main(d, site, connections):
    temps = "".join(f"\t{k}_temp_path {d}/{k}_temp;\n" for k in
                    ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    # Each proxied WebSocket holds two connections (the snippet says so).
    return ("user root;\ndaemon off;\nworker_processes 1;\n"
            f"worker_rlimit_nofile {4 * connections + 64};\n"
            f"pid {d}/nginx.pid;\nerror_log {d}/error.log info;\n"
            f"events {{ worker_connections {2 * connections + 64}; }}\n"
            f"http {{\n\taccess_log {d}/access.log;\n{temps}"
            f"\tinclude {site};\n}}\n")


class TestBed:
    """The namespaces, links, Redis, nginx and nodes of one test. Use as a
    context manager or call close(); close() stops what it started and
    deletes every namespace, whatever state the test left."""

    __test__ = False  # not a pytest class

    def __init__(self, h, nodes=3):
        self.h = h
        with _tags_lock:
            n = next(_tags)
        self.tag = f"wspt{os.getpid()}x{n}"
        self.names = []
        self.threads = []
        self.clients = []
        self.nodes = []
        self.loop = None
        self.redis = None
        self.redis_url = f"redis://{REDIS_ADDR}:{REDIS_PORT}"
        self.cluster = None
        self.nginx = None
        self.n = nodes
        self.url = f"ws://{LB_CLIENT_ADDR}/ws"
        _remove_stale()
        try:
            self._build()
        except BaseException:
            self.close()
            raise

    def ns(self, short):
        return f"{self.tag}-{short}"

    def _add(self, short):
        name = self.ns(short)
        ip("netns", "add", name)
        self.names.append(name)
        ip("-n", name, "link", "set", "lo", "up")
        return name

    def _build(self):
        sw = self._add("sw")
        ip("-n", sw, "link", "add", "br0", "type", "bridge")
        ip("-n", sw, "link", "set", "br0", "up")
        ends = [("redis", REDIS_ADDR), ("lb", LB_ADDR)]
        ends += [(f"n{i}", node_addr(i)) for i in range(1, self.n + 1)]
        for short, addr in ends:
            name = self._add(short)
            # The port on the switch is p-<short>; the machine sees eth0.
            ip("-n", sw, "link", "add", f"p-{short}", "type", "veth",
               "peer", "name", "eth0", "netns", name)
            ip("-n", sw, "link", "set", f"p-{short}", "master", "br0", "up")
            ip("-n", name, "addr", "add", f"{addr}/24", "dev", "eth0")
            ip("-n", name, "link", "set", "eth0", "up")
        cl = self._add("cl")
        lb = self.ns("lb")
        ip("-n", lb, "link", "add", "cl0", "type", "veth", "peer", "name",
           "eth0", "netns", cl)
        ip("-n", lb, "addr", "add", f"{LB_CLIENT_ADDR}/30", "dev", "cl0")
        ip("-n", lb, "link", "set", "cl0", "up")
        ip("-n", cl, "addr", "add", f"{CLIENT_ADDR}/30", "dev", "eth0")
        ip("-n", cl, "link", "set", "eth0", "up")
        self.redis_ns = self.thread("redis")
        self.loop = NsLoop(cl)

    def thread(self, short):
        t = NsThread(self.ns(short))
        self.threads.append(t)
        return t

    def exec_argv(self, short, *argv):
        return ["ip", "netns", "exec", self.ns(short), *map(str, argv)]

    # -- services

    def start_redis(self):
        """One redis-server in the Redis namespace."""
        d = os.path.join(self.h.dir, "redis")
        os.makedirs(d, exist_ok=True)
        self.redis = self.h.spawn("redis", self.exec_argv("redis",
            "redis-server", "--port", REDIS_PORT, "--bind", REDIS_ADDR,
            "127.0.0.1", "--protected-mode", "no", "--save", "",
            "--appendonly", "no", "--dir", d, "--daemonize", "no"))
        self.pub = Publisher(self)
        wsp.wait_until(lambda: self.redis_ns.run(wsp._ping, self.pub.r),
            10, "redis-server in its namespace",
            check=self.redis.check_running)
        return self.pub

    def start_redis_cluster(self, masters=3):
        """A Redis Cluster (redis_cluster.py) in the Redis namespace: its
        servers are forked from a thread inside the namespace, so they
        live there; every later call on it runs there too. Nodes are
        then configured with cluster = on."""
        from redis_cluster import RedisCluster

        def start():
            return RedisCluster(self.h, masters=masters,
                                host=REDIS_ADDR).start()
        self.cluster = self.redis_ns.run(start, timeout=120)
        self.redis_url = f"redis://{REDIS_ADDR}:{self.cluster.nodes[0].port}"
        self.pub = ClusterPublisher(self, self.cluster)
        return self.pub

    def start_nodes(self, workers=1, conf=None):
        if self.cluster is not None:
            conf = wsp.merge({"redis": {"cluster": "on"}}, conf)
        for i in range(1, self.n + 1):
            node = NsNode(self, i, workers=workers, conf=conf)
            self.nodes.append(node)
            node.start()
        return self.nodes

    def start_nginx(self, connections=1024):
        d = os.path.join(self.h.dir, "nginx")
        os.makedirs(d, exist_ok=True)
        with open(NGINX_TEMPLATE) as f:
            site = nginx_site(f.read(),
                [f"{n.addr}:{GATEWAY_PORT}" for n in self.nodes],
                f"{LB_CLIENT_ADDR}:80", d)
        site_path = os.path.join(d, "wspush.conf")
        with open(site_path, "w") as f:
            f.write(site)
        main = os.path.join(d, "nginx.conf")
        with open(main, "w") as f:
            f.write(nginx_main(d, site_path, connections))
        argv = self.exec_argv("lb", NGINX, "-p", d + "/", "-c", main,
                              "-e", os.path.join(d, "error.log"))
        t = subprocess.run(argv + ["-t"], capture_output=True, text=True,
                           timeout=wsp.T(20))
        if t.returncode != 0:
            raise wsp.HarnessError(f"nginx -t refused the config:\n{t.stderr}")
        self.nginx = self.h.spawn("nginx", argv)
        lb = self.thread("lb")

        def listening():
            import socket
            try:
                socket.create_connection((LB_CLIENT_ADDR, 80), timeout=1).close()
                return True
            except OSError:
                return False
        wsp.wait_until(lambda: lb.run(listening), 10, "nginx to listen",
                       check=self.nginx.check_running)

    # -- clients

    def connect_many(self, users, timeout=20, batch=50, since=None):
        """Opens one client per user through nginx, `batch` at a time, and
        reads each welcome. since: {user: last id seen} for a recovery
        (?since=). Returns the clients in users' order."""
        out = []
        since = since or {}

        def url(u):
            s = f"{self.url}?user={u}"
            return s + (f"&since={since[u]}" if u in since else "")
        for k in range(0, len(users), batch):
            cs = [NsClient(self, url(u), u) for u in users[k:k + batch]]

            async def go():
                await asyncio.gather(*(c._open(timeout) for c in cs))
            self.loop.call(go(), timeout + 2)
            for c in cs:
                wsp._read_welcome(c, timeout)
            out += cs
        return out

    def connect(self, user, timeout=20):
        return self.connect_many([user], timeout)[0]

    def node_of(self, client):
        """The NsNode that welcomed client."""
        for n in self.nodes:
            if n.id == client.node:
                return n
        raise wsp.HarnessError(f"{client.label}: welcome from unknown node "
                               f"{client.node!r}")

    # -- faults

    def cut(self, node):
        """Pulls node's cable: its switch port goes down. Its processes keep
        running and its sockets stay open, silent."""
        ip("-n", self.ns("sw"), "link", "set", f"p-n{node.index}", "down")

    def mend(self, node):
        ip("-n", self.ns("sw"), "link", "set", f"p-n{node.index}", "up")

    # -- teardown

    def close(self):
        if self.loop is not None:
            for c in self.clients:
                c.close(timeout=2)
            self.loop.stop()
            self.loop = None
        for n in self.nodes:
            n.stop()
        for p in (self.nginx, self.redis):
            if p is not None:
                p.stop()
        # Before the threads end: a child started from a thread gets
        # SIGTERM when that thread exits (PR_SET_PDEATHSIG).
        if self.cluster is not None:
            for n in self.cluster.nodes:
                if n.proc is not None:
                    n.proc.stop()
        for t in self.threads:
            t.close()
        for name in reversed(self.names):
            ip("netns", "del", name, check=False)
        self.names = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _remove_stale():
    """Deletes namespaces a killed earlier run of this harness left behind
    (their creator's pid is gone)."""
    try:
        names = os.listdir("/run/netns")
    except OSError:
        return
    for name in names:
        m = re.match(r"wspt(\d+)x\d+-", name)
        if m and not wsp.pid_alive(int(m.group(1))):
            ip("netns", "del", name, check=False)


SKIP_PREFIX = "netns unavailable: "


def skip_reason():
    """None, or the message a namespace test skips with."""
    r = unavailable()
    return None if r is None else SKIP_PREFIX + r
