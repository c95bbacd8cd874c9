"""wspushctl against a peer that accepts connections but never answers
(a bridge or a Redis stopped with SIGSTOP, as a hung process would be):
the command gives up after its --timeout (default 2 s), names the socket
that did not answer, and exits 1. Once the peer runs again, the same
command works."""

import os
import signal
import time

import wsp


def timed_ctl(node, *args):
    t0 = time.monotonic()
    cp = node.ctl(*args, timeout=30)
    return cp, time.monotonic() - t0


def test_stats_against_a_stopped_bridge_times_out_and_names_the_socket(h):
    c = wsp.Cluster(h, nodes=1, workers=1)
    node = c.a
    sock = os.path.join(node.runtime_dir, "stats.ipc")
    assert node.stats()["bridge"]["node"] == node.id

    node.bridge.signal(signal.SIGSTOP)
    try:
        # The default: a short wait, then an error naming the socket.
        cp, took = timed_ctl(node, "stats", "--json")
        assert 1.5 <= took < 2 + wsp.T(2), (took, cp)
        assert cp.returncode == 1, cp
        assert sock in cp.stderr and "did not answer" in cp.stderr, cp.stderr
        assert cp.stdout == "", cp.stdout

        # An explicit timeout is honoured, for the table form too.
        cp, took = timed_ctl(node, "stats", "--timeout", "0.5")
        assert cp.returncode == 1, cp
        assert sock in cp.stderr and "0.5 s" in cp.stderr, cp.stderr
        assert took < 0.5 + wsp.T(2), took
    finally:
        node.bridge.signal(signal.SIGCONT)

    # Running again: answers (the nng listener may need its self-check to
    # recover from the abandoned connections, hence the wait).
    wsp.wait_until(lambda: node.ctl("stats", "--json").returncode == 0, 15,
                   "stats to answer after SIGCONT",
                   check=node.bridge.check_running, interval=0.2)
    node.wait_attached()


def test_online_against_a_stopped_redis_times_out(h):
    c = wsp.Cluster(h, nodes=1, workers=1)
    node = c.a
    assert node.ctl("online").returncode == 0
    c.redis.proc.signal(signal.SIGSTOP)
    try:
        cp, took = timed_ctl(node, "online", "--timeout", "1")
        assert cp.returncode == 1, cp
        assert f"127.0.0.1:{c.redis.port}" in cp.stderr, cp.stderr
        assert "did not answer within 1 s" in cp.stderr, cp.stderr
        assert took < 1 + wsp.T(2), took
    finally:
        c.redis.proc.signal(signal.SIGCONT)
    wsp.wait_until(lambda: node.ctl("online").returncode == 0, 15,
                   "online to work after SIGCONT", interval=0.2)


def test_bad_timeout_is_a_usage_error(h):
    c = wsp.Cluster(h, nodes=1, workers=1)
    for bad in ("0", "-1", "abc", "100000"):
        cp = c.a.ctl("stats", "--timeout", bad)
        assert cp.returncode == 2 and "--timeout" in cp.stderr, cp
