"""`send` lands in the <prefix>:inbound stream with the sender's user, conn
and node; connects and disconnects appear in <prefix>:events."""

import json

import wsp


def entries(r, stream):
    out = []
    for _id, fields in r.xrange(stream, "-", "+"):
        out.append({k.decode(): v.decode("utf-8", "replace")
                    for k, v in fields.items()})
    return out


def find(r, stream, **match):
    return [e for e in entries(r, stream)
            if all(e.get(k) == v for k, v in match.items())]


def test_send_goes_to_the_inbound_stream(cluster):
    u = wsp.uid("snd")
    c = cluster.b.connect(u)
    data = {"cart": 5, "items": ["a", "\u00e9"], "nested": {"ok": True}}
    c.send_json({"op": "send", "data": data, "ref": 5})
    c.send_json({"op": "send", "data": "just text", "ref": 6})

    inbound = f"{wsp.PREFIX}:inbound"
    got = wsp.wait_until(lambda: (lambda e: e if len(e) >= 2 else None)(
        find(cluster.r, inbound, conn=c.conn)), 10,
        f"two entries for {c.conn} in {inbound}")
    assert len(got) == 2, got
    for e, want in zip(got, [data, "just text"]):
        assert e["user"] == u and e["node"] == cluster.b.id, e
        assert json.loads(e["data"]) == want, e
    assert c.is_open()
    # A send gets no error: replies come in order, before this pong.
    c.send_json({"op": "ping", "ref": 77})
    before = c.until(lambda f: f.get("op") == "pong" and f.get("ref") == 77)
    assert [f for f in before if f.get("op") == "error"] == [], before


def test_connect_and_disconnect_events(cluster):
    u = wsp.uid("ev")
    c = cluster.a.connect(u)
    conn = c.conn
    events = f"{wsp.PREFIX}:events"
    (ev,) = wsp.wait_until(lambda: find(cluster.r, events, conn=conn,
                                        type="connect"), 10,
                           f"a connect event for {conn}")
    assert ev["user"] == u and ev["node"] == cluster.a.id, ev

    c.close()
    (ev,) = wsp.wait_until(lambda: find(cluster.r, events, conn=conn,
                                        type="disconnect"), 10,
                           f"a disconnect event for {conn}")
    assert ev["user"] == u and ev["node"] == cluster.a.id, ev
    assert "reason" in ev, ev
