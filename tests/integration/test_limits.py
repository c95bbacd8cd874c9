"""Limits: max_message_bytes closes with 1009 (single
frames and fragments accumulated) without touching other connections;
max_connections per worker answers 503 at the handshake; the inbound rate
limit replies rate_limited, then closes 1008 on persistent abuse; 5,000-byte
URLs and headers are served (101 and a welcome; 404/200 for plain HTTP),
20,000-byte ones are never upgraded, and the gateway keeps serving."""

import time
import urllib.parse

import wsp


def target(user):
    return "/ws?" + urllib.parse.urlencode({"user": user})


def one_worker(h, **gateway):
    """The node of a one-node, one-worker cluster with these [gateway]
    settings."""
    return wsp.Cluster(h, nodes=1, workers=1,
                       conf={"gateway": gateway} if gateway else None).a


def test_max_message_bytes_single_and_fragmented(h):
    n = one_worker(h, max_message_bytes=1024, max_queued_bytes=65536)
    other = n.connect(wsp.uid("bystander"))
    big = n.connect(wsp.uid("big"))
    big.send('{"op":"ping","pad":"' + "x" * 2000 + '"}')
    assert big.wait_closed() == 1009
    # Fragments: each under the limit, the message over it.
    frag = n.connect(wsp.uid("frag"))
    frag.send(iter(["x" * 600, "y" * 600]))
    assert frag.wait_closed() == 1009
    # Just under the limit is fine, fragmented or not.
    ok = n.connect(wsp.uid("ok"))
    msg = '{"op":"ping","ref":1,"pad":"' + "z" * 900 + '"}'
    ok.send(iter([msg[:500], msg[500:]]))
    assert wsp.norm(ok.recv_json()) == {"op": "pong", "ref": 1}
    assert other.request({"op": "ping", "ref": 2}) == {"op": "pong", "ref": 2}


def test_max_connections_per_worker(h):
    n = one_worker(h, max_connections=2)
    # The harness' readiness probe is gone once start() returned.
    wsp.wait_until(lambda: wsp.handshake_status(n.port, target("p")) == 101, 5,
                   "a free connection slot")
    a = n.connect(wsp.uid("c1"))
    b = n.connect(wsp.uid("c2"))
    assert wsp.handshake_status(n.port, target(wsp.uid("c3"))) == 503
    b.close()
    wsp.wait_until(lambda: wsp.handshake_status(n.port, target("c4")) == 101,
                   5, "a slot freed by a close")
    assert a.request({"op": "ping", "ref": 1}) == {"op": "pong", "ref": 1}


def test_rate_limit_then_1008(h):
    n = one_worker(h, rate_limit_per_s=2, rate_burst=4)
    other = n.connect(wsp.uid("calm"))
    x = n.connect(wsp.uid("abuser"))
    for i in range(8):
        x.send_json({"op": "ping", "ref": i})
    frames = x.collect(count=8, timeout=5)
    codes = [f.get("code") for f in frames if f.get("op") == "error"]
    assert "rate_limited" in codes, frames
    assert frames[0] == {"op": "pong", "ref": 0}
    # Persistent abuse: 3 x burst rejections within the window.
    for i in range(40):
        if not x.is_open():
            break
        try:
            x.send_json({"op": "ping", "ref": 100 + i})
        except Exception:
            break
    assert x.wait_closed() == 1008
    assert other.request({"op": "ping", "ref": 1}) == {"op": "pong", "ref": 1}


def test_huge_url_and_header(h):
    n = one_worker(h)
    # Within the 16 KiB of header space a worker has: upgraded and served.
    for what, tgt, hdrs in (
            ("5 KB URL", target("u1") + "&pad=" + "a" * 5000, None),
            ("5 KB header", target("u2"), {"X-Pad": "b" * 5000}),
            ("5 KB cookie", target("u3"), {"Cookie": "c=" + "d" * 5000})):
        with wsp.RawWs(n.port, tgt, hdrs, expect=None) as ws:
            assert ws.status == 101, (what, ws.head[:200])
            assert ws.recv_json()["op"] == "welcome", what
    # Over it: never upgraded (the status itself is another test's).
    for what, tgt, hdrs in (
            ("20 KB URL", target("u") + "&pad=" + "a" * 20000, None),
            ("20 KB header", target("u"), {"X-Pad": "b" * 20000})):
        st = wsp.handshake_status(n.port, tgt, hdrs)
        assert st != 101, what
    # Plain HTTP with a 5 KB target: answered as any other.
    assert wsp.http_get(n.port, "/" + "p" * 5000)[0] == 404
    assert wsp.http_get(n.port, "/healthz?" + "q" * 5000) == (200, b"ok\n")
    cl = n.connect(wsp.uid("after"))
    assert cl.request({"op": "ping", "ref": 1}) == {"op": "pong", "ref": 1}
    assert n.healthz() == 200


def test_handshake_timeout(h):
    n = one_worker(h, handshake_timeout_s=1)
    with wsp.RawWs.connect(n.port) as ws:
        t0 = time.monotonic()
        ws.send_raw(b"GET /ws?user=slow HTTP/1.1\r\nHost: x\r\n")
        try:
            st = ws.read_status(timeout=5)
        except TimeoutError:
            raise AssertionError("a half-sent handshake was not cut within "
                                 f"{wsp.T(5):.0f}s") from None
        took = time.monotonic() - t0
    assert st != 101
    # Not before the timeout (lws checks it once a second).
    assert took >= 0.5, f"cut after {took:.2f}s"
    cl = n.connect(wsp.uid("after"))
    assert cl.request({"op": "ping", "ref": 1}) == {"op": "pong", "ref": 1}
