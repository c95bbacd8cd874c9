"""RabbitMQ configuration answers: history and presence are Redis
features; with `[broker] kind = amqp` a history setting is refused at start
naming the key, `wspushctl online` says it is not available, broadcast
routing needs the fanout exchange, and an exchange that exists with
another type stops the bridge with the broker's words and the key."""

import os
import re

import pytest

import amqp_stack
import wsp
from test_config_errors import good_sections, run


def amqp_sections(h, **amqp):
    s = good_sections(h)
    s["broker"] = {"kind": "amqp"}
    s["amqp"] = {"url": "amqp://guest:guest@127.0.0.1:1/%2f", **amqp}
    return s


@pytest.mark.parametrize("prog", ["bridge/wspush-bridge",
                                  "gateway/wspush-gateway"])
def test_history_with_amqp_is_refused_naming_the_key(h, prog):
    s = amqp_sections(h)
    s["history"] = {"size": 100}
    path = os.path.join(h.dir, "hist.conf")
    line = wsp.write_conf(path, s)[("history", "size")]
    cp = run([wsp.binary(prog), "-c", path, "-t"])
    assert cp.returncode != 0
    assert re.search(re.escape(path) + f":{line}\\b", cp.stderr), cp.stderr
    assert "not available with broker.kind = amqp" in cp.stderr, cp.stderr


def test_online_is_not_available_with_amqp(h):
    s = amqp_sections(h)
    path = os.path.join(h.dir, "online.conf")
    wsp.write_conf(path, s)
    for args in (["online"], ["online", "--user", "42"]):
        cp = wsp.ctl(h, path, *args)
        assert cp.returncode != 0, cp.stdout
        assert "not available with broker = amqp" in cp.stderr, cp.stderr


def test_broadcast_without_fanout_exchange_is_refused(h):
    s = amqp_sections(h)
    s["broker"]["routing"] = "broadcast"
    path = os.path.join(h.dir, "bc.conf")
    wsp.write_conf(path, s)
    cp = run([wsp.binary("bridge/wspush-bridge"), "-c", path])
    assert cp.returncode != 0
    assert "fanout_exchange" in cp.stderr, cp.stderr


def test_existing_exchange_of_another_type_stops_the_bridge(h):
    stack = amqp_stack.make_stack(h)
    try:
        ch = stack.channel()
        ch.exchange_declare(stack.exchange, "fanout", durable=True)
        a = stack.node("a", workers=1, start=False)
        cp = run([wsp.binary("bridge/wspush-bridge"), "-c", a.conf],
                 timeout=20)
        # A clean stop with status 1, not an exit from inside the loop:
        # the bridge's own "stopped" is logged, and under ASan the leak
        # check ran (it would turn the status into 23).
        assert cp.returncode == 1, (cp.returncode, cp.stderr)
        assert "[amqp] exchange" in cp.stderr, cp.stderr
        assert "PRECONDITION_FAILED" in cp.stderr, cp.stderr
        assert "notice: stopped" in cp.stderr, cp.stderr
        ch = stack.channel()
        ch.exchange_delete(stack.exchange)
    finally:
        stack.close()
