"""The README's Redis ACL recipe works as written: with exactly its
`ACL SETUSER` lines (and the default user disabled), the bridge logs in as
the `wspush` user (redis://wspush:bridge-secret@...) and does everything
it does as that user: subscriptions, deliveries, client publishes,
inbound sends, events and presence. The `backend` user can publish to
clients but cannot, e.g., FLUSHALL."""

import json
import os
import re

import pytest

import wsp
from test_redis_auth_errors import AclRedis

README = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                      "README.md")


def readme_acl_lines():
    with open(README) as f:
        lines = [l.strip() for l in f if l.startswith("ACL SETUSER ")]
    assert {l.split()[2] for l in lines} == {"wspush", "backend"}, lines
    return lines


def secret(line):
    return re.search(r" >(\S+)", line).group(1)


def test_bridge_works_as_the_readme_acl_user(h):
    lines = readme_acl_lines()
    redis = AclRedis(h).start()
    r = redis.client()
    for line in lines:
        assert r.execute_command(*line.split()) in (b"OK", "OK", True), line
    r.execute_command("ACL", "SETUSER", "admin", "on", ">adm", "~*", "&*",
                      "+@all")
    r.execute_command("ACL", "SETUSER", "default", "off")
    r.connection_pool.disconnect()
    redis.admin = ("admin", "adm")
    admin = redis.client()
    wspush = next(l for l in lines if l.split()[2] == "wspush")
    backend = next(l for l in lines if l.split()[2] == "backend")
    assert wsp.PREFIX == "wspush"  # the recipe names this prefix

    node = wsp.Node(h, "a", redis, workers=1, conf={
        "redis": {"url": f"redis://wspush:{secret(wspush)}@127.0.0.1:"
                         f"{redis.port}"},
        "gateway": {"client_publish": "all"}})
    node.start()
    users = {c["user"] for c in admin.client_list()} - {"admin"}
    assert users == {"wspush"}, admin.client_list()

    c = node.connect("alice")
    ch = wsp.uid("acl")
    assert c.request({"op": "subscribe", "channel": ch, "ref": 1})["op"] \
        == "subscribed"

    be = wsp.redislib.Redis(host="127.0.0.1", port=redis.port,
                            username="backend", password=secret(backend))
    be.publish(f"wspush:channel:{ch}", json.dumps({"n": 1}))
    be.publish("wspush:user:alice", json.dumps({"n": 2}))
    assert wsp.datas(c.collect(2)) == [{"n": 1}, {"n": 2}]

    # The command link's writes, as wspush: publish, send, presence.
    c.send_json({"op": "publish", "to": f"channel:{ch}", "data": 3})
    assert wsp.datas(c.collect(1)) == [3]
    c.send_json({"op": "send", "data": {"hello": 1}})
    wsp.wait_until(lambda: admin.xlen("wspush:inbound") >= 1, 10,
                   "inbound stream written")
    wsp.wait_until(lambda: admin.hget(f"wspush:presence:{node.id}",
                                      "alice") == b"1", 10,
                   "presence written")
    assert admin.ttl(f"wspush:presence:{node.id}") > 0
    assert admin.xlen("wspush:events") >= 1
    st = node.stats()["bridge"]
    assert st["drops"]["redis_error"] == 0, st
    assert st["redis"]["connect_failures"] == 0, st
    # Nothing the bridge sent was refused.
    log = admin.execute_command("ACL", "LOG")
    assert not [e for e in log if b"wspush" in e], log

    with pytest.raises(wsp.redislib.exceptions.NoPermissionError):
        be.flushall()
    assert admin.xlen("wspush:inbound") >= 1, "FLUSHALL went through"
