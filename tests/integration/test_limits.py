"""Limits (issue 6, point 3): max_message_bytes closes with 1009 (single
frames and fragments accumulated) without touching other connections;
max_connections per worker answers 503 at the handshake; the inbound rate
limit replies rate_limited, then closes 1008 on persistent abuse; 5,000-byte
URLs and headers get an answer, not a crash."""

import socket
import time
import urllib.parse

import wsp


def handshake_status(port, target, headers=None, timeout=5):
    """The HTTP status of an upgrade request on a raw socket, or None if the
    gateway closed without a status line (lws answers refusals in HTTP/1.0,
    which websockets 10.4 does not parse)."""
    req = (f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
           "Upgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
           "Sec-WebSocket-Version: 13\r\n")
    for k, v in (headers or {}).items():
        req += f"{k}: {v}\r\n"
    with socket.create_connection(("127.0.0.1", port),
                                  timeout=wsp.T(timeout)) as s:
        try:
            s.sendall((req + "\r\n").encode())
        except OSError:
            pass
        buf = b""
        try:
            while b"\r\n" not in buf:
                chunk = s.recv(4096)
                if not chunk:
                    break
                buf += chunk
        except ConnectionResetError:
            pass
    parts = buf.split(b"\r\n", 1)[0].decode("latin-1").split()
    if len(parts) < 2 or not parts[0].startswith("HTTP/"):
        return None
    return int(parts[1])


def target(user):
    return "/ws?" + urllib.parse.urlencode({"user": user})


def test_max_message_bytes_single_and_fragmented(h):
    c = wsp.Cluster(h, nodes=1, workers=1,
                    conf={"gateway": {"max_message_bytes": 1024,
                                      "max_queued_bytes": 65536}})
    n = c.a
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
    c = wsp.Cluster(h, nodes=1, workers=1,
                    conf={"gateway": {"max_connections": 2}})
    n = c.a
    # The harness' readiness probe is gone once start() returned.
    wsp.wait_until(lambda: handshake_status(n.port, target("p")) == 101, 5,
                   "a free connection slot")
    a = n.connect(wsp.uid("c1"))
    b = n.connect(wsp.uid("c2"))
    assert handshake_status(n.port, target(wsp.uid("c3"))) == 503
    b.close()
    wsp.wait_until(lambda: handshake_status(n.port, target("c4")) == 101,
                   5, "a slot freed by a close")
    assert a.request({"op": "ping", "ref": 1}) == {"op": "pong", "ref": 1}


def test_rate_limit_then_1008(h):
    c = wsp.Cluster(h, nodes=1, workers=1,
                    conf={"gateway": {"rate_limit_per_s": 2,
                                      "rate_burst": 4}})
    n = c.a
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
    c = wsp.Cluster(h, nodes=1, workers=1)
    n = c.a
    for tgt, hdrs in ((target("u") + "&pad=" + "a" * 5000, None),
                      (target("u"), {"X-Pad": "b" * 5000}),
                      (target("u"), {"Cookie": "c=" + "d" * 5000}),
                      (target("u") + "&pad=" + "a" * 20000, None),
                      (target("u"), {"X-Pad": "b" * 20000})):
        st = handshake_status(n.port, tgt, hdrs)
        assert st in (None, 101, 400, 414, 431, 401), st
    for p in ("/" + "p" * 5000, "/healthz?" + "q" * 5000):
        st, _ = wsp.http_get(n.port, p)
        assert st in (0, 200, 400, 404, 414, 431, 503), (p[:20], st)
    cl = n.connect(wsp.uid("after"))
    assert cl.request({"op": "ping", "ref": 1}) == {"op": "pong", "ref": 1}
    wsp.wait_until(lambda: n.healthz() == 200, 5, "gateway /healthz 200")


def test_handshake_timeout(h):
    c = wsp.Cluster(h, nodes=1, workers=1,
                    conf={"gateway": {"handshake_timeout_s": 1}})
    n = c.a
    t0 = time.monotonic()
    with socket.create_connection(("127.0.0.1", n.port),
                                  timeout=wsp.T(6)) as s:
        s.sendall(b"GET /ws?user=slow HTTP/1.1\r\nHost: x\r\n")
        try:
            while s.recv(4096):
                pass
        except ConnectionResetError:
            pass
    assert time.monotonic() - t0 < wsp.T(5), "not cut by the timeout"
    cl = n.connect(wsp.uid("after"))
    assert cl.request({"op": "ping", "ref": 1}) == {"op": "pong", "ref": 1}
