"""RabbitMQ that stops reading must not stall the bridge: rabbitmq-c writes
with no deadline, so the bridge only publishes what the socket can take
without blocking and keeps the rest in its bounded queue. Here the broker
is frozen (SIGSTOP) while a client sends ~6 MB upstream; the bridge keeps
answering its stats socket (served by its loop), and once the broker runs
again every send reaches the inbound queue."""

import json
import time

import pytest

import amqp_stack
import wsp

N = 100
SIZE = 60000


@pytest.fixture
def stack(h):
    s = amqp_stack.make_stack(h)
    yield s
    s.close()


def test_a_broker_that_stops_reading_does_not_stall_the_bridge(h, stack):
    a = stack.node("a", workers=1, conf={"gateway": {"rate_burst": 200}})
    c = a.connect(wsp.uid("bp"))
    stack.channel()  # declared queues exist; publisher connected
    stack.reset_channel()
    stack.rb.pause()
    try:
        for i in range(N):
            c.send_json({"op": "send", "data": {"i": i, "pad": "x" * SIZE}})
        # The loop is alive: the stats socket answers, quickly, with the
        # sends queued.
        deadline = time.monotonic() + wsp.T(5)
        while True:
            t0 = time.monotonic()
            cp = a.ctl("stats", "--json", timeout=10)
            took = time.monotonic() - t0
            assert cp.returncode == 0, cp.stderr
            assert took < 3, f"stats took {took:.1f}s: the loop stalled"
            q = amqp_stack.find_key(json.loads(cp.stdout),
                                    "queued_writes")
            if q or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert q and q > 0, cp.stdout
    finally:
        stack.rb.resume()
    got = []

    def all_in():
        got.extend(stack.get_all(stack.inbound))
        return len(got) >= N
    wsp.wait_until(all_in, 60, f"{N} sends in {stack.inbound}",
                   check=a.check_running)
    assert len(got) == N
    assert c.is_open()


def test_a_memory_alarm_blocks_publishes_without_stalling(h, stack):
    """RabbitMQ under a resource alarm stops reading from publishers and
    says so (connection.blocked, asked for at login): the bridge keeps
    its sends queued meanwhile, stays responsive, and publishes them once
    the alarm clears."""
    a = stack.node("a", workers=1)
    c = a.connect(wsp.uid("alarm"))
    stack.reset_channel()
    stack.rb.ctl("set_vm_memory_high_watermark", "0.0000001")
    try:
        # RabbitMQ blocks a connection when it next publishes: this send
        # goes out, stays unread, and brings the notification.
        c.send_json({"op": "send", "data": {"i": -1}})
        wsp.wait_until(lambda: "broker blocked publishing" in
                       a.bridge_log(), 15, "connection.blocked",
                       check=a.check_running)
        for i in range(20):
            c.send_json({"op": "send", "data": {"i": i}})
        wsp.wait_until(
            lambda: (amqp_stack.find_key(a.stats(), "queued_writes")
                     or 0) >= 20, 10, "20 sends queued while blocked",
            check=a.check_running)
    finally:
        stack.rb.ctl("set_vm_memory_high_watermark", "0.4")
    got = []

    def all_in():
        got.extend(stack.get_all(stack.inbound))
        return len(got) >= 21
    wsp.wait_until(all_in, 30, f"21 sends in {stack.inbound}",
                   check=a.check_running)
    assert sorted(json.loads(b)["i"] for _, b in got) == list(range(-1, 20))
    assert "broker unblocked publishing" in a.bridge_log()


def test_the_node_queue_is_exclusive_and_bounded_in_the_broker(h, stack):
    """Consumed without acks, the node's queue is bounded where a backlog
    would build up: RabbitMQ drops the oldest past 100,000 messages or
    64 MiB. It is server-named, exclusive and auto-delete."""
    a = stack.node("a", workers=1)
    u = wsp.uid("bound")
    a.connect(u)
    (q,) = {q for k, q in stack.rb.bindings(stack.exchange)
            if k == f"user:{u}"}
    rows = stack.rb.ctl_json("list_queues", "name", "arguments",
                             "exclusive", "auto_delete", "durable")
    (row,) = [r for r in rows if r["name"] == q]
    assert q.startswith("amq.gen-"), q
    assert row["exclusive"] and row["auto_delete"] and not row["durable"]
    args = row["arguments"]
    if isinstance(args, list):  # [[key, type, value], ...]
        args = {a[0]: a[-1] for a in args}
    assert args.get("x-max-length") == 100000, row
    assert args.get("x-max-length-bytes") == 64 * 1024 * 1024, row
    assert args.get("x-overflow") == "drop-head", row
