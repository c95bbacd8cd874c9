"""A bridge started while Redis is down is READY for systemd (its ipc
sockets are bound), reports the outage (stats, /healthz, STATUS=), and
subscribes once Redis comes up."""

import json

import wsp
from fake_systemd import FakeSystemd


def test_bridge_ready_with_redis_down_then_subscribes(h):
    redis = wsp.RedisServer(h)  # not started yet
    node = wsp.Node(h, "a", redis, workers=1)
    sd = FakeSystemd(h, "bridge")
    try:
        node.bridge = h.spawn("bridge-a",
            [wsp.binary("bridge/wspush-bridge"), "-c", node.conf],
            env=sd.env())
        sd.wait_for("READY", "1", 15, check=node.bridge.check_running)
        sd.wait_for("STATUS", "redis=down", 5, check=node.bridge.check_running)

        cp = node.ctl("stats", "--json")
        assert cp.returncode == 0, cp.stderr
        st = json.loads(cp.stdout)
        assert st["bridge"]["redis"]["state"] == "down", st["bridge"]
        status, body = node.bridge_healthz()
        assert status == 503 and b"redis" in body, (status, body)

        redis.start()
        sd.wait_for("STATUS", "redis=up", 20, check=node.bridge.check_running)
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
        sd.close()
