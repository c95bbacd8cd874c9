"""routing = broadcast: the bridge holds one pattern subscription for the
whole prefix (and its own probe channel), no per-address ones, and every
address is delivered through it."""

import json

import wsp


def test_broadcast_routing_delivers_through_one_pattern(h):
    redis = wsp.RedisServer(h).start()
    node = wsp.Node(h, "a", redis, workers=2,
                    conf={"broker": {"routing": "broadcast"}}).start()
    r = redis.client()
    assert r.execute_command("PUBSUB", "NUMPAT") == 1
    chans = {c.decode() for c in r.pubsub_channels()}
    assert chans == {f"{wsp.PREFIX}:_hb:{node.id}"}, chans

    c = node.connect("bob")
    ch = wsp.uid("b")
    assert c.request({"op": "subscribe", "channel": ch, "ref": 1}) == \
        {"op": "subscribed", "channel": ch, "ref": 1}
    r.publish(f"{wsp.PREFIX}:channel:{ch}", json.dumps({"n": 1}))
    r.publish(f"{wsp.PREFIX}:user:bob", json.dumps({"n": 2}))
    r.publish(f"{wsp.PREFIX}:all", json.dumps({"n": 3}))
    assert wsp.datas(c.collect(3)) == [{"n": 1}, {"n": 2}, {"n": 3}]
    # Still no per-address subscription, and the probes are not delivered.
    assert {x.decode() for x in r.pubsub_channels()} == chans
    st = node.stats()["bridge"]
    assert st["subscriptions"] == 1, st
    assert st["drops"]["bad_address"] == 0, st
