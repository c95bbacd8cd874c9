"""The bridge classifies each payload once: a JSON object or array is
embedded as `data`, any other UTF-8 payload becomes a JSON string, and a
payload that is not UTF-8 arrives base64-encoded as `data_b64`."""

import base64

import wsp

TEXT = [
    (b'{"k":[1,2,{"z":null}],"s":"\xc3\xa9"}',
     {"k": [1, 2, {"z": None}], "s": "\u00e9"}),
    (b'[1,"two",{"three":3}]', [1, "two", {"three": 3}]),
    (b" { \"spaced\" : true } ", {"spaced": True}),
    (b"42", "42"),
    (b"true", "true"),
    (b'"quoted"', '"quoted"'),
    (b"hello world", "hello world"),
    (b'{"broken": ', '{"broken": '),
    ("h\u00e9llo \u2713 \U0001F600".encode(), "h\u00e9llo \u2713 \U0001F600"),
    (b"", ""),
]
BINARY = [
    b"\xff\xfe\x00\x01",
    b"caf\xc3",          # truncated UTF-8 sequence
    b"\xc0\xaf",         # overlong encoding of '/'
    b"\xed\xa0\x80",     # UTF-16 surrogate
    bytes(range(256)),
]


def test_payloads_are_classified(cluster):
    u = wsp.uid("cls")
    c = cluster.b.connect(u)
    for payload, _ in TEXT:
        cluster.publish(f"user:{u}", payload)
    for payload in BINARY:
        cluster.publish(f"user:{u}", payload)
    (frames,) = cluster.fence([c])

    assert len(frames) == len(TEXT) + len(BINARY), frames
    for (payload, want), f in zip(TEXT, frames):
        assert f.get("op") == "msg" and f.get("to") == f"user:{u}", f
        assert "data_b64" not in f, (payload, f)
        assert "data" in f and f["data"] == want, (payload, f)
    for payload, f in zip(BINARY, frames[len(TEXT):]):
        assert f.get("op") == "msg" and "data" not in f, (payload, f)
        assert base64.b64decode(f["data_b64"], validate=True) == payload, \
            (payload, f)
