"""RabbitMQ, bad input from publishers: a malformed wspush-to header, an
address that is not one as routing key, a message larger than
max_message_bytes. Each is counted and skipped; the next good message
arrives; nothing crashes."""

import pytest

import amqp_stack
import wsp


@pytest.fixture
def stack(h):
    s = amqp_stack.make_stack(h, fanout=True)
    yield s
    s.close()


def test_malformed_wspush_to_headers_are_counted_and_skipped(h, stack):
    a = stack.node("a", workers=1)
    u = wsp.uid("bad")
    c = a.connect(u)
    before = amqp_stack.find_key(a.stats(), "bad_address") or 0
    stack.publish_fanout("number", headers={"wspush-to": 42})
    stack.publish_fanout("not an address", to="nobody")
    stack.publish_fanout("empty", to="")
    stack.publish_fanout("space", to="user:a b")
    stack.publish_fanout("table", headers={"wspush-to": {"user": u}})
    stack.publish_fanout("good", to=f"user:{u}")
    (got,) = amqp_stack.fence(stack, [c])
    assert wsp.datas(got) == ["good"]
    wsp.wait_until(
        lambda: (amqp_stack.find_key(a.stats(), "bad_address") or 0)
        >= before + 5, 10, "5 bad addresses counted")


def test_a_routing_key_that_is_no_address_reaches_nobody(h, stack):
    a = stack.node("a", workers=1)
    u = wsp.uid("key")
    c = a.connect(u)
    # Nothing is bound with such keys: RabbitMQ drops them unrouted.
    for key in ("order.paid", "", "user:", "user:*", "x" * 255):
        stack.publish(key, "nope")
    stack.publish(f"user:{u}", "yes")
    (got,) = amqp_stack.fence(stack, [c])
    assert wsp.datas(got) == ["yes"]
    a.check_running()


def test_oversize_message_is_counted_and_skipped(h, stack):
    a = stack.node("a", workers=1,
                   conf={"gateway": {"max_message_bytes": 4096}})
    u = wsp.uid("big")
    c = a.connect(u)
    stack.publish(f"user:{u}", "x" * 5000)
    stack.publish_fanout("y" * 5000, to=f"user:{u}")
    stack.publish(f"user:{u}", "small")
    (got,) = amqp_stack.fence(stack, [c])
    assert wsp.datas(got) == ["small"]
    wsp.wait_until(
        lambda: wsp.worker_total(a.stats(), "drop_too_large") >= 2, 10,
        "2 oversize drops counted")
    assert c.is_open()
