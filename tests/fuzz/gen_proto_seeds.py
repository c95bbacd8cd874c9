#!/usr/bin/python3
"""Writes the seed corpora of fuzz_bus, fuzz_up, fuzz_wspenv and
fuzz_payload (tests/fuzz/corpus/<name>/) from valid and near-valid inputs
built per proto/PROTOCOL.md. Run with Debian's python3 (python3-msgpack).
"""
import hashlib
import os
import sys

import msgpack

HERE = os.path.dirname(os.path.abspath(__file__))


def p(*objs):
    return b"".join(msgpack.packb(o, use_bin_type=True) for o in objs)


def write(name, seeds):
    d = os.path.join(HERE, "corpus", name)
    os.makedirs(d, exist_ok=True)
    for s in seeds:
        h = hashlib.sha1(s).hexdigest()
        with open(os.path.join(d, "seed-" + h), "wb") as f:
            f.write(s)


MSG = [1, 1, 0xFFFFFFFFFFFFFFFF, 1, "user:42", 0, b'{"a":1}', "alice", "m-1",
       1700000000000]
MSG2 = [1, 1, 7, 2, "channel:news", 2, b"\x00\xff", None, None, 0]
HB = [1, 2, 7, 2, "node-a", True]
ACK = [1, 3, 7, 3, 17, 99, 0, "node-a"]

ENTRY = ["1733212345678-0", 0, b'{"a":1}', "u7", 1733212345678]
RANGE = [1, 4, 7, 3, 17, 5, 0, 0, False, True, "user:42",
         [ENTRY, ["1733212345678-1", 2, b"\xff", None, 0],
          ["1733212345679", 1, "str", "", None]]]
RANGE_LAST = [1, 4, 7, 3, 17, 5, 2, 1, True, False, "channel:news", []]

bus = [p(MSG), p(MSG2), p(HB), p(ACK), p(MSG, HB, ACK, MSG2),
       p(RANGE), p(RANGE_LAST), p(MSG, RANGE, ACK, RANGE_LAST),
       p(RANGE[:11] + [[ENTRY + ["extra"]], "trailing"]),
       p(RANGE[:11] + [[["m-1", 0, b"x", None, 0]]]),   # id not a stream id
       p(RANGE)[:-4],
       p(MSG + [{"new": [1.5, None]}, -3]),      # trailing fields
       p([2, 1, "future"], HB),                   # unknown version
       p([1, 9, "x"], ACK),                       # unknown kind
       p(MSG)[:-3], b"", b"\xc1", b"\xdd\xff\xff\xff\xff",
       p([1, 1, 1, 1, "user:1", 0, "str data", None, None, None])]

W = [3, 17, 4242]
ADD = [1, 1] + W + [77, "channel:news"]
DEL = [1, 2] + W + ["user:1"]
SYNC = [1, 3] + W + [5, ["user:1", "channel:news", "all"], {"1": 2, "u2": 1}]
PUB = [1, 4] + W + ["channel:x", "bob", b"[1,2]", None]
SEND = [1, 5] + W + ["bob", "n.1.2.3", b'"hi"']
EVT = [1, 6] + W + ["disconnect", "bob", "n.1.2.3", "slow"]
CNT = [1, 7] + W + [{"sent": 10, "dropped_slow": 2**64 - 1}]
BYE = [1, 8] + W
RREQ = [1, 9] + W + [11, "channel:news", "1733212345678-0", 1000]
RREQ2 = [1, 9] + W + [12, "user:42", None, 50]

up = [p(x) for x in (ADD, DEL, SYNC, PUB, SEND, EVT, CNT, BYE, RREQ, RREQ2)]
up += [p(RREQ, BYE, RREQ2), p(RREQ + ["later"]), p(RREQ[:-1]),
       p([1, 9] + W + [13, "all", "0", 2**32])]
up += [p(ADD, DEL, SYNC, PUB, SEND, EVT, CNT, BYE),
       p([1, 3] + W + [0, [], {}]),
       p(EVT + [{"later": True}]),
       p([3, 1, 2], BYE), p([1, 0] + W, BYE),
       p(SYNC)[:-5], p([1, 7] + W + [{"a": -1}])]

MAGIC = b"\xc1WSP"
wsp = [MAGIC + p({"v": 1, "data": b"hello"}),
       MAGIC + p({"v": 1, "data": b'{"x":1}', "from": "alice", "id": "m-7",
                  "ts": 1700000000123, "json": True}),
       MAGIC + p({"data": "str", "v": 1, "extra": [1, 2], 7: None}),
       MAGIC + p({"v": 2, "data": b""}),
       MAGIC + p({"v": 1, "data": b"x"}) + b"\x00",
       MAGIC + p({"v": 1, "data": b"x", "ts": None, "from": None}),
       MAGIC, b"plain"]
# Exactly what the Redis function library (bridge/wspush.lua) publishes:
# data bin (str8/bin16 headers), id, ts as uint 64, from, json.
wsp += [MAGIC + b"\x86\xa1v\x01\xa4data\xc4\x07{\"n\":1}\xa2id"
        b"\xaf1796292394702-0\xa2ts\xcf\x00\x00\x01\xa2;^\xbe\xce"
        b"\xa4from\xa2u7\xa4json\xc3",
        MAGIC + b"\x84\xa1v\x01\xa4data\xc5\x01\x2c" + b"\xff" * 300
        + b"\xa2id\xaf1796292394702-1\xa2ts\xcf\x00\x00\x01\xa2;^\xbe"
        b"\xce",
        # what Lua's own cmsgpack would write: data as a str
        MAGIC + b"\x83\xa1v\x01\xa4data\xa5hello\xa2id\xa31-0"]

payload = [b'{"order":1001,"status":"paid"}', b" [1, 2.5e3, true, null] ",
           b'"str"', b"42", b"null", b"hello world", b"\xc3\xa9t\xc3\xa9",
           b"x\xe2\x80\xa8y", b"\x00\x01\x1f\"\\", b"\xff\xfe", b"{",
           b'{"a":"\\u0000"}', b"[12345678901234567890123]", b"",
           b"\x89PNG\r\n\x1a\n"]

if __name__ == "__main__":
    write("bus", bus)
    write("up", up)
    write("wspenv", wsp)
    write("payload", payload)
    sys.exit(0)
