"""RabbitMQ: a client `send` lands in the durable inbound queue (body = the
client's data as JSON, headers user/conn/node); connects and disconnects
are published on the events exchange (fanout). Both are published with
confirms: the bridge's upstream writes are acknowledged by the broker."""

import json

import pytest

import amqp_stack
import wsp


@pytest.fixture
def stack(h):
    s = amqp_stack.make_stack(h)
    yield s
    s.close()


def hdr(props, name):
    v = (props.headers or {}).get(name)
    return v.decode() if isinstance(v, bytes) else v


def test_send_lands_in_the_inbound_queue(h, stack):
    a = stack.node("a", workers=1)
    u = wsp.uid("snd")
    c = a.connect(u)
    data = {"cart": 5, "items": ["a", "\u00e9"], "nested": {"ok": True}}
    c.send_json({"op": "send", "data": data, "ref": 5})
    c.send_json({"op": "send", "data": "just text", "ref": 6})

    got = []

    def two():
        got.extend(stack.get_all(stack.inbound))
        return len(got) >= 2
    wsp.wait_until(two, 10, f"two messages in {stack.inbound}")
    assert len(got) == 2, got
    for (props, body), want in zip(got, [data, "just text"]):
        assert json.loads(body) == want
        assert hdr(props, "user") == u and hdr(props, "conn") == c.conn
        assert hdr(props, "node") == a.id
        assert props.type == "send" and props.delivery_mode == 2
    # The queue is durable: it survives the bridge.
    assert stack.inbound in stack.rb.queues()
    c.send_json({"op": "ping", "ref": 77})
    before = c.until(lambda f: f.get("op") == "pong" and f.get("ref") == 77)
    assert [f for f in before if f.get("op") == "error"] == [], before


def test_connect_and_disconnect_on_the_events_exchange(h, stack):
    a = stack.node("a", workers=1)
    q = stack.events_queue()
    u = wsp.uid("ev")
    c = a.connect(u)
    conn = c.conn
    got = []

    def find(kind):
        got.extend(stack.get_all(q))
        return [(p, json.loads(b)) for p, b in got
                if json.loads(b).get("conn") == conn
                and json.loads(b).get("type") == kind]
    ((props, ev),) = wsp.wait_until(lambda: find("connect"), 10,
                                    f"a connect event for {conn}")
    assert ev["user"] == u and ev["node"] == a.id, ev
    assert props.type == "connect" and hdr(props, "user") == u

    c.close()
    ((props, ev),) = wsp.wait_until(lambda: find("disconnect"), 10,
                                    f"a disconnect event for {conn}")
    assert ev["user"] == u and ev["node"] == a.id and "reason" in ev, ev
