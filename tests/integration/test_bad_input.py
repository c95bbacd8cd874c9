"""Bad input from clients (issue 6, point 9), through a raw TCP socket with
hand-made handshakes and frames: malformed JSON, unknown ops and wrong
types get `error` replies and the connection stays; invalid UTF-8 closes
with 1007; protocol violations (fragmented control frame, unmasked frame,
reserved opcode, RSV bits) close with 1002 or drop the connection; garbage
before the handshake and a bad Sec-WebSocket-Version get a 4xx or a close;
after each, the gateway still serves a fresh client and the bridge lives
(the harness fails the test if a process died or wrote a sanitizer
report)."""

import json
import os
import socket
import struct
import urllib.parse

import pytest

import wsp


class RawWs:
    """A WebSocket client written by hand, so it can break the rules."""

    def __init__(self, port, user, version="13", timeout=5):
        self.s = socket.create_connection(("127.0.0.1", port),
                                          timeout=wsp.T(timeout))
        self.buf = b""
        q = urllib.parse.urlencode({"user": user})
        self.s.sendall((f"GET /ws?{q} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                        f"Sec-WebSocket-Version: {version}\r\n\r\n").encode())
        head = self._read_until(b"\r\n\r\n")
        self.status = int(head.split(b" ", 2)[1]) if head else None

    def _recv(self):
        try:
            chunk = self.s.recv(65536)
        except (ConnectionResetError, socket.timeout):
            chunk = b""
        self.buf += chunk
        return chunk

    def _read_until(self, sep):
        while sep not in self.buf:
            if not self._recv():
                return None
        head, self.buf = self.buf.split(sep, 1)
        return head

    def _need(self, n):
        while len(self.buf) < n:
            if not self._recv():
                return None
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def send_frame(self, opcode, payload, fin=True, mask=True, rsv=0):
        b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
        n = len(payload)
        if n < 126:
            hdr = struct.pack("!BB", b0, (0x80 if mask else 0) | n)
        elif n < 65536:
            hdr = struct.pack("!BBH", b0, (0x80 if mask else 0) | 126, n)
        else:
            hdr = struct.pack("!BBQ", b0, (0x80 if mask else 0) | 127, n)
        if mask:
            key = os.urandom(4)
            payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
            hdr += key
        try:
            self.s.sendall(hdr + payload)
        except OSError:
            pass

    def send_text(self, text):
        self.send_frame(1, text.encode() if isinstance(text, str) else text)

    def read_frame(self):
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

    def read_json(self):
        f = self.read_frame()
        assert f is not None and f[0] == 1, f
        return json.loads(f[1])

    def close_code(self):
        """The code of the server's close frame; None if it dropped the
        connection without one."""
        while True:
            f = self.read_frame()
            if f is None:
                return None
            if f[0] == 8:
                return struct.unpack("!H", f[1][:2])[0] if len(f[1]) >= 2 \
                    else 1005

    def close(self):
        self.s.close()


@pytest.fixture
def node(h):
    return wsp.Cluster(h, nodes=1, workers=1).a


def raw(node):
    c = RawWs(node.port, wsp.uid("raw"))
    assert c.status == 101
    assert c.read_json()["op"] == "welcome"
    return c


def still_serving(node):
    c = node.connect(wsp.uid("fresh"))
    assert c.request({"op": "ping", "ref": 1}) == {"op": "pong", "ref": 1}
    c.close()
    node.check_running()


def test_bad_messages_get_errors_and_the_connection_stays(node):
    c = raw(node)
    cases = [
        ("{not json", None),
        ("[1,2,3]", None),
        ('{"op":"dance","ref":1}', "unknown_op"),
        ('{"op":5}', None),
        ('{"op":"subscribe","channel":5,"ref":2}', None),
        ('{"op":"subscribe","channel":"has space","ref":3}', None),
        ('{"op":"publish","to":"nowhere","data":1,"ref":4}', None),
        ('{"op":"publish","to":"channel:x","ref":5}', None),
        ('{"op":"ping","ref":{"obj":1}}', None),
        ('{"op":"ping","op":"ping"}', None),
        ("", None),
    ]
    for text, code in cases:
        c.send_text(text)
        r = c.read_json()
        assert r["op"] == "error", (text, r)
        if code is not None:
            assert r["code"] == code, (text, r)
    c.send_frame(2, b"\x00\x01binary")
    assert c.read_json()["op"] == "error"
    c.send_text('{"op":"ping","ref":9}')
    assert c.read_json() == {"op": "pong", "ref": 9}
    c.close()
    still_serving(node)


@pytest.mark.parametrize("what", [
    "invalid_utf8", "fragmented_ping", "unmasked", "reserved_opcode",
    "rsv1", "rsv3", "reserved_control_opcode", "garbage_after_handshake",
    "oversize_ping"])
def test_protocol_violations_close(node, what):
    c = raw(node)
    if what == "invalid_utf8":
        c.send_frame(1, b'{"op":"ping","x":"\xff\xfe"}')
        assert c.close_code() == 1007
    else:
        if what == "fragmented_ping":
            c.send_frame(9, b"hi", fin=False)
        elif what == "unmasked":
            c.send_frame(1, b'{"op":"ping"}', mask=False)
        elif what == "reserved_opcode":
            c.send_frame(3, b"x")
        elif what == "reserved_control_opcode":
            c.send_frame(0xB, b"x")
        elif what == "rsv1":
            c.send_frame(1, b'{"op":"ping"}', rsv=4)
        elif what == "rsv3":
            c.send_frame(1, b'{"op":"ping"}', rsv=1)
        elif what == "garbage_after_handshake":
            c.s.sendall(os.urandom(4096))
        elif what == "oversize_ping":
            c.send_frame(9, b"p" * 200)
        code = c.close_code()
        assert code in (None, 1002, 1007, 1009), (what, code)
    c.close()
    still_serving(node)


def test_garbage_before_handshake_and_bad_version(node):
    for junk in (os.urandom(512), b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1",
                 b"HELLO\r\n\r\n", b"GET\r\n\r\n",
                 b"GET /ws HTTP/9.9\r\n\r\n"):
        with socket.create_connection(("127.0.0.1", node.port),
                                      timeout=wsp.T(5)) as s:
            s.sendall(junk)
            try:
                reply = s.recv(4096)
            except (ConnectionResetError, socket.timeout):
                reply = b""
            assert reply == b"" or reply.startswith(b"HTTP/1.") and \
                reply.split(b" ", 2)[1][:1] in (b"4", b"5"), (junk, reply)
    for v in ("12", "8", "abc", ""):
        c = RawWs(node.port, wsp.uid("ver"), version=v)
        assert c.status is None or 400 <= c.status < 500, (v, c.status)
        c.close()
    # A half-sent handshake is cut by handshake_timeout_s (default 10 s).
    s = socket.create_connection(("127.0.0.1", node.port), timeout=wsp.T(5))
    s.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\n")
    s.close()
    still_serving(node)
