"""RabbitMQ: 1,000 messages in a row arrive in order and exactly once, on
every connection of the user across workers and nodes; payloads are
classified as with Redis (JSON embedded, other UTF-8 as a string, the
rest base64)."""

import base64

import pytest

import amqp_stack
import wsp
from test_payload_classification import BINARY, TEXT

N = 1000


@pytest.fixture
def stack(h):
    s = amqp_stack.make_stack(h)
    yield s
    s.close()


def test_thousand_messages_in_order_exactly_once(h, stack):
    a, b = stack.node("a", workers=2), stack.node("b", workers=2)
    u = wsp.uid("order")
    clients = a.connect_spread(u)[:2] + b.connect_spread(u)[:2]
    ch = stack.channel()
    for i in range(N):
        ch.basic_publish(stack.exchange, f"user:{u}", b'{"i":%d}' % i)
    got = amqp_stack.fence(stack, clients, timeout=30)
    for c, frames in zip(clients, got):
        seq = [f["data"]["i"] for f in wsp.msgs(frames)]
        assert seq == list(range(N)), (c, len(seq), seq[:10])
        assert len(frames) == N, c


def test_payloads_are_classified_as_with_redis(h, stack):
    a = stack.node("a", workers=1)
    u = wsp.uid("cls")
    c = a.connect(u)
    for payload, _ in TEXT:
        stack.publish(f"user:{u}", payload)
    for payload in BINARY:
        stack.publish(f"user:{u}", payload)
    (frames,) = amqp_stack.fence(stack, [c])

    assert len(frames) == len(TEXT) + len(BINARY), frames
    for (payload, want), f in zip(TEXT, frames):
        assert f.get("op") == "msg" and f.get("to") == f"user:{u}", f
        assert "data_b64" not in f, (payload, f)
        assert f.get("data") == want, (payload, f)
    for payload, f in zip(BINARY, frames[len(TEXT):]):
        assert f.get("op") == "msg" and "data" not in f, (payload, f)
        assert base64.b64decode(f["data_b64"], validate=True) == payload


def test_a_message_larger_than_a_frame_arrives_whole(h, stack):
    """RabbitMQ splits bodies into frames of at most 128 KiB: the bridge
    reassembles them."""
    a = stack.node("a", workers=1,
                   conf={"gateway": {"max_message_bytes": 1 << 20}})
    u = wsp.uid("big")
    c = a.connect(u)
    big = "".join(chr(ord("a") + i % 26) for i in range(300000))
    stack.publish(f"user:{u}", big)
    stack.publish(f"user:{u}", b"\xff" * 140000)
    stack.publish(f"user:{u}", "after")
    (frames,) = amqp_stack.fence(stack, [c], timeout=15)
    assert [f.get("data", "")[:5] for f in frames] == ["abcde", "", "after"]
    assert frames[0]["data"] == big
    assert base64.b64decode(frames[1]["data_b64"]) == b"\xff" * 140000
