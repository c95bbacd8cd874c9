"""The upgrade request is checked strictly and every refusal gets an HTTP
status, is counted by reason, and is logged at most about once a second:

- `?user=` (auth.mode = none) is percent-decoded whole, then checked by the
  address rules: an escaped CR/LF/NUL or an invalid id is 400 (not a
  silently truncated user, not a dropped connection); no `?user=` is 401;
- an invalid or missing Sec-WebSocket-Key is 400 (not 101);
- an HTTP/1.0 upgrade is 400 (not 101), so is an Upgrade without
  `Connection: Upgrade` (not a dropped connection);
- a 20 KB URI is 414, a 100 KB header block or 5,000 headers are 431
  (not a dropped connection, and lws never logs "Ran out of header data
  space");
- a head sent in more pieces than any client would (one byte per segment)
  is 408, counted as hs_rejected_slow;
- refusals count in hs_rejected_malformed / hs_rejected_too_large.
Each request is made by a raw client (wsp.RawWs); the gateway must keep
serving.
"""

import glob
import os
import socket
import time

import pytest

import wsp

KEY = "dGhlIHNhbXBsZSBub25jZQ=="


@pytest.fixture
def node(h):
    return wsp.Cluster(h, nodes=1, workers=1).a


def request(target="/ws?user=ok", version="1.1", key=KEY, extra=""):
    head = (f"GET {target} HTTP/{version}\r\nHost: 127.0.0.1\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n")
    if key is not None:
        head += f"Sec-WebSocket-Key: {key}\r\n"
    return (head + "Sec-WebSocket-Version: 13\r\n" + extra + "\r\n").encode(
        "latin-1")


def status_of(port, raw, timeout=5):
    """The status the gateway answers raw bytes with; None if it closed
    the connection without one."""
    with wsp.RawWs(port, request=raw, expect=None, timeout=timeout) as c:
        return c.status


def welcome_user(node, target):
    """Upgrades with target and returns the user the welcome names."""
    c = wsp.connect(f"ws://127.0.0.1:{node.port}{target}", "strict")
    try:
        return c.welcome["user"]
    finally:
        c.close()


def gateway_log(node):
    text = ""
    for p in glob.glob(os.path.join(node.gateway.h.dir, "gateway-a*")):
        with open(p, errors="replace") as f:
            text += f.read()
    return text


def test_user_ids_are_decoded_whole_then_validated(node):
    p = node.port
    for bad in ("a%0d%0ab", "a%0ab", "a%00b", "a%0d", "a%20b", "a%2Ab",
                "a%zz", "a" * 257, "%C3%28"):
        assert status_of(p, request(f"/ws?user={bad}")) == 400, bad
    assert status_of(p, request("/ws")) == 401
    assert status_of(p, request("/ws?usr=a")) == 401
    # Escapes of valid characters decode to exactly that id.
    assert welcome_user(node, "/ws?user=a%2Bb%3Ac") == "a+b:c"
    assert welcome_user(node, "/ws?x=1&user=J%C3%BCrgen") == "J\u00fcrgen"
    assert welcome_user(node, "/ws?user=" + "b" * 256) == "b" * 256
    wsp.wait_until(lambda: wsp.worker_total(
        node.stats(), "hs_rejected_malformed") >= 9, 10,
        "invalid ids counted as hs_rejected_malformed")


def test_keys_versions_and_sizes_get_a_status(node):
    p = node.port
    assert status_of(p, request(key="abc")) == 400
    assert status_of(p, request(key="dGhlIHNhbXBsZSBub25jZQ")) == 400
    assert status_of(p, request(key="dGhlIHNhbXBsZSBub25jZR==")) == 400
    assert status_of(p, request(key=None)) == 400
    assert status_of(p, request(version="1.0")) == 400
    # Without Connection: Upgrade lws dropped the connection, no status.
    assert status_of(p, request().replace(b"Connection: Upgrade\r\n",
                                          b"")) == 400
    assert status_of(p, request("/ws?user=ok&pad=" + "x" * 20000)) == 414
    assert status_of(p, request(extra="X-Big: " + "y" * 100000 + "\r\n")) \
        == 431
    assert status_of(p, request(extra="X-A: 1\r\n" * 5000)) == 431
    assert status_of(p, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03") \
        == 400
    # The largest head the gate lets through fits lws' header table: a
    # 10 KiB target and 60 more header lines, near 12 KiB in all.
    target = "/ws?user=big&pad="
    target += "p" * (10240 - len(target))
    big = request(target, extra="".join(f"X-Custom-{i}: {'v' * 12}\r\n"
                                        for i in range(57)))
    assert 11000 < len(big) <= 12288, len(big)
    assert status_of(p, big) == 101
    # Known headers repeated take one lws fragment slot each: the gate's
    # line limit keeps them within lws' 95 slots, with 16 arguments.
    target = "/ws?user=many" + "".join(f"&a{i}=1" for i in range(15))
    many = request(target, extra="Cookie: c=1\r\n" * 58)
    assert status_of(p, many) == 101
    # Still serving, and a plain GET of /healthz still works over 1.0.
    assert welcome_user(node, "/ws?user=fine") == "fine"
    assert status_of(p, b"GET /healthz HTTP/1.0\r\n\r\n") == 200
    wsp.wait_until(lambda: wsp.worker_total(
        node.stats(), "hs_rejected_too_large") >= 3, 10,
        "oversized requests counted as hs_rejected_too_large")
    st = node.stats()
    assert wsp.worker_total(st, "hs_rejected_malformed") >= 7
    assert "Ran out of header data space" not in gateway_log(node)


def test_a_flood_of_refusals_is_not_a_flood_of_log_lines(node):
    # Refused by lws' upgrade callback (404) and by the request check
    # before it (400): each kind of refusal is rate-limited.
    n = 150
    for i in range(n):
        assert status_of(node.port, request("/nope?user=ok")) == 404
        assert status_of(node.port, b"GET /ws HTTP/1.1\nHost: x\n\n") \
            == 400
    wsp.wait_until(lambda: wsp.worker_total(
        node.stats(), "hs_rejected_path") >= n and wsp.worker_total(
        node.stats(), "hs_rejected_malformed") >= n, 10,
        f"{2 * n} refusals counted")
    lines = [ln for ln in gateway_log(node).splitlines()
             if "handshake rejected" in ln or "handshake refused" in ln]
    # About one line a second per kind, however fast they come.
    assert len(lines) < n / 5, len(lines)


def send_in_pieces(port, raw, pieces, pause=0.005):
    """Sends raw in that many pieces (separate segments: TCP_NODELAY and a
    pause between them); returns the status, None if none."""
    with wsp.RawWs.connect(port) as c:
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        step = -(-len(raw) // pieces)
        for i in range(0, len(raw), step):
            if not c.send_raw(raw[i:i + step]):
                break  # refused before the end: the status tells
            time.sleep(pause)
        return c.read_status()


def test_a_head_in_too_many_pieces_is_refused(node):
    raw = request()
    assert send_in_pieces(node.port, raw, 8) == 101
    assert send_in_pieces(node.port, raw, len(raw)) == 408
    wsp.wait_until(lambda: wsp.worker_total(
        node.stats(), "hs_rejected_slow") >= 1, 10,
        "the head in pieces counted as hs_rejected_slow")
