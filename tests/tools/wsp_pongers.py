#!/usr/bin/python3
"""wsp_pongers: holds N idle WebSocket connections to a gateway that do
nothing but answer its pings, for the keepalive scale test
(tests/integration/test_keepalive_scale.py).

Connections are opened --open-per-tick at a time (each its own user,
<prefix><i>); every frame from the server is parsed: a ping is answered
with a pong echoing its payload (masked, as a client must), a close or a
dropped socket counts as closed. Every 0.5 s a line
"open <upgraded> pings <total> closed <total> failed <total>" goes to
stdout. It exits by itself after --duration seconds (a bounded run even if
nobody stops it); SIGTERM/SIGKILL by PID end it earlier.

Loopback only; standard library only.
"""

import argparse
import errno
import selectors
import socket
import struct
import sys
import time

KEY = "dGhlIHNhbXBsZSBub25jZQ=="


class Conn:
    __slots__ = ("s", "upgraded", "buf")

    def __init__(self, s):
        self.s = s
        self.upgraded = False
        self.buf = b""


def frames(buf):
    """Complete server frames at the start of buf: ([(opcode, payload)],
    bytes used). Server frames are never masked."""
    out, pos = [], 0
    while len(buf) - pos >= 2:
        op, n = buf[pos] & 0x0F, buf[pos + 1] & 0x7F
        hl = 2
        if n == 126:
            if len(buf) - pos < 4:
                break
            n, hl = struct.unpack_from(">H", buf, pos + 2)[0], 4
        elif n == 127:
            if len(buf) - pos < 10:
                break
            n, hl = struct.unpack_from(">Q", buf, pos + 2)[0], 10
        if len(buf) - pos < hl + n:
            break
        out.append((op, buf[pos + hl:pos + hl + n]))
        pos += hl + n
    return out, pos


def pong(payload):
    # A zero masking key leaves the payload as it is (RFC 6455 5.3).
    return bytes([0x8A, 0x80 | len(payload)]) + b"\0\0\0\0" + payload


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--conns", type=int, default=1000)
    ap.add_argument("--prefix", default="ponger")
    ap.add_argument("--open-per-tick", type=int, default=200)
    ap.add_argument("--duration", type=float, default=60.0)
    a = ap.parse_args()

    sel = selectors.DefaultSelector()
    started = pings = closed = failed = upgraded = 0
    t_end = time.monotonic() + a.duration
    next_report = 0.0
    while time.monotonic() < t_end:
        for _ in range(min(a.open_per_tick, a.conns - started)):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            rc = s.connect_ex((a.host, a.port))
            if rc not in (0, errno.EINPROGRESS):
                failed += 1
                s.close()
                continue
            c = Conn(s)
            sel.register(s, selectors.EVENT_WRITE, c)
            started += 1
        for key, ev in sel.select(timeout=0.05):
            c = key.data
            if ev & selectors.EVENT_WRITE:
                req = (f"GET /ws?user={a.prefix}{started}x{c.s.fileno()} "
                       f"HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                       "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                       f"Sec-WebSocket-Key: {KEY}\r\n"
                       "Sec-WebSocket-Version: 13\r\n\r\n").encode()
                try:
                    c.s.send(req)
                except OSError:
                    failed += 1
                    sel.unregister(c.s)
                    c.s.close()
                    continue
                sel.modify(c.s, selectors.EVENT_READ, c)
                continue
            try:
                data = c.s.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:
                if c.upgraded:
                    closed += 1
                    upgraded -= 1
                else:
                    failed += 1
                sel.unregister(c.s)
                c.s.close()
                continue
            c.buf += data
            if not c.upgraded:
                end = c.buf.find(b"\r\n\r\n")
                if end < 0:
                    continue
                if not c.buf.startswith(b"HTTP/1.1 101"):
                    failed += 1
                    sel.unregister(c.s)
                    c.s.close()
                    continue
                c.upgraded = True
                upgraded += 1
                c.buf = c.buf[end + 4:]
            got, used = frames(c.buf)
            c.buf = c.buf[used:]
            for op, payload in got:
                if op == 0x9:
                    pings += 1
                    try:
                        c.s.send(pong(payload))
                    except OSError:
                        pass
        now = time.monotonic()
        if now >= next_report:
            print(f"open {upgraded} pings {pings} closed {closed} "
                  f"failed {failed}", flush=True)
            next_report = now + 0.5
    return 0


if __name__ == "__main__":
    sys.exit(main())
