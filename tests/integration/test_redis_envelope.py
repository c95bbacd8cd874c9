"""A payload starting with \\xC1WSP is a wspush envelope: its `data` is
delivered with its `from`; a malformed one is dropped. `wspushctl publish`
sends one."""

import json

import msgpack

import wsp

MAGIC = b"\xc1WSP"


def env(**fields):
    return MAGIC + msgpack.packb(fields, use_bin_type=True)


def test_envelopes_carry_from_and_malformed_ones_are_dropped(cluster):
    u = wsp.uid("env")
    c = cluster.a.connect(u)
    to = f"user:{u}"
    cluster.publish(to, env(v=1, data=b'{"x":1}', **{"from": "svc-1"},
                            id="m-1", ts=1700000000000))
    cluster.publish(to, env(v=1, data=b"plain"))
    cluster.publish(to, env(v=1, data=b"[5]", json=True, **{"from": "u9"}))
    cluster.publish(to, env(data=b"no version"))           # malformed
    cluster.publish(to, env(v=2, data=b"future"))           # unknown v
    cluster.publish(to, env(v=1))                           # no data
    cluster.publish(to, env(v=1, data=b"x") + b"trailing")  # trailing bytes
    cluster.publish(to, MAGIC + b"\xff\xff")                # not msgpack
    cluster.publish(to, json.dumps({"after": "bad ones"}))

    assert cluster.fence([c])[0] == [
        {"op": "msg", "to": to, "from": "svc-1", "data": {"x": 1}},
        {"op": "msg", "to": to, "data": "plain"},
        {"op": "msg", "to": to, "from": "u9", "data": [5]},
        {"op": "msg", "to": to, "data": {"after": "bad ones"}},
    ]


def test_wspushctl_publish_sends_an_envelope(cluster):
    u = wsp.uid("ctl")
    c = cluster.b.connect(u)
    cp = cluster.a.ctl("publish", "--user", u, "--from", "ops",
                       '{"y":2}')
    assert cp.returncode == 0, cp.stderr
    cp = cluster.a.ctl("publish", "--user", u, "text from ctl")
    assert cp.returncode == 0, cp.stderr
    assert cluster.fence([c])[0] == [
        {"op": "msg", "to": f"user:{u}", "from": "ops", "data": {"y": 2}},
        {"op": "msg", "to": f"user:{u}", "data": "text from ctl"},
    ]
