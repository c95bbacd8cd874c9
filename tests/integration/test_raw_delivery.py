"""delivery = raw: each payload is sent exactly as published, a text frame
when it is UTF-8 and a binary frame otherwise; control replies stay JSON."""

import wsp

PAYLOADS = [
    b'{"a":1}',
    b"42",
    b"plain text",
    "\u00e9t\u00e9 \u2713".encode(),
    b"\xff\x00\xfe",
    b"caf\xc3",
]


def test_raw_delivery_sends_payloads_as_published(h):
    c = wsp.Cluster(h, nodes=1, workers=1,
                    conf={"gateway": {"delivery": "raw"}})
    u = wsp.uid("raw")
    client = c.a.connect(u)
    assert client.welcome["op"] == "welcome"

    for p in PAYLOADS:
        c.publish(f"user:{u}", p)
    (frames,) = c.fence([client])

    assert len(frames) == len(PAYLOADS), frames
    for p, f in zip(PAYLOADS, frames):
        try:
            text = p.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        if text is not None:
            assert f == text, f"{p!r} should arrive as the text frame {text!r}"
        else:
            assert f == p, f"{p!r} should arrive as a binary frame"

    assert client.request({"op": "ping", "ref": 3}) == \
        {"op": "pong", "ref": 3}
