#!/usr/bin/python3
"""wsp_slowhs: keeps N slow WebSocket handshakes open against a gateway,
for the slow-handshake tests (tests/integration/test_slow_handshakes.py).

Each connection stays silent for a random while (--silence-min ..
--silence-max seconds), then sends its upgrade request one byte every
--interval seconds, so the request never completes in any useful time.
A connection the server closes or answers is counted as cut and replaced
by a new one at once, so the attack keeps --conns handshakes in flight.
Every second a line "open <connected> cut <total cut> statuses <...>" goes
to stdout. It exits by itself after --duration seconds (a bounded run even
if nobody stops it); SIGTERM/SIGKILL by PID end it earlier.

Loopback only; standard library only.
"""

import argparse
import errno
import random
import selectors
import socket
import sys
import time


def request(i):
    return (f"GET /ws?user=slow{i} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n").encode()


class Conn:
    __slots__ = ("s", "connected", "next_t", "pos", "req", "resp")

    def __init__(self, s, first_t, req):
        self.s = s
        self.connected = False
        self.next_t = first_t
        self.pos = 0
        self.req = req
        self.resp = b""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--conns", type=int, default=500)
    ap.add_argument("--interval", type=float, default=2.0)
    ap.add_argument("--silence-min", type=float, default=0.0)
    ap.add_argument("--silence-max", type=float, default=0.0)
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--open-per-tick", type=int, default=200,
                    help="new connections per 50 ms at most")
    a = ap.parse_args()
    if a.host not in ("127.0.0.1", "::1", "localhost"):
        sys.exit("wsp_slowhs: loopback only")

    sel = selectors.DefaultSelector()
    conns = set()
    cut = 0
    statuses = {}
    serial = 0
    end = time.monotonic() + a.duration
    next_report = time.monotonic()
    window_end = 0.0
    opened = 0

    def drop(c, counted=True):
        nonlocal cut
        try:
            sel.unregister(c.s)
        except (KeyError, ValueError):
            pass
        c.s.close()
        conns.discard(c)
        if counted:
            cut += 1
            line = c.resp.split(b"\r\n", 1)[0].split()
            st = line[1].decode("latin-1") if len(line) >= 2 else "none"
            statuses[st] = statuses.get(st, 0) + 1

    def open_one():
        nonlocal serial
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        err = s.connect_ex((a.host, a.port))
        if err not in (0, errno.EINPROGRESS):
            s.close()
            return
        serial += 1
        c = Conn(s, time.monotonic()
                 + random.uniform(a.silence_min, a.silence_max),
                 request(serial))
        conns.add(c)
        sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE, c)

    while time.monotonic() < end:
        if time.monotonic() >= window_end:
            # --open-per-tick per 50 ms of wall time, however often the
            # loop turns: replacing cut connections is rate-bounded.
            window_end = time.monotonic() + 0.05
            opened = 0
        while len(conns) < a.conns and opened < a.open_per_tick:
            open_one()
            opened += 1
        for key, ev in sel.select(timeout=0.05):
            c = key.data
            if ev & selectors.EVENT_WRITE and not c.connected:
                if c.s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                    drop(c)
                    continue
                c.connected = True
                sel.modify(c.s, selectors.EVENT_READ, c)
            if ev & selectors.EVENT_READ:
                try:
                    d = c.s.recv(4096)
                except OSError:
                    d = b""
                if not d:
                    drop(c)
                else:
                    c.resp += d[:256]
        now = time.monotonic()
        for c in list(conns):
            if c.connected and now >= c.next_t and c.pos < len(c.req):
                try:
                    c.s.send(c.req[c.pos:c.pos + 1])
                except OSError:
                    drop(c)
                    continue
                c.pos += 1
                c.next_t = now + a.interval
        if now >= next_report:
            n_open = sum(1 for c in conns if c.connected)
            st = ",".join(f"{k}:{v}" for k, v in sorted(statuses.items()))
            print(f"open {n_open} cut {cut} statuses {st or '-'}",
                  flush=True)
            next_report = now + 1.0
    for c in list(conns):
        drop(c, counted=False)


if __name__ == "__main__":
    main()
