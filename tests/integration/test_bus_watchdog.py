"""A worker whose bus goes silent redials it; so does one whose upstream
goes unanswered.

nng 1.5.2 can leave a worker's SUB dialer dead after a bridge restart: the
upstream pipe comes back, the bus never does, and nng never retries (this
made test_interest_restore fail about once in twenty runs). The worker
watches the bridge's heartbeat on the bus and, after three missed ones,
recreates the dialer.

The test makes that state on purpose: while the bridge is down, a fake
listener on bus1.ipc completes the SP handshake as a PUB would and then says
nothing, so the worker's SUB sits on a live but silent connection that nng
has no reason to leave. The real bridge then takes the path; deliveries
must resume because the worker redials, not because anything reconnects on
its own. The upstream twin: the worker's PUSH sits on a fake PULL that
swallows everything, while the real bridge heartbeats the bus; interest
requests go unanswered, and the worker must redial upstream."""

import os
import socket
import threading

import wsp

SP_PUB = 0x20
SP_PULL = 0x51


class SilentPeer:
    """Accepts on a Unix socket, answers the SP header of protocol proto
    (a PUB, a PULL), then keeps every connection open and says nothing
    (what it is sent stays unread in the kernel's buffers)."""

    def __init__(self, path, proto):
        self.path = path
        self.proto = proto
        self.conns = []
        self.lsn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.lsn.bind(path)
        self.lsn.listen(16)
        self.lsn.settimeout(0.1)
        self.stopping = False
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        while not self.stopping:
            try:
                c, _ = self.lsn.accept()
            except (socket.timeout, OSError):
                continue
            c.sendall(bytes([0, ord("S"), ord("P"), 0, 0, self.proto, 0, 0]))
            self.conns.append(c)

    def stop_listening(self):
        """Frees the path; accepted connections stay open and silent."""
        self.stopping = True
        self.t.join()
        self.lsn.close()
        os.unlink(self.path)

    def close(self):
        for c in self.conns:
            c.close()


def restart_bridge_behind_fake(node, sock, proto):
    """Kills the bridge, lets the worker dial a SilentPeer on sock
    ("bus1.ipc", slot 1's bus stream, or "up.ipc"), then starts the real bridge on fresh paths
    while the worker's connection to the fake stays open. Returns the fake
    (close it at the end)."""
    node.bridge.kill()
    for s in ("bus1.ipc", "up.ipc"):
        os.unlink(os.path.join(node.runtime_dir, s))
    fake = SilentPeer(os.path.join(node.runtime_dir, sock), proto)
    try:
        wsp.wait_until(lambda: len(fake.conns) >= 1, 15,
                       f"the worker to dial the fake {sock}",
                       check=node.gateway.check_running)
        fake.stop_listening()
        node.start_bridge()
    except BaseException:
        fake.close()
        raise
    return fake


def test_silent_bus_is_redialled(h):
    c = wsp.Cluster(h, nodes=1, workers=1)
    u, ch = wsp.uid("bw"), wsp.uid("bwch")
    cl = c.a.connect(u)
    assert cl.request({"op": "subscribe", "channel": ch, "ref": 1}) == \
        {"op": "subscribed", "channel": ch, "ref": 1}

    fake = restart_bridge_behind_fake(c.a, "bus1.ipc", SP_PUB)
    try:
        wsp.publish_until_all_receive(
            lambda p: c.publish(f"channel:{ch}", p), [cl], timeout=15,
            check=c.a.check_running, what="deliveries after the redial")
    finally:
        fake.close()
    assert "redialling the bus" in open(c.a.gateway.err).read()
    assert cl.is_open()


def test_unanswered_upstream_is_redialled(h):
    c = wsp.Cluster(h, nodes=1, workers=1)
    fake = restart_bridge_behind_fake(c.a, "up.ipc", SP_PULL)
    try:
        # A new user needs the bridge's ACK for its welcome; the first
        # request is swallowed, the re-request after the ack timeout (5 s)
        # finds the upstream redialled.
        u = wsp.uid("uw")
        cl = c.a.connect(u, timeout=20)
    finally:
        fake.close()
    assert "redialling upstream" in open(c.a.gateway.err).read()
    wsp.publish_until_all_receive(
        lambda p: c.publish(f"user:{u}", p), [cl], timeout=15,
        check=c.a.check_running, what="deliveries after the redial")
