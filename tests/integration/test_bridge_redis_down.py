"""A bridge started while Redis is down is READY for systemd (its ipc
sockets are bound), reports the outage (stats, /healthz, STATUS=), and
subscribes once Redis comes up."""

import json
import os
import socket
import time

import wsp


def notify_messages(sock, want, timeout):
    """Datagrams received on the fake NOTIFY_SOCKET until one contains
    want; returns them all."""
    got = []
    deadline = time.monotonic() + wsp.T(timeout)
    while not any(want in m for m in got):
        left = deadline - time.monotonic()
        if left <= 0:
            raise wsp.HarnessError(f"no {want!r} on NOTIFY_SOCKET within "
                                   f"{wsp.T(timeout):.0f}s; got {got!r}")
        sock.settimeout(left)
        try:
            got.append(sock.recv(4096).decode())
        except socket.timeout:
            pass
    return got


def test_bridge_ready_with_redis_down_then_subscribes(h):
    redis = wsp.RedisServer(h)  # not started yet
    node = wsp.Node(h, "a", redis, workers=1)
    path = os.path.join(h.dir, "notify.sock")
    ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    ns.bind(path)
    try:
        node.bridge = h.spawn("bridge-a",
            [wsp.binary("bridge/wspush-bridge"), "-c", node.conf],
            env={"NOTIFY_SOCKET": path})
        msgs = notify_messages(ns, "READY=1", 15)
        if not any("STATUS=redis=down" in m for m in msgs):
            notify_messages(ns, "STATUS=redis=down", 5)
        node.bridge.check_running()

        cp = node.ctl("stats", "--json")
        assert cp.returncode == 0, cp.stderr
        st = json.loads(cp.stdout)
        assert st["bridge"]["redis"]["state"] == "down", st["bridge"]
        status, body = node.bridge_healthz()
        assert status == 503 and b"redis" in body, (status, body)

        redis.start()
        notify_messages(ns, "STATUS=redis=up", 20)
        node.wait_bridge_healthz(200, 20, "bridge /healthz 200 once Redis "
                                 "is up")
        st = json.loads(node.ctl("stats", "--json").stdout)
        assert st["bridge"]["redis"]["state"] == "up"
        assert st["bridge"]["redis"]["last_outage_ms"] > 0

        node.start_gateway()
        user = wsp.uid("rd")
        c = node.connect(user)
        r = redis.client()
        assert r.publish(f"{wsp.PREFIX}:user:{user}",
                         json.dumps({"hello": 1})) >= 1
        assert wsp.datas(c.collect(count=1, timeout=5)) == [{"hello": 1}]
    finally:
        ns.close()
