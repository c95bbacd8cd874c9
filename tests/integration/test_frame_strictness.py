"""RFC 6455 strictness after the upgrade, and no message held for ever:

- a client close with an invalid code (5000, 1005, 999) is answered with
  close 1002 (not echoed), one whose reason is not UTF-8 with 1007 (not a
  TCP drop), a good one is echoed; counted as closed_protocol;
- a text message that is not UTF-8, whole or fragmented, closes with 1007;
- a message left unfinished (65,000 bytes of a fragmented message, then
  only pongs) is closed with 1008 once idle_timeout_s has passed since it
  began, and counted as closed_msg_timeout;
- an unmasked client frame should close with 1002, but lws 4.1.6 does not
  tell its callbacks whether a frame was masked (gateway/NOTES.md): that
  test is an expected failure until lws does.
Raw sockets, so the client can break the rules.
"""

import os
import socket
import struct
import time

import pytest

import wsp

IDLE_S = 3


class Raw:
    """A hand-made WebSocket client that answers pings only when told."""

    def __init__(self, port, user):
        self.s = socket.create_connection(("127.0.0.1", port),
                                          timeout=wsp.T(5))
        self.buf = b""
        self.s.sendall((f"GET /ws?user={user} HTTP/1.1\r\nHost: x\r\n"
                        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                        "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        while b"\r\n\r\n" not in self.buf:
            assert self._recv(), "no handshake answer"
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        assert head.split(b" ", 2)[1] == b"101", head
        op, welcome = self.frame()
        assert op == 1 and b"welcome" in welcome, welcome

    def _recv(self):
        try:
            d = self.s.recv(65536)
        except (ConnectionResetError, socket.timeout):
            d = b""
        self.buf += d
        return d

    def _need(self, n):
        while len(self.buf) < n:
            if not self._recv():
                return None
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def send(self, op, payload, fin=True, mask=True):
        b0 = (0x80 if fin else 0) | op
        m = 0x80 if mask else 0
        n = len(payload)
        if n < 126:
            hdr = struct.pack("!BB", b0, m | n)
        elif n < 65536:
            hdr = struct.pack("!BBH", b0, m | 126, n)
        else:
            hdr = struct.pack("!BBQ", b0, m | 127, n)
        if mask:
            key = os.urandom(4)
            payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
            hdr += key
        self.s.sendall(hdr + payload)

    def frame(self):
        """(opcode, payload), or None at EOF."""
        h = self._need(2)
        if h is None:
            return None
        n = h[1] & 0x7F
        if n == 126:
            n = struct.unpack("!H", self._need(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self._need(8))[0]
        p = self._need(n)
        return None if p is None else (h[0] & 0x0F, p)

    def close_code(self, pong=False, deadline_s=10):
        """The code of the server's close frame (answering pings with
        pongs if pong); None if the connection ended without one."""
        end = time.monotonic() + wsp.T(deadline_s)
        while time.monotonic() < end:
            f = self.frame()
            if f is None:
                return None
            if f[0] == 9 and pong:
                self.send(10, f[1])
            elif f[0] == 8:
                return struct.unpack("!H", f[1][:2])[0] if len(f[1]) >= 2 \
                    else 1005
        raise AssertionError("no close within the deadline")

    def close(self):
        self.s.close()


@pytest.fixture
def node(h):
    return wsp.Cluster(h, nodes=1, workers=1, conf={"gateway": {
        "idle_timeout_s": IDLE_S, "ping_interval_s": 1}}).a


def closed_with(node, code_payload, tag):
    c = Raw(node.port, wsp.uid(tag))
    c.send(8, code_payload)
    try:
        return c.close_code()
    finally:
        c.close()


def test_client_close_frames_are_checked(node):
    assert closed_with(node, struct.pack("!H", 5000), "c5000") == 1002
    assert closed_with(node, struct.pack("!H", 1005), "c1005") == 1002
    assert closed_with(node, struct.pack("!H", 999), "c999") == 1002
    assert closed_with(node, b"\x03", "c1byte") == 1002
    assert closed_with(node, struct.pack("!H", 1000) + b"\xff\xfe",
                       "cutf8") == 1007
    assert closed_with(node, struct.pack("!H", 4000) + b"ok \xc3\xbc",
                       "c4000") == 4000
    assert closed_with(node, struct.pack("!H", 1000), "c1000") == 1000
    # 5000, the 1-byte payload and the bad reason; lws itself rewrites
    # 1005 and 999 to 1002 before the gateway sees them.
    wsp.wait_until(lambda: wsp.worker_total(
        node.stats(), "closed_protocol") >= 3, 10,
        "bad close frames counted as closed_protocol")


def test_text_that_is_not_utf8_closes_with_1007(node):
    c = Raw(node.port, wsp.uid("utf8"))
    c.send(1, b'{"op":"ping","ref":"\xc3"}')
    assert c.close_code() == 1007
    c.close()
    # Split across fragments: each piece is bad alone, the whole is fine.
    c = Raw(node.port, wsp.uid("utf8frag"))
    c.send(1, b'{"op":"ping","ref":"\xc3', fin=False)
    c.send(0, b'\xbc"}')
    op, pong = c.frame()
    assert op == 1 and b'"pong"' in pong, pong
    c.send(1, b"x" * 300 + b"\xc3", fin=False)
    c.send(0, b"(")
    assert c.close_code() == 1007
    c.close()


def test_an_unfinished_message_is_closed_after_idle_timeout(node):
    c = Raw(node.port, wsp.uid("frag"))
    t0 = time.monotonic()
    c.send(1, b"[" + b"1," * 32499, fin=False)  # 64,999 bytes, no end
    # The client stays alive: it answers every ping. Its message must not.
    assert c.close_code(pong=True, deadline_s=IDLE_S + 10) == 1008
    took = time.monotonic() - t0
    assert IDLE_S - 0.5 <= took <= wsp.T(IDLE_S + 3), took
    c.close()
    # A fragmented message that does finish in time is served.
    d = Raw(node.port, wsp.uid("frag-ok"))
    d.send(1, b'{"op":"ping",', fin=False)
    d.send(0, b'"ref":7}')
    op, pong = d.frame()
    assert op == 1 and b'"ref":7' in pong, pong
    wsp.wait_until(lambda: wsp.worker_total(
        node.stats(), "closed_msg_timeout") == 1, 10,
        "the unfinished message counted as closed_msg_timeout")
    d.close()


@pytest.mark.xfail(strict=True, reason="lws 4.1.6 does not expose the "
                   "mask bit of a received frame (gateway/NOTES.md)")
def test_an_unmasked_frame_closes_with_1002(node):
    c = Raw(node.port, wsp.uid("unmasked"))
    c.send(1, b'{"op":"ping","ref":1}', mask=False)
    f = c.frame()
    c.close()
    assert f is not None and f[0] == 8, f
    assert struct.unpack("!H", f[1][:2])[0] == 1002
