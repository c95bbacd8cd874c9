"""bridge/resp_conn.c against a real redis-server (through
tests/tools/resp_probe): pipelined replies in order, sharded and classic
pub/sub pushes, AUTH with an ACL user, reconnection after a restart, the
connect timeout, and the liveness PING noticing a frozen server."""

import os
import signal
import socket

import pytest

import wsp
from redis_cluster import Probe


@pytest.fixture
def redis(h):
    return wsp.RedisServer(h).start()


def up_probe(h, redis, **kw):
    p = Probe(h, "127.0.0.1", redis.port, **kw).start()
    p.wait_state(True)
    return p


def test_pipelined_commands_get_their_own_replies_in_order(h, redis):
    p = up_probe(h, redis)
    ids = []
    for i in range(200):
        ids.append(p.cmd("SET", f"k{i}", f"v {i}"))
        ids.append(p.cmd("GET", f"k{i}"))
    ids.append(p.cmd("NOSUCHCOMMAND"))
    for i in range(200):
        assert p.reply(ids[2 * i]) == {"status": "OK"}
        assert p.reply(ids[2 * i + 1]) == f"v {i}"
    err = p.reply(ids[-1])
    assert err["error"].startswith("ERR unknown command"), err
    assert "redirect" not in err
    st = p.stats()
    assert (st["replies"], st["pending"], st["pushes"]) == (401, 0, 0), st
    p.quit()


def test_sharded_and_classic_pubsub_pushes(h, redis):
    p = up_probe(h, redis, pubsub=True)
    r = redis.client()
    ch = ["s one", "s\ttwo", "s3"]  # a space and a tab survive the wire
    sid = p.cmd("SSUBSCRIBE", *ch)
    for i, c in enumerate(ch):
        assert p.push() == ["ssubscribe", c, i + 1]
    # One reply for the command: the last confirmation.
    assert p.reply(sid) == ["ssubscribe", ch[-1], 3]
    cid = p.cmd("SUBSCRIBE", "classic")
    assert p.reply(cid) == ["subscribe", "classic", 1]
    # PING while subscribed: hiredis 0.14's async layer drops this reply.
    assert p.call("PING") == ["pong", ""]

    for i in range(50):
        r.execute_command("SPUBLISH", ch[i % 3], f"m{i}")
    r.publish("classic", "c1")
    got = [p.push(lambda x: x[0] in ("smessage", "message"))
           for _ in range(51)]
    assert got[:50] == [["smessage", ch[i % 3], f"m{i}"] for i in range(50)]
    assert got[50] == ["message", "classic", "c1"]

    uid_ = p.cmd("SUNSUBSCRIBE", ch[0], ch[1])
    assert p.reply(uid_) == ["sunsubscribe", ch[1], 1]
    r.execute_command("SPUBLISH", ch[0], "gone")
    r.execute_command("SPUBLISH", ch[2], "still")
    assert p.push(lambda x: x[0] == "smessage") == ["smessage", ch[2],
                                                     "still"]
    # The argument-less forms are refused (their reply count is unknown).
    assert p.try_cmd("SUNSUBSCRIBE") is None
    p.quit()


def test_auth_with_an_acl_user_and_a_wrong_password(h, redis):
    r = redis.client()
    r.execute_command("ACL", "SETUSER", "wsp", "on", ">s3cret pw", "~*",
                      "&*", "+@all")
    p = up_probe(h, redis, user="wsp", password="s3cret pw")
    assert p.call("ACL", "WHOAMI") == "wsp"
    p.quit()

    bad = Probe(h, "127.0.0.1", redis.port, user="wsp", password="nope",
                backoff="20,50").start()
    for _ in range(3):
        m = bad.wait_state(False)
        assert m["why"].startswith("AUTH: WRONGPASS"), m
    st = bad.stats()
    assert not st["up"] and st["connects"] == 0 and st["failures"] >= 3, st
    bad.quit()


def test_reconnects_after_a_restart_and_fails_pending_commands(h, redis):
    p = up_probe(h, redis, pubsub=True, backoff="50,200")
    assert p.reply(p.cmd("SSUBSCRIBE", "a"))[0] == "ssubscribe"
    redis.stop()
    m = p.wait_state(False)
    assert "closed" in m["why"], m
    # Refused while down; the owner re-issues on the next "up".
    assert p.try_cmd("PING") is None
    redis.start()
    p.wait_state(True, timeout=20)
    st = p.stats()
    assert st["connects"] == 2 and st["disconnects"] == 1, st
    assert p.reply(p.cmd("SSUBSCRIBE", "a")) == ["ssubscribe", "a", 1]
    redis.client().execute_command("SPUBLISH", "a", "back")
    assert p.push(lambda x: x[0] == "smessage") == ["smessage", "a", "back"]
    p.quit()


def test_connect_timeout_covers_a_server_that_never_answers(h):
    # A listener that never accepts: the kernel completes the TCP
    # handshake, nobody answers AUTH.
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    try:
        p = Probe(h, "127.0.0.1", s.getsockname()[1], password="x",
                  connect_timeout_ms=300, backoff="20,40").start()
        for _ in range(2):
            m = p.wait_state(False, timeout=5)
            assert m["why"] == (f"no connection to 127.0.0.1:"
                                f"{s.getsockname()[1]} within 300 ms"), m
        p.quit()
    finally:
        s.close()


def test_liveness_ping_drops_a_frozen_server(h, redis):
    p = up_probe(h, redis, pubsub=True, ping_ms=200, backoff="50,100")
    assert p.reply(p.cmd("SSUBSCRIBE", "a"))[0] == "ssubscribe"
    os.kill(redis.proc.pid, signal.SIGSTOP)
    try:
        m = p.wait_state(False, timeout=5)
        assert m["why"] == "no reply to PING within 200 ms", m
    finally:
        os.kill(redis.proc.pid, signal.SIGCONT)
    p.wait_state(True, timeout=10)
    p.quit()


def test_a_protocol_error_drops_the_link(h):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(4)
    try:
        p = Probe(h, "127.0.0.1", s.getsockname()[1],
                  backoff="5000,5000").start()
        conn, _ = s.accept()
        p.wait_state(True)
        pid = p.cmd("PING")
        conn.recv(100)
        conn.sendall(b"!garbage\r\n")
        m = p.wait_state(False)
        assert m["why"].startswith("protocol error"), m
        # The pending command fails with no reply, exactly once.
        assert p.reply(pid) is None
        conn.close()
        p.quit()
    finally:
        s.close()


def test_a_large_message_between_small_ones(h, redis):
    """A 2 MiB payload spans many reads; the ones around it stay whole and
    in order."""
    p = up_probe(h, redis, pubsub=True)
    assert p.reply(p.cmd("SSUBSCRIBE", "big")) == ["ssubscribe", "big", 1]
    r = redis.client()
    big = "x" * (2 << 20)
    r.execute_command("SPUBLISH", "big", "before")
    r.execute_command("SPUBLISH", "big", big)
    r.execute_command("SPUBLISH", "big", "after")
    got = [p.push(lambda x: x[0] == "smessage", timeout=20)
           for _ in range(3)]
    assert [g[2][:6] for g in got] == ["before", "x" * 6, "after"]
    assert len(got[1][2]) == len(big)
    p.quit()
