"""The Redis function library `wspush` (bridge/wspush.lua) against a real
redis-server: wspush_publish appends to the stream named like the channel,
trims it near the configured size, sets the ttl, publishes a wspush envelope
carrying the id and ts and returns the id; wspush_range gives the facts a
recovery needs, atomically; wspush_config tells what was loaded.

The library text is bridge/wspush.lua with its CONF line rewritten, the way
the bridge does it (bridge/history.c; unit.history checks the C side
produces the same line)."""

import os
import re

import msgpack
import pytest
import redis as redislib

import wsp

LUA = os.path.join(wsp.REPO, "bridge", "wspush.lua")
MAGIC = b"\xc1WSP"
ID_RE = re.compile(rb"^(\d+)-(\d+)$")


def library(size=10, ttl_s=300, user_size=0, user_ttl_s=86400,
            sharded=False):
    text = open(LUA).read()
    conf = ("local CONF = {version = 1, size = %d, ttl_s = %d, "
            "user_size = %d, user_ttl_s = %d, sharded = %s} -- CONF" % (
                size, ttl_s, user_size or size, user_ttl_s,
                "true" if sharded else "false"))
    out, n = re.subn(r"(?m)^local CONF = .* -- CONF$", conf, text)
    assert n == 1, "the CONF line of wspush.lua is missing"
    return out


@pytest.fixture
def r(h):
    srv = wsp.RedisServer(h).start()
    c = srv.client()
    assert c.function_load(library(), replace=True) == b"wspush"
    return c


def sid(b):
    m = ID_RE.match(b)
    assert m, b
    return (int(m.group(1)), int(m.group(2)))


def decode_env(raw):
    """Decodes a wspush envelope the way proto/wspenv.c does: magic, one
    msgpack map and nothing after it, v == 1, data bin, from/id UTF-8 str,
    ts uint, json bool, no key twice."""
    assert raw[:4] == MAGIC, raw[:16]
    up = msgpack.Unpacker(raw=False, strict_map_key=True)
    up.feed(raw[4:])
    pairs = up.unpack()  # a dict; duplicates checked below
    with pytest.raises(msgpack.OutOfData):
        up.unpack()  # nothing after the map
    # Walk the raw map header to see each key once.
    keys = []
    up2 = msgpack.Unpacker(raw=False, object_pairs_hook=lambda kv: kv)
    up2.feed(raw[4:])
    for k, _ in up2.unpack():
        keys.append(k)
    assert len(keys) == len(set(keys)), keys
    assert pairs["v"] == 1
    assert isinstance(pairs["data"], bytes), "data must be msgpack bin"
    for k in ("from", "id"):
        if k in pairs:
            assert isinstance(pairs[k], str) and len(pairs[k].encode()) <= 256
    if "ts" in pairs:
        assert isinstance(pairs["ts"], int) and pairs["ts"] >= 0
    if "json" in pairs:
        assert pairs["json"] is True
    return pairs


class Sub:
    """A pub/sub listener on one channel, read with bounded waits."""

    def __init__(self, r, channel):
        self.ps = r.pubsub()
        self.ps.subscribe(channel)
        m = self.ps.get_message(timeout=wsp.T(5))
        assert m and m["type"] == "subscribe", m

    def get(self, n):
        out = []
        for _ in range(n):
            m = self.ps.get_message(timeout=wsp.T(5))
            assert m is not None, f"got {len(out)} of {n} messages"
            assert m["type"] == "message"
            out.append(m["data"])
        return out

    def close(self):
        self.ps.close()


def entries(r, key):
    return [(i, {k: v for k, v in f.items()}) for i, f in r.xrange(key)]


def test_publish_stores_publishes_and_returns_the_id(r):
    key = "wspush:channel:news"
    s = Sub(r, key)
    ids = [r.fcall("wspush_publish", 1, key, b'{"n":%d}' % i)
           for i in range(3)]
    binary = b"\xff\x00\xfe raw"
    ids.append(r.fcall("wspush_publish", 1, key, binary))
    ids.append(r.fcall("wspush_publish", 1, key, b"x" * 70000, "svc-1"))
    ids.append(r.fcall("wspush_publish", 1, key, b'"a"', "u7", "json"))
    got = [decode_env(m) for m in s.get(len(ids))]
    s.close()
    assert [sid(i) for i in ids] == sorted(sid(i) for i in ids)
    assert len(set(ids)) == len(ids)
    for i, e in zip(ids, got):
        assert e["id"] == i.decode()
        assert e["ts"] == sid(i)[0]
    assert [e["data"] for e in got[:3]] == [b'{"n":%d}' % i for i in range(3)]
    assert got[3]["data"] == binary and "from" not in got[3]
    assert got[4]["data"] == b"x" * 70000 and got[4]["from"] == "svc-1"
    assert "json" not in got[4]
    assert got[5] == {"v": 1, "data": b'"a"', "id": ids[5].decode(),
                      "ts": sid(ids[5])[0], "from": "u7", "json": True}
    st = entries(r, key)
    assert [i for i, _ in st] == ids
    assert st[3][1] == {b"data": binary}
    assert st[4][1] == {b"data": b"x" * 70000, b"from": b"svc-1"}
    assert st[5][1] == {b"data": b'"a"', b"from": b"u7", b"json": b"1"}


