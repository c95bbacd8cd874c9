"""gateway.allowed_origins (issue 6, point 2): exact origins and
"*.example.org" forms pass; any other Origin gets HTTP 403 before the
upgrade; a request without Origin (not a browser) passes."""

import socket
import urllib.parse

import wsp

CONF = {"gateway": {"allowed_origins":
                    "https://app.example.com, *.example.org"}}


def handshake_status(port, target, headers=None, timeout=5):
    """The HTTP status of an upgrade request on a raw socket (lws answers
    refusals in HTTP/1.0, which websockets 10.4 does not parse)."""
    req = (f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
           "Upgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
           "Sec-WebSocket-Version: 13\r\n")
    for k, v in (headers or {}).items():
        req += f"{k}: {v}\r\n"
    with socket.create_connection(("127.0.0.1", port),
                                  timeout=wsp.T(timeout)) as s:
        s.sendall((req + "\r\n").encode())
        buf = b""
        while b"\r\n" not in buf:
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
    parts = buf.split(b"\r\n", 1)[0].decode("latin-1").split()
    assert len(parts) >= 2 and parts[0].startswith("HTTP/"), buf[:200]
    return int(parts[1])


def test_origin_allowlist(h):
    c = wsp.Cluster(h, nodes=1, workers=1, conf=CONF)
    n = c.a
    target = "/ws?" + urllib.parse.urlencode({"user": wsp.uid("o")})
    ok = ["https://app.example.com", "HTTPS://APP.EXAMPLE.COM",
          "https://chat.example.org", "https://a.b.example.org"]
    bad = ["https://evil.example.com", "https://app.example.com.evil.net",
           "http://app.example.com", "https://example.org.evil",
           "https://notexample.org", "null"]
    for o in ok:
        assert handshake_status(n.port, target, {"Origin": o}) == 101, o
    for o in bad:
        assert handshake_status(n.port, target, {"Origin": o}) == 403, o
    assert handshake_status(n.port, target) == 101
    # Still serving, and welcomes as usual.
    cl = n.connect(wsp.uid("after"))
    assert cl.welcome["op"] == "welcome"
