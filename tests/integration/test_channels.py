"""Channel subscriptions: replies echo `ref`, the Redis subscription
follows the nodes' interest (PUBSUB NUMSUB), unsubscribing stops delivery,
max_subscriptions is enforced and invalid names are refused."""

import json

import wsp

INVALID = ["", "has space", "star*", "tab\there", "ctl\x01char", "x" * 257,
           "new\nline"]


def subscribe(c, ch, ref):
    return c.request({"op": "subscribe", "channel": ch, "ref": ref})


def unsubscribe(c, ch, ref):
    return c.request({"op": "unsubscribe", "channel": ch, "ref": ref})


def test_subscribe_publish_unsubscribe_across_nodes(cluster):
    ch = wsp.uid("news")
    rch = f"{wsp.PREFIX}:channel:{ch}"
    ca = cluster.a.connect(wsp.uid("cha"))
    cb = cluster.b.connect(wsp.uid("chb"))
    assert wsp.numsub(cluster.r, rch) == 0

    assert subscribe(ca, ch, 1) == {"op": "subscribed", "channel": ch,
                                    "ref": 1}
    # `subscribed` is sent once the node's subscription is in effect.
    assert wsp.numsub(cluster.r, rch) == 1
    assert subscribe(cb, ch, 2) == {"op": "subscribed", "channel": ch,
                                    "ref": 2}
    assert wsp.numsub(cluster.r, rch) == 2

    cluster.publish(f"channel:{ch}", json.dumps({"n": 1}))
    for c, frames in zip([ca, cb], cluster.fence([ca, cb])):
        assert frames == [{"op": "msg", "to": f"channel:{ch}",
                           "data": {"n": 1}}], c

    assert unsubscribe(ca, ch, 3) == {"op": "unsubscribed", "channel": ch,
                                      "ref": 3}
    wsp.wait_until(lambda: wsp.numsub(cluster.r, rch) == 1, 10,
                   "NUMSUB 1 after node a lost interest")
    cluster.publish(f"channel:{ch}", json.dumps({"n": 2}))
    got_a, got_b = cluster.fence([ca, cb])
    assert got_a == [], "delivered after unsubscribe"
    assert wsp.datas(got_b) == [{"n": 2}]

    assert unsubscribe(cb, ch, 4) == {"op": "unsubscribed", "channel": ch,
                                      "ref": 4}
    wsp.wait_until(lambda: wsp.numsub(cluster.r, rch) == 0, 10,
                   "NUMSUB 0 after the last unsubscribe")
    cluster.publish(f"channel:{ch}", json.dumps({"n": 3}))
    assert cluster.fence([ca, cb]) == [[], []]


def test_two_workers_of_one_node_share_one_redis_subscription(cluster):
    ch = wsp.uid("shared")
    rch = f"{wsp.PREFIX}:channel:{ch}"
    clients = cluster.a.connect_spread(wsp.uid("w"))
    for i, c in enumerate(clients):
        assert subscribe(c, ch, i)["op"] == "subscribed"
    assert wsp.numsub(cluster.r, rch) == 1

    cluster.publish(f"channel:{ch}", "hi")
    for c, frames in zip(clients, cluster.fence(clients)):
        assert wsp.datas(frames) == ["hi"], c

    for i, c in enumerate(clients[:-1]):
        assert unsubscribe(c, ch, i)["op"] == "unsubscribed"
    # One connection still wants it: the subscription stays.
    cluster.publish(f"channel:{ch}", "still")
    assert wsp.datas(cluster.fence([clients[-1]])[0]) == ["still"]
    assert wsp.numsub(cluster.r, rch) == 1


def test_channel_names_with_colons_work(cluster):
    ch = f"chat:room:{wsp.uid('r')}"
    c = cluster.b.connect(wsp.uid("colon"))
    assert subscribe(c, ch, 1) == {"op": "subscribed", "channel": ch,
                                   "ref": 1}
    cluster.publish(f"channel:{ch}", json.dumps([1, 2]))
    assert cluster.fence([c])[0] == [{"op": "msg", "to": f"channel:{ch}",
                                      "data": [1, 2]}]


def test_max_subscriptions_is_enforced(cluster):
    limit = int(cluster.a.sections["gateway"]["max_subscriptions"])
    c = cluster.a.connect(wsp.uid("max"))
    chans = [wsp.uid(f"m{i}") for i in range(limit + 1)]
    for i, ch in enumerate(chans[:limit]):
        assert subscribe(c, ch, i) == {"op": "subscribed", "channel": ch,
                                       "ref": i}
    r = subscribe(c, chans[limit], 99)
    assert r.get("op") == "error" and r.get("ref") == 99, r
    assert isinstance(r.get("code"), str) and r["code"], r

    # The refused channel was not subscribed; a freed slot can be reused.
    assert wsp.numsub(cluster.r, f"{wsp.PREFIX}:channel:{chans[limit]}") == 0
    assert unsubscribe(c, chans[0], 100)["op"] == "unsubscribed"
    assert subscribe(c, chans[limit], 101)["op"] == "subscribed"
    cluster.publish(f"channel:{chans[limit]}", "late")
    assert wsp.datas(cluster.fence([c])[0]) == ["late"]


def test_invalid_channel_names_get_an_error(cluster):
    c = cluster.a.connect(wsp.uid("inv"))
    for i, ch in enumerate(INVALID):
        r = subscribe(c, ch, i)
        assert r.get("op") == "error" and r.get("ref") == i, (ch, r)
        assert isinstance(r.get("code"), str) and r["code"], (ch, r)
    for i, bad in enumerate([{"op": "subscribe", "ref": 50},
                             {"op": "subscribe", "channel": 7, "ref": 51}]):
        r = c.request(bad)
        assert r.get("op") == "error" and r.get("ref") == bad["ref"], r
    # The connection stays usable.
    assert c.request({"op": "ping", "ref": 9}) == {"op": "pong", "ref": 9}
    assert c.is_open()
