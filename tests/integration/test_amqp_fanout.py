"""RabbitMQ, the seeds' topology: every node binds its queue to a fanout
exchange and the backend publishes with an empty routing key, so every
node receives every message. Without a header a message goes to `all`;
with a `wspush-to` header, only to that address."""

import json

import pytest

import amqp_stack
import wsp


@pytest.fixture
def stack(h):
    s = amqp_stack.make_stack(h, fanout=True, routing="broadcast")
    yield s
    s.close()


def test_fanout_reaches_every_client_on_both_nodes_exactly_once(h, stack):
    a, b = stack.node("a", workers=2), stack.node("b", workers=2)
    clients = (a.connect_spread(wsp.uid("fa")) + b.connect_spread(
        wsp.uid("fb")))
    # Two node queues, each bound once to the fanout exchange, nothing
    # bound to the direct exchange in broadcast routing.
    fan = stack.rb.bindings(stack.fanout)
    assert len(fan) == 2 and len({q for _, q in fan}) == 2, fan
    assert stack.rb.bindings(stack.exchange) == []

    for i in range(20):
        stack.publish_fanout(json.dumps({"n": i}))
    got = amqp_stack.fence(stack, clients)
    for c, frames in zip(clients, got):
        assert frames == [{"op": "msg", "to": "all", "data": {"n": i}}
                          for i in range(20)], c


def test_wspush_to_header_reaches_only_that_user(h, stack):
    a, b = stack.node("a", workers=1), stack.node("b", workers=1)
    x, y = wsp.uid("hx"), wsp.uid("hy")
    cx, cy, cx2 = a.connect(x), b.connect(y), b.connect(x)
    ch = wsp.uid("hch")
    r = cy.request({"op": "subscribe", "channel": ch, "ref": 1})
    assert r == {"op": "subscribed", "channel": ch, "ref": 1}

    stack.publish_fanout(json.dumps({"for": x}), to=f"user:{x}")
    stack.publish_fanout("chan", to=f"channel:{ch}")
    got_x, got_y, got_x2 = amqp_stack.fence(stack, [cx, cy, cx2])
    assert got_x == [{"op": "msg", "to": f"user:{x}", "data": {"for": x}}]
    assert got_x2 == got_x
    assert got_y == [{"op": "msg", "to": f"channel:{ch}", "data": "chan"}]


def test_interest_routing_also_takes_the_fanout_exchange(h):
    """A deployment moving from the seeds' fanout exchange to interest
    routing keeps its publishers: the fanout exchange stays bound."""
    stack = amqp_stack.make_stack(h, fanout=True, routing="interest")
    try:
        a = stack.node("a", workers=1)
        x, y = wsp.uid("ix"), wsp.uid("iy")
        cx, cy = a.connect(x), a.connect(y)
        stack.publish_fanout("to-all")
        stack.publish_fanout("to-x", to=f"user:{x}")
        stack.publish(f"user:{y}", "direct-y")
        got_x, got_y = amqp_stack.fence(stack, [cx, cy])
        assert wsp.datas(got_x) == ["to-all", "to-x"]
        assert wsp.datas(got_y) == ["to-all", "direct-y"]
    finally:
        stack.close()


def test_amqp_publish_from_the_command_line(h, stack):
    """The README's amqp-tools examples: -r on the direct exchange is not
    used in broadcast routing; -H sets the wspush-to header."""
    import subprocess
    a = stack.node("a", workers=1)
    x, y = wsp.uid("cx"), wsp.uid("cy")
    cx, cy = a.connect(x), a.connect(y)
    for args in (["-b", '{"all":1}'],
                 ["-H", f"wspush-to: user:{x}", "-b", '{"only":"x"}']):
        cp = subprocess.run(["amqp-publish", "-u", stack.rb.url, "-e",
                             stack.fanout, "-r", ""] + args,
                            capture_output=True, text=True,
                            timeout=wsp.T(15))
        assert cp.returncode == 0, cp.stderr
    got_x, got_y = amqp_stack.fence(stack, [cx, cy])
    assert wsp.datas(got_x) == [{"all": 1}, {"only": "x"}]
    assert wsp.datas(got_y) == [{"all": 1}]
