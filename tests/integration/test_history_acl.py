"""The README's Redis ACL recipe with history on: with exactly its
`ACL SETUSER` lines (default user disabled), the bridge loads the function
library as the `wspush` user and serves recoveries and history reads; the
`backend` user publishes with FCALL wspush_publish (the function runs
XADD, PEXPIRE and PUBLISH with the caller's permissions); wspushctl
publishes and reads history as the bridge's user; Redis logs no refusal.
The backend still cannot load functions or flush."""

import json

import pytest

import wsp
from test_history_recovery import (HIST, _history_built, check_exact,
                                   frames_until_fence, subscribe)
from test_redis_acl import readme_acl_lines, secret
from test_redis_auth_errors import AclRedis

pytestmark = pytest.mark.skipif(not _history_built(),
    reason="this build refuses [history] size > 0")


def test_history_works_as_the_readme_acl_users(h):
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

    node = wsp.Node(h, "a", redis, workers=1, conf=wsp.merge(HIST, {
        "redis": {"url": f"redis://wspush:{secret(wspush)}@127.0.0.1:"
                         f"{redis.port}"}}))
    node.start()
    wsp.wait_until(
        lambda: node.stats()["bridge"]["history"]["state"] == "ready", 15,
        "the library to be loaded as the wspush user")

    be = wsp.redislib.Redis(host="127.0.0.1", port=redis.port,
                            username="backend", password=secret(backend))
    ch = wsp.uid("acl")
    to = f"channel:{ch}"
    c = node.connect("alice")
    subscribe(c, ch)
    first = be.fcall("wspush_publish", 1, f"wspush:{to}", b'{"n":0}').decode()
    assert [f["id"] for f in frames_until_fence(admin, c)] == [first]
    c.close()

    missed = [be.fcall("wspush_publish", 1, f"wspush:{to}",
                       json.dumps({"n": i})).decode() for i in range(1, 21)]
    # wspushctl as the bridge's user: publish stores, history reads.
    cp = node.ctl("publish", "--channel", ch, '{"n":21}')
    assert cp.returncode == 0, cp.stderr
    missed.append(cp.stdout.strip())
    cp = node.ctl("history", to, "--limit", "100")
    assert cp.returncode == 0, cp.stderr
    assert [l.split(" ", 1)[0] for l in cp.stdout.splitlines()] == \
        [first] + missed

    # Recovery (FCALL_RO wspush_range as the wspush user), then a client
    # publish (FCALL through the bridge) and a history read.
    c = node.connect("alice")
    assert subscribe(c, ch, since=first).get("recovered") is True
    c.send_json({"op": "publish", "to": to, "data": "live", "ref": 2})
    # Stored before the fence goes out, so the fence comes after it.
    wsp.wait_until(lambda: admin.xlen(f"wspush:{to}") == 23, 10,
                   "the client publish to be stored")
    frames = frames_until_fence(admin, c)
    assert {"op": "ok", "ref": 2} in frames, frames
    live = [i.decode() for i, _ in admin.xrange(f"wspush:{to}")][-1]
    check_exact(frames, to, missed + [live])
    c.send_json({"op": "history", "to": to, "limit": 3, "ref": 3})
    rep = c.recv_json()
    assert [m["id"] for m in rep["messages"]] == missed[-2:] + [live], rep

    st = node.stats()["bridge"]
    assert st["history"]["load_failures"] == 0, st["history"]
    assert st["drops"]["redis_error"] == 0, st
    log = admin.execute_command("ACL", "LOG")
    assert not [e for e in log if b"wspush" in e or b"backend" in e], log
    with pytest.raises(wsp.redislib.exceptions.NoPermissionError):
        be.execute_command("FUNCTION", "FLUSH")
    with pytest.raises(wsp.redislib.exceptions.NoPermissionError):
        be.flushall()
    assert admin.exists(f"wspush:{to}")