def test_ttl_is_the_address_kind_s(h):
    srv = wsp.RedisServer(h).start()
    r = srv.client()
    r.function_load(library(size=5, ttl_s=40, user_size=7, user_ttl_s=900),
                    replace=True)
    r.fcall("wspush_publish", 1, "wspush:channel:c", b"1")
    r.fcall("wspush_publish", 1, "wspush:all", b"1")
    r.fcall("wspush_publish", 1, "wspush:user:9", b"1")
    assert 30000 < r.pttl("wspush:channel:c") <= 40000
    assert 30000 < r.pttl("wspush:all") <= 40000
    assert 890000 < r.pttl("wspush:user:9") <= 900000
    # Every publish renews it: the history expires after the LAST message.
    r.pexpire("wspush:channel:c", 1000)
    r.fcall("wspush_publish", 1, "wspush:channel:c", b"2")
    assert r.pttl("wspush:channel:c") > 30000
    assert r.fcall_ro("wspush_config", 0) == [1, 5, 40, 7, 900, 0]


def test_size_10_with_300_published_really_trims(h):
    srv = wsp.RedisServer(h).start()
    r = srv.client()
    r.function_load(library(size=10, user_size=20), replace=True)
    ids = [r.fcall("wspush_publish", 1, "wspush:channel:t", b"m%d" % i)
           for i in range(300)]
    uids = [r.fcall("wspush_publish", 1, "wspush:user:t", b"m%d" % i)
            for i in range(300)]
    for key, got, size in (("wspush:channel:t", ids, 10),
                           ("wspush:user:t", uids, 20)):
        n = r.xlen(key)
        # Approximate trimming keeps at least size and trims whole
        # macro nodes (100 entries by default), so it keeps < 300.
        assert size <= n < 300, n
        st = entries(r, key)
        # What is kept is exactly the newest n, in order.
        assert [i for i, _ in st] == got[-n:]
        assert st[-1][1] == {b"data": b"m299"}
        info = r.xinfo_stream(key)
        assert info["entries-added"] == 300
        # Trimming does not move max-deleted-entry-id: only the first id
        # tells how far back the history reaches.
        assert info["max-deleted-entry-id"] == b"0-0"


def test_envelope_payload_is_unwrapped(r):
    key = "wspush:user:42"
    s = Sub(r, key)
    inner = MAGIC + msgpack.packb({"v": 1, "data": b"[1]", "from": "ops",
                                   "json": True}, use_bin_type=True)
    i1 = r.fcall("wspush_publish", 1, key, inner)
    i2 = r.fcall("wspush_publish", 1, key, inner, "override")
    # A str data (what Lua's own cmsgpack or a lenient client writes) is
    # taken too; the published envelope has it as bin.
    i3 = r.fcall("wspush_publish", 1, key, MAGIC + msgpack.packb(
        {"v": 1, "data": "text"}, use_bin_type=True))
    # Its own id/ts are replaced by the stream's; unknown keys ignored.
    i4 = r.fcall("wspush_publish", 1, key, MAGIC + msgpack.packb(
        {"v": 1, "data": b"y", "id": "old", "ts": 1700000000000, "zz": "k",
         "from": None}, use_bin_type=True))
    a, b, c, d = [decode_env(m) for m in s.get(4)]
    s.close()
    assert d == {"v": 1, "data": b"y", "id": i4.decode(), "ts": sid(i4)[0]}
    assert a == {"v": 1, "data": b"[1]", "from": "ops", "json": True,
                 "id": i1.decode(), "ts": sid(i1)[0]}
    assert b["from"] == "override" and b["id"] == i2.decode()
    assert c["data"] == b"text" and "from" not in c and "json" not in c
    assert c["id"] == i3.decode()


@pytest.mark.parametrize("key", [
    "wspush:inbound", "wspush:events", "wspush:node:a", "wspush:presence:a",
    "wspush:_hb:a", "wspush:user:", "wspush:channel:", "wspush:channel:a b",
    "wspush:channel:a*", "wspush:user:" + "x" * 257, "nocolon", ":user:1",
    "wspush:alll"])
