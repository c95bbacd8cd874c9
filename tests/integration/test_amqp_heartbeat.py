"""RabbitMQ heartbeats: the bridge negotiates them and serves them from its
loop (an idle connection survives well past two heartbeat intervals), and
a broker that stops answering is declared dead by the missed heartbeats:
outage, /healthz 503, reconnection once it answers again, clients stay."""

import time

import amqp_stack
import wsp

HEARTBEAT_S = 5  # what the bridge asks for


stack = amqp_stack.stack
healthz = amqp_stack.healthz


def node_queue(stack, u):
    (q,) = {q for k, q in stack.rb.bindings(stack.exchange)
            if k == f"user:{u}"}
    return q


def test_an_idle_connection_is_kept_alive_by_heartbeats(h, stack):
    a = stack.node("a", workers=1)
    u = wsp.uid("idle")
    c = a.connect(u)
    q = node_queue(stack, u)
    rows = stack.rb.ctl_json("list_connections", "timeout",
                             "client_properties")
    ours = [r for r in rows if "wspush-bridge node-a" in str(r)]
    assert [r["timeout"] for r in ours] == [HEARTBEAT_S], rows
    # RabbitMQ closes a connection after two missed heartbeats: idle for
    # longer than that, nothing but heartbeats crosses it.
    deadline = time.monotonic() + 2.5 * HEARTBEAT_S
    while time.monotonic() < deadline:
        a.check_running()
        time.sleep(0.5)
    assert "connection lost" not in a.bridge_log()
    assert node_queue(stack, u) == q
    stack.publish(f"user:{u}", "still here")
    (got,) = amqp_stack.fence(stack, [c])
    assert wsp.datas(got) == ["still here"]


def test_a_silent_broker_is_dropped_by_missed_heartbeats(h, stack):
    a = stack.node("a", workers=1)
    u = wsp.uid("silent")
    c = a.connect(u)
    stack.reset_channel()
    t0 = time.monotonic()
    stack.rb.pause()
    try:
        wsp.wait_until(lambda: healthz(a) == 503, 4 * HEARTBEAT_S,
                       "/healthz 503 after the missed heartbeats",
                       check=a.check_running, interval=0.2)
        took = time.monotonic() - t0
        assert "connection lost: heartbeat timeout" in a.bridge_log(), \
            a.bridge_log()[-2000:]
    finally:
        stack.rb.resume()
    # Two intervals at least (not a spurious early drop).
    assert took >= 1.5 * HEARTBEAT_S, took
    wsp.wait_until(lambda: healthz(a) == 200, 40, "/healthz 200 again",
                   check=a.check_running, interval=0.2)
    wsp.publish_until_all_receive(
        lambda p: stack.publish(f"user:{u}", p), [c], timeout=30,
        check=a.check_running, what="deliveries after the silence")
    assert c.is_open()


def test_reconnecting_to_a_silent_broker_does_not_stall_the_bridge(h, stack):
    """After the heartbeat timeout the bridge reconnects to a broker whose
    TCP port still accepts (the kernel does) but which never answers the
    handshake: the attempts must not hold the loop (the stats socket,
    served by it, keeps answering promptly)."""
    a = stack.node("a", workers=1)
    stack.reset_channel()
    stack.rb.pause()
    try:
        wsp.wait_until(
            lambda: "connection lost: heartbeat timeout" in a.bridge_log(),
            4 * HEARTBEAT_S, "the heartbeat timeout", interval=0.2)
        slowest = 0.0
        end = time.monotonic() + 8
        while time.monotonic() < end:
            t0 = time.monotonic()
            cp = a.ctl("stats", "--json", timeout=10)
            slowest = max(slowest, time.monotonic() - t0)
            assert cp.returncode == 0, cp.stderr
            time.sleep(0.1)
        assert slowest < 1.0, f"a stats request took {slowest:.2f}s"
    finally:
        stack.rb.resume()
    wsp.wait_until(lambda: healthz(a) == 200, 40, "/healthz 200 again",
                   check=a.check_running, interval=0.2)
