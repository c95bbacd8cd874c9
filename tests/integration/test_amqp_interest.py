"""RabbitMQ, interest routing: each node's queue is bound to the direct
exchange with exactly the addresses its clients want; a message reaches
only the node and connections that want it; `welcome` and `subscribed`
come only once the binding is confirmed; bindings go away when the last
local interest leaves."""

import json

import pytest

import amqp_stack
import wsp


@pytest.fixture
def stack(h):
    s = amqp_stack.make_stack(h)
    yield s
    s.close()


def queue_for(bindings, key):
    return {q for k, q in bindings if k == key}


def test_messages_reach_only_the_node_and_connections_that_want_them(
        h, stack):
    a, b = stack.node("a", workers=1), stack.node("b", workers=1)
    x, y = wsp.uid("ax"), wsp.uid("by")
    cx, cy = a.connect(x), b.connect(y)
    ch = wsp.uid("chan")
    r = cy.request({"op": "subscribe", "channel": ch, "ref": 1})
    assert r == {"op": "subscribed", "channel": ch, "ref": 1}

    bs = stack.rb.bindings(stack.exchange)
    qa, qb = queue_for(bs, f"user:{x}"), queue_for(bs, f"user:{y}")
    assert len(qa) == 1 and len(qb) == 1 and qa != qb, bs
    # Node a's queue holds a's interest only (and `all`), b's likewise.
    assert queue_for(bs, f"channel:{ch}") == qb
    assert queue_for(bs, "all") == qa | qb
    assert f"user:{y}" not in {k for k, q in bs if q in qa}

    stack.publish(f"user:{x}", json.dumps({"for": x}))
    stack.publish(f"channel:{ch}", "news")
    got_x, got_y = amqp_stack.fence(stack, [cx, cy])
    assert got_x == [{"op": "msg", "to": f"user:{x}", "data": {"for": x}}]
    assert got_y == [{"op": "msg", "to": f"channel:{ch}", "data": "news"}]


def test_welcome_and_subscribed_only_after_the_binding_is_confirmed(
        h, stack):
    a = stack.node("a", workers=2)
    base = wsp.uid("race")
    # welcome: a message published the moment it arrives is delivered.
    for i in range(20):
        u = f"{base}-u{i}"
        c = a.connect(u)
        stack.publish(f"user:{u}", f"w{i}")
        m = wsp.norm(c.recv_json())
        assert m == {"op": "msg", "to": f"user:{u}", "data": f"w{i}"}, (i, m)
        c.close()
    # subscribed: likewise, on one connection, channel after channel.
    c = a.connect(f"{base}-sub")
    for i in range(50):
        ch = f"{base}-{i}"
        r = c.request({"op": "subscribe", "channel": ch, "ref": i})
        assert r == {"op": "subscribed", "channel": ch, "ref": i}, i
        stack.publish(f"channel:{ch}", f"m{i}")
        m = wsp.norm(c.recv_json())
        assert m == {"op": "msg", "to": f"channel:{ch}", "data": f"m{i}"}, \
            (i, m)
        r = c.request({"op": "unsubscribe", "channel": ch, "ref": 1000 + i})
        assert r == {"op": "unsubscribed", "channel": ch, "ref": 1000 + i}


def test_bindings_go_away_when_the_last_local_interest_leaves(h, stack):
    a = stack.node("a", workers=2)
    u, ch = wsp.uid("gone"), wsp.uid("gonech")
    c1, c2 = a.connect(u), a.connect(u)
    for i, c in enumerate((c1, c2)):
        r = c.request({"op": "subscribe", "channel": ch, "ref": i})
        assert r == {"op": "subscribed", "channel": ch, "ref": i}
    want = {f"user:{u}", f"channel:{ch}"}

    def keys():
        return {k for k, _ in stack.rb.bindings(stack.exchange)}
    assert want <= keys()

    # One of two connections leaves: the interest stays.
    c1.close()
    stack.publish(f"channel:{ch}", "still")
    (got,) = amqp_stack.fence(stack, [c2])
    assert wsp.datas(got) == ["still"]
    assert want <= keys()

    # The unsubscribe of the last holder, then its close: both bindings
    # are removed (after the bridge's short grace period).
    r = c2.request({"op": "unsubscribe", "channel": ch, "ref": 9})
    assert r == {"op": "unsubscribed", "channel": ch, "ref": 9}
    wsp.wait_until(lambda: f"channel:{ch}" not in keys(), 15,
                   "the channel binding to go away")
    c2.close()
    wsp.wait_until(lambda: f"user:{u}" not in keys(), 15,
                   "the user binding to go away")
    assert "all" in keys()


def test_a_channel_name_longer_than_a_routing_key(h):
    """An AMQP routing key holds at most 255 bytes, a wspush address up to
    264 ("channel:" + 256). Subscribing to such a channel is acknowledged
    (nothing can be bound for it), the connection to RabbitMQ stays up,
    and messages reach it through the fanout exchange's header, client
    publishes included."""
    stack = amqp_stack.make_stack(h, fanout=True)
    try:
        a = stack.node("a", workers=1,
                       conf={"gateway": {"client_publish": "all"}})
        ch = "L" * 256
        c = a.connect(wsp.uid("long"))
        r = c.request({"op": "subscribe", "channel": ch, "ref": 1})
        assert r == {"op": "subscribed", "channel": ch, "ref": 1}
        stack.publish_fanout("via header", to=f"channel:{ch}")
        c.send_json({"op": "publish", "to": f"channel:{ch}",
                     "data": "from a client", "ref": 2})
        got = c.until(lambda f: f.get("op") == "msg"
                      and f.get("data") == "from a client", timeout=10)
        assert wsp.datas(got) == ["via header"], got
        r = c.request({"op": "unsubscribe", "channel": ch, "ref": 3})
        assert r == {"op": "unsubscribed", "channel": ch, "ref": 3}
        assert "connection lost" not in a.bridge_log()
    finally:
        stack.close()
