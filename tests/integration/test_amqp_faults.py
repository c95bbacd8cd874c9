"""RabbitMQ faults: the broker restarted while clients are connected (nobody
is disconnected, deliveries resume, the outage is counted, /healthz says
503 meanwhile); the broker's side cutting the connection; the bridge
started while the broker is down; the bridge killed and restarted. These
tests stop and start the session's shared broker and leave it running."""

import json

import amqp_stack
import wsp


stack = amqp_stack.stack
healthz = amqp_stack.healthz


def resume(stack, node, clients, u):
    wsp.publish_until_all_receive(
        lambda p: stack.publish(f"user:{u}", p), clients, timeout=40,
        check=node.check_running, what="deliveries after the outage")


def test_broker_restart_keeps_clients_and_counts_the_outage(h, stack):
    a = stack.node("a", workers=2)
    u = wsp.uid("rr")
    clients = a.connect_spread(u)
    conns = [c.conn for c in clients]
    ch = wsp.uid("rrch")
    r = clients[0].request({"op": "subscribe", "channel": ch, "ref": 1})
    assert r == {"op": "subscribed", "channel": ch, "ref": 1}
    before = amqp_stack.find_key(a.stats(), "outages") or 0

    stack.reset_channel()
    stack.rb.stop()
    wsp.wait_until(lambda: healthz(a) == 503, 20, "/healthz 503")
    assert all(c.is_open() for c in clients)
    stack.rb.start()
    stack.reset_channel()
    wsp.wait_until(lambda: healthz(a) == 200, 40, "/healthz 200 again",
                   check=a.check_running)
    resume(stack, a, clients, u)

    # Every binding is back: the user's and the channel's.
    keys = {k for k, _ in stack.rb.bindings(stack.exchange)}
    assert {f"user:{u}", f"channel:{ch}", "all"} <= keys, keys
    stack.publish(f"channel:{ch}", json.dumps({"after": "restart"}))
    got = amqp_stack.fence(stack, clients)
    assert wsp.datas(wsp.not_probes(got[0])) == [{"after": "restart"}]
    assert [c.conn for c in clients] == conns
    assert all(c.is_open() for c in clients)
    after = amqp_stack.find_key(a.stats(), "outages")
    assert after is not None and after >= before + 1, a.stats()


def test_connection_closed_by_the_broker_is_reopened(h, stack):
    a = stack.node("a", workers=1)
    u = wsp.uid("cut")
    c = a.connect(u)
    st = a.stats()
    assert st["bridge"]["broker"] == "amqp", st["bridge"]
    before = amqp_stack.find_key(st, "outages")
    stack.rb.close_connections("test cut")
    stack.reset_channel()
    resume(stack, a, [c], u)
    assert c.is_open()
    keys = {k for k, _ in stack.rb.bindings(stack.exchange)}
    assert f"user:{u}" in keys
    # Counted at the transitions, however short the outage was.
    assert amqp_stack.find_key(a.stats(), "outages") == before + 1


def test_bridge_started_while_the_broker_is_down(h, stack):
    a = stack.node("a", workers=1, start=False)
    stack.rb.stop()
    try:
        a.start_bridge()
        a.gateway = h.spawn("gateway-a",
                            [wsp.binary("gateway/wspush-gateway"), "-c",
                             a.conf], cls=wsp.GatewayProc)
        a.wait_workers()
        # Up and serving, but not healthy while the broker is away.
        wsp.wait_until(lambda: healthz(a) == 503, 10, "/healthz 503",
                       check=a.check_running)
        fails = wsp.wait_until(
            lambda: amqp_stack.find_key(a.stats(), "connect_failures"), 15,
            "failed connects to be counted", check=a.check_running)
        assert fails >= 1
    finally:
        stack.rb.start()
        stack.reset_channel()
    a.wait_welcome()
    a.wait_attached()
    u = wsp.uid("late")
    c = a.connect(u)
    stack.publish(f"user:{u}", "hello")
    (got,) = amqp_stack.fence(stack, [c])
    assert wsp.datas(got) == ["hello"]


def test_bridge_killed_and_restarted(h, stack):
    a = stack.node("a", workers=2)
    u = wsp.uid("bk")
    clients = a.connect_spread(u)
    conns = [c.conn for c in clients]
    a.bridge.kill()
    a.start_bridge()
    a.wait_attached()
    resume(stack, a, clients, u)
    assert [c.conn for c in clients] == conns
    assert all(c.is_open() for c in clients)
    # The dead bridge's queue went with its connection: one node queue
    # bound for the user.
    qs = {q for k, q in stack.rb.bindings(stack.exchange)
          if k == f"user:{u}"}
    assert len(qs) == 1, qs


def test_wrong_credentials_are_failed_connects_with_the_reason(h, stack):
    a = stack.node("a", workers=1, start=False,
                   conf={"amqp": {"url": stack.rb.url.replace(
                       "guest:guest", "guest:wrong")}})
    a.start_bridge()
    wsp.wait_until(lambda: "ACCESS_REFUSED" in a.bridge_log(), 10,
                   "the broker's refusal in the log",
                   check=a.check_running)
    assert healthz(a) == 503
    wsp.wait_until(
        lambda: (amqp_stack.find_key(a.stats(), "connect_failures") or 0)
        >= 2, 10, "the failed attempts counted (with backoff, retried)",
        check=a.check_running)
