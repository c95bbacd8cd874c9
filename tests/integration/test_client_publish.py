"""Client publish: user to user and to a channel across nodes, `from`
stamped by the gateway (a forged one is ignored); client_publish = off
refuses with an error reply and keeps the connection."""

import wsp


def replies_until_pong(c, ref=424242):
    """Frames the server sent c before answering a ping: a connection's
    replies come in order, so this holds the replies to what c sent
    before."""
    c.send_json({"op": "ping", "ref": ref})
    return c.until(lambda f: isinstance(f, dict) and f.get("op") == "pong"
                   and f.get("ref") == ref)


def errors(frames):
    return [f for f in frames if isinstance(f, dict)
            and f.get("op") == "error"]


def receive(c, n):
    return [wsp.norm(c.recv_json()) for _ in range(n)]


def test_user_to_user_across_nodes_with_stamped_from(cluster):
    s, t = wsp.uid("sender"), wsp.uid("target")
    cs = cluster.a.connect(s)
    ct = cluster.b.connect(t)

    for ref, data in [(1, {"hi": 1}), (2, "text"), (3, [1, "x"])]:
        cs.send_json({"op": "publish", "to": f"user:{t}", "data": data,
                      "from": "mallory", "ref": ref})
    assert errors(replies_until_pong(cs)) == []
    # Client publishes travel worker -> bridge -> Redis: wait for them
    # before the fence (which goes to Redis directly).
    got_t = receive(ct, 3)
    assert cluster.fence([ct]) == [[]], "more than the three messages"
    assert got_t == [
        {"op": "msg", "to": f"user:{t}", "from": s, "data": {"hi": 1}},
        {"op": "msg", "to": f"user:{t}", "from": s, "data": "text"},
        {"op": "msg", "to": f"user:{t}", "from": s, "data": [1, "x"]},
    ]


def test_publish_to_a_channel_reaches_subscribers_on_other_nodes(cluster):
    s, ch = wsp.uid("csender"), wsp.uid("room")
    cs = cluster.a.connect(s)
    subs = [cluster.a.connect(wsp.uid("sub")),
            cluster.b.connect(wsp.uid("sub"))]
    for i, c in enumerate(subs):
        assert c.request({"op": "subscribe", "channel": ch, "ref": i})[
            "op"] == "subscribed"

    cs.send_json({"op": "publish", "to": f"channel:{ch}",
                  "data": {"say": "hello"}, "from": "forged", "ref": 5})
    assert errors(replies_until_pong(cs)) == []
    for c in subs:
        assert receive(c, 1) == [{"op": "msg", "to": f"channel:{ch}",
                                  "from": s, "data": {"say": "hello"}}], c
    assert cluster.fence(subs) == [[], []]


def test_client_publish_off_gives_an_error(h):
    c = wsp.Cluster(h, nodes=1, workers=1,
                    conf={"gateway": {"client_publish": "off"}})
    s, t = wsp.uid("offs"), wsp.uid("offt")
    cs = c.a.connect(s)
    ct = c.a.connect(t)
    for ref, to in [(7, f"user:{t}"), (8, "channel:news")]:
        r = cs.request({"op": "publish", "to": to, "data": {"x": 1},
                        "ref": ref})
        assert r.get("op") == "error" and r.get("ref") == ref, r
    assert replies_until_pong(cs) == []
    assert c.fence([ct]) == [[]], "published although client_publish = off"
