"""SIGTERM to the gateway master with 50 connected clients: every client
gets close code 1001 (going away) and every gateway process exits within
gateway.drain_timeout_s (2 s in the harness)."""

import signal
import time

import wsp

N = 50
DRAIN_S = 2


def test_sigterm_closes_clients_with_1001_within_drain(h):
    c = wsp.Cluster(h, nodes=1, workers=2)
    node = c.a
    clients = []
    for i in range(0, N, 10):
        clients += node.connect_many([wsp.uid("sd") for _ in range(10)])
    gw = node.gateway
    pids = set(gw.workers()) | {gw.pid}

    t0 = time.monotonic()
    gw.expect_exit = True
    gw.stopped = True
    gw.signal(signal.SIGTERM)
    codes = [cl.wait_closed(timeout=DRAIN_S + 3) for cl in clients]
    assert codes == [1001] * N, sorted(set(codes))
    wsp.wait_until(lambda: not any(wsp.pid_alive(p) for p in pids),
                   DRAIN_S + 1, "all gateway processes to exit")
    took = time.monotonic() - t0
    assert took <= wsp.T(DRAIN_S + 1), took
    rc = gw.popen.wait(wsp.T(5))
    assert rc == 0, wsp.describe_rc(rc)
