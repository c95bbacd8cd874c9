"""RabbitMQ: what the broker side loses is counted by reason, in broker
terms: `wspushctl stats` (bridge.broker_link.drops), /metrics
(wspush_broker_drops_total{kind="amqp",reason=...}) and the wspushctl
stats text. A client `send` whose inbound queue is gone comes back from
RabbitMQ as unroutable (mandatory publish): a `returned` drop, not an
`unconfirmed` one."""

import pytest

import amqp_stack
import wsp


@pytest.fixture
def stack(h):
    s = amqp_stack.make_stack(h)
    yield s
    s.close()


def broker_link(node):
    bl = amqp_stack.find_key(node.stats(), "broker_link")
    assert isinstance(bl, dict), "stats without broker_link"
    return bl


def test_broker_figures_in_broker_terms(h, stack):
    a = stack.node("a", workers=1)
    u = wsp.uid("bl")
    a.connect(u)
    bl = broker_link(a)
    assert bl["kind"] == "amqp" and bl["state"] == "up" and bl["up"] is True
    # all + the user's address are bound.
    assert bl["subscriptions"] >= 2
    assert set(bl["drops"]) >= {"down", "unconfirmed", "returned",
                                "oversize", "bad_address"}
    m = a.metrics()
    assert amqp_stack.metric(m, "wspush_broker_up", {"kind": "amqp"}) == 1
    assert amqp_stack.metric(
        m, "wspush_broker_subscriptions", {"kind": "amqp"}) >= 2
    assert amqp_stack.metric(
        m, "wspush_broker_outages_total", {"kind": "amqp"}) == 0
    text = a.ctl("stats")
    assert text.returncode == 0, text.stderr
    assert "broker   amqp up  bindings" in text.stdout, text.stdout


def test_send_to_a_missing_inbound_queue_is_a_returned_drop(h, stack):
    a = stack.node("a", workers=1)
    u = wsp.uid("ret")
    c = a.connect(u)
    stack.rb.ctl("delete_queue", stack.inbound)
    for i in range(3):
        c.send_json({"op": "send", "data": {"n": i}, "ref": i + 1})

    def three():
        return broker_link(a)["drops"]["returned"] >= 3
    wsp.wait_until(three, 15, "3 returned drops counted")
    drops = broker_link(a)["drops"]
    assert drops["unconfirmed"] == 0 and drops["bad_address"] == 0, drops
    # /metrics renders a snapshot that may be a moment older.
    wsp.wait_until(lambda: (amqp_stack.metric(a.metrics(),
        "wspush_broker_drops_total",
        {"kind": "amqp", "reason": "returned"}) or 0) >= 3, 10,
        "returned drops in /metrics")
    assert amqp_stack.metric(a.metrics(), "wspush_broker_drops_total",
        {"kind": "amqp", "reason": "unconfirmed"}) == 0
    assert "returned=" in a.ctl("stats").stdout
    assert c.is_open()
