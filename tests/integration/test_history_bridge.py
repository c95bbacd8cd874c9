"""History on the bridge's side, against the real redis-server, bridge and
gateway: the function library is loaded at start with the node's [history]
values and again after Redis restarts without persistence; client
publishes go through it (stored with their sender, delivered with their
id); a bridge that finds other values loaded says so in its log; a Redis
that refuses the library leaves delivery working.

Skipped while the build refuses [history] size > 0."""

import json

import pytest

import wsp
from test_history_recovery import HIST, _history_built, fcall, wait_function

pytestmark = pytest.mark.skipif(not _history_built(),
    reason="this build refuses [history] size > 0 (not wired yet)")


def stream(r, addr):
    return [(i.decode(), {k.decode(): v for k, v in f.items()})
            for i, f in r.xrange(f"{wsp.PREFIX}:{addr}")]


def bridge_log(node):
    return "".join(node.bridge.logs(400))


def test_library_loaded_with_our_values_and_after_a_redis_restart(h):
    c = wsp.Cluster(h, nodes=1, workers=1,
                    conf=wsp.merge(HIST, {"history": {
                        "size": 20, "ttl_s": 60, "user_size": 30,
                        "user_ttl_s": 900}}))
    wait_function(c.r)
    assert c.r.fcall_ro("wspush_config", 0) == [1, 20, 60, 30, 900, 0]
    c.redis.restart()  # no persistence: the functions are gone
    c.r = c.redis.client()
    wait_function(c.r, timeout=30)
    assert c.r.fcall_ro("wspush_config", 0) == [1, 20, 60, 30, 900, 0]
    u = wsp.uid("rs")
    cl = c.a.connect(u)
    i = fcall(c.r, f"user:{u}", b'{"after":"restart"}')
    got = wsp.fence(c.r, [cl])[0]
    assert wsp.msgs(got) == [{"op": "msg", "to": f"user:{u}",
                              "data": {"after": "restart"}}]
    assert c.r.pttl(f"{wsp.PREFIX}:user:{u}") > 800000
    assert stream(c.r, f"user:{u}")[0][0] == i


def test_client_publishes_are_stored_with_their_sender(h):
    c = wsp.Cluster(h, nodes=2, workers=1, conf=HIST)
    wait_function(c.r)
    ch = wsp.uid("cp")
    sender, reader = c.a.connect(wsp.uid("snd")), c.b.connect(wsp.uid("rd"))
    assert reader.request({"op": "subscribe", "channel": ch, "ref": 1}) \
        == {"op": "subscribed", "channel": ch, "ref": 1}
    assert sender.request({"op": "publish", "to": f"channel:{ch}",
                           "data": {"x": 1}, "ref": 2}) \
        == {"op": "ok", "ref": 2}
    frame = None
    for _ in range(10):
        f = reader.recv_json()
        if f.get("op") == "msg":
            frame = f
            break
    assert frame is not None
    st = stream(c.r, f"channel:{ch}")
    assert len(st) == 1
    sid, fields = st[0]
    assert frame["id"] == sid
    assert frame["from"] == sender.welcome["user"]
    assert frame["data"] == {"x": 1}
    assert fields == {"data": b'{"x":1}',
                      "from": sender.welcome["user"].encode(),
                      "json": b"1"}


def test_other_values_loaded_are_logged(h):
    c = wsp.Cluster(h, nodes=2, workers=1, conf=HIST,
                    node_conf=[{}, {"history": {"size": 7}}])
    wait_function(c.r)
    # Whichever bridge loaded second found the other's values.
    logs = bridge_log(c.a) + bridge_log(c.b)
    assert "other values" in logs and "size=7" in logs, logs[-2000:]


def test_plain_publish_still_works_and_is_not_stored(h):
    c = wsp.Cluster(h, nodes=1, workers=1, conf=HIST)
    wait_function(c.r)
    u = wsp.uid("pp")
    cl = c.a.connect(u)
    c.publish(f"user:{u}", json.dumps({"plain": True}))
    got = wsp.fence(c.r, [cl])[0]
    assert wsp.datas(got) == [{"plain": True}]
    assert not c.r.exists(f"{wsp.PREFIX}:user:{u}")


class OldRedis(wsp.RedisServer):
    """redis-server without the FUNCTION command: what a Redis older than
    7.0 answers to FUNCTION LOAD ("unknown command")."""

    def start(self):
        self.proc = self.h.spawn("redis", ["redis-server", "--port",
            self.port, "--bind", "127.0.0.1", "--save", "", "--appendonly",
            "no", "--dir", self.dir, "--daemonize", "no",
            "--rename-command", "FUNCTION", ""])
        c = self.client()
        wsp.wait_until(lambda: wsp._ping(c), 10,
                       f"redis-server on {self.port}",
                       check=self.proc.check_running)
        return self


def test_a_redis_without_functions_is_reported_and_delivery_goes_on(h):
    redis = OldRedis(h).start()
    n = wsp.Node(h, "a", redis, workers=1, conf=HIST).start()
    wsp.wait_until(lambda: "history requested but unavailable"
                   in bridge_log(n), 15, "the bridge to report it")
    assert "Redis 7.0 or newer" in bridge_log(n)
    r = redis.client()
    ch = wsp.uid("old")
    sender, reader = n.connect(wsp.uid("s")), n.connect(wsp.uid("r"))
    rep = reader.request({"op": "subscribe", "channel": ch, "since": "0",
                          "ref": 1})
    assert rep == {"op": "subscribed", "channel": ch, "ref": 1}
    assert sender.request({"op": "publish", "to": f"channel:{ch}",
                           "data": [1], "ref": 2}) == {"op": "ok", "ref": 2}
    got = wsp.fence(r, [reader])[0]
    assert wsp.datas(got) == [[1]]
    assert not r.exists(f"{wsp.PREFIX}:channel:{ch}")
    c = n.connect(wsp.uid("h"))
    assert c.request({"op": "history", "to": "all", "ref": 3})["code"] \
        == "unavailable"