def test_publish_refuses_keys_that_are_not_addresses(r, key):
    with pytest.raises(redislib.ResponseError, match="not a wspush address"):
        r.fcall("wspush_publish", 1, key, b"x")
    assert not r.exists(key)


def test_publish_refuses_bad_arguments(r):
    with pytest.raises(redislib.ResponseError, match="usage"):
        r.fcall("wspush_publish", 1, "wspush:all")
    with pytest.raises(redislib.ResponseError, match="malformed"):
        r.fcall("wspush_publish", 1, "wspush:all", MAGIC + b"\xff")
    with pytest.raises(redislib.ResponseError, match="malformed"):
        r.fcall("wspush_publish", 1, "wspush:all",
                MAGIC + msgpack.packb({"v": 2, "data": b"x"}))
    good = msgpack.packb({"v": 1, "data": b"x"}, use_bin_type=True)
    for bad in (good[:-1], good + b"\x00", b"", b"\x90",
                msgpack.packb({"v": 1}, use_bin_type=True),
                msgpack.packb({"v": 1, "data": 5}, use_bin_type=True),
                msgpack.packb({"v": 1, "data": b"x", "from": 5},
                              use_bin_type=True),
                msgpack.packb({"v": 1, "data": b"x", "z": [1]},
                              use_bin_type=True),
                b"\x83\xa1v\x01\xa4data\xc4\x01x\xa1v\x01"):
        with pytest.raises(redislib.ResponseError, match="malformed"):
            r.fcall("wspush_publish", 1, "wspush:all", MAGIC + bad)
    with pytest.raises(redislib.ResponseError, match="256"):
        r.fcall("wspush_publish", 1, "wspush:all", b"x", "f" * 257)
    assert not r.exists("wspush:all")


def test_range_facts(h):
    srv = wsp.RedisServer(h).start()
    r = srv.client()
    r.function_load(library(size=10), replace=True)
    key = "wspush:channel:r"
    assert r.fcall_ro("wspush_range", 1, key, "0", 5) == [0, b"", 0, 0, []]
    ids = [r.fcall("wspush_publish", 1, key, b"m%d" % i, "u" if i % 2 else "")
           for i in range(5)]
    ex, first, length, added, ents = r.fcall_ro("wspush_range", 1, key,
                                                ids[1], 100)
    assert (ex, first, length, added) == (1, ids[0], 5, 5)
    assert [e[0] for e in ents] == ids[2:]
    assert ents[0][1] == [b"data", b"m2"]
    assert ents[1][1] == [b"data", b"m3", b"from", b"u"]
    # "0": from the first entry, bounded by count.
    assert [e[0] for e in r.fcall_ro("wspush_range", 1, key, "0", 2)[4]] \
        == ids[:2]
    # "": the newest count entries, oldest first (the history op).
    assert [e[0] for e in r.fcall_ro("wspush_range", 1, key, "", 3)[4]] \
        == ids[2:]
    # An id with only the time part, and one newer than everything.
    t = sid(ids[-1])[0]
    assert r.fcall_ro("wspush_range", 1, key, str(t + 1), 5)[4] == []
    for bad in ("x", "1-", "-1", "1-2-3", " 1"):
        with pytest.raises(redislib.ResponseError, match="stream id"):
            r.fcall_ro("wspush_range", 1, key, bad, 5)
    for bad in ("0", "-1", "1.5", "x"):
        with pytest.raises(redislib.ResponseError, match="usage"):
            r.fcall_ro("wspush_range", 1, key, "0", bad)


def test_range_is_read_only(r):
    # no-writes: callable with FCALL_RO (and so on replicas).
    r.fcall("wspush_publish", 1, "wspush:all", b"x")
    assert r.fcall_ro("wspush_range", 1, "wspush:all", "0", 1)[0] == 1
    with pytest.raises(redislib.ResponseError):
        r.fcall_ro("wspush_publish", 1, "wspush:all", b"x")


def test_the_library_loads_as_shipped(h):
    srv = wsp.RedisServer(h).start()
    r = srv.client()
    assert r.function_load(open(LUA).read(), replace=True) == b"wspush"
    assert r.fcall_ro("wspush_config", 0) == [1, 1000, 300, 1000, 86400, 0]
    # FLUSHALL keeps functions; FUNCTION FLUSH drops them.
    r.flushall()
    assert r.fcall_ro("wspush_config", 0)[0] == 1
    r.function_flush()
    with pytest.raises(redislib.ResponseError, match="not found"):
        r.fcall_ro("wspush_config", 0)
