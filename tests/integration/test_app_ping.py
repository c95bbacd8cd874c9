"""Application-level ping and error replies: `{"op":"ping"}` gets a pong
with the same ref, the bare text `ping` gets `pong`; malformed JSON and
unknown ops get an error and the connection stays."""

import json

import wsp


def test_ping_pong(cluster):
    c = cluster.a.connect(wsp.uid("ping"))
    assert c.request({"op": "ping", "ref": 7}) == {"op": "pong", "ref": 7}
    r = c.request({"op": "ping"})
    assert r.get("op") == "pong" and "ref" not in r, r
    c.send("ping")
    assert c.recv() == "pong"


def test_ref_of_any_json_type_is_echoed(cluster):
    c = cluster.b.connect(wsp.uid("ref"))
    for ref in ["abc-123", 2**40, 0]:
        assert c.request({"op": "ping", "ref": ref}) == \
            {"op": "pong", "ref": ref}


def test_bad_messages_get_errors_and_the_connection_stays(cluster):
    u = wsp.uid("bad")
    c = cluster.a.connect(u)
    for raw in ['{"op":', "not json at all", "[1,2]", "42", '"ping"',
                '{"ref": 3}', '{"op": 5}']:
        c.send(raw)
        r = wsp.norm(c.recv_json())
        assert r.get("op") == "error", (raw, r)
        assert isinstance(r.get("code"), str) and r["code"], (raw, r)
    r = c.request({"op": "dance", "ref": 11})
    assert r.get("op") == "error" and r.get("ref") == 11, r
    r = c.request({"op": "subscribe", "channel": "x", "ref": 12,
                   "unknown_field": [1]})
    assert r == {"op": "subscribed", "channel": "x", "ref": 12}, \
        "unknown fields must be ignored"

    assert c.request({"op": "ping", "ref": 8}) == {"op": "pong", "ref": 8}
    cluster.publish(f"user:{u}", json.dumps({"alive": True}))
    assert wsp.datas(cluster.fence([c])[0]) == [{"alive": True}]
    assert c.is_open()
