"""`wspushctl publish` with `[broker] kind = amqp` goes through RabbitMQ as
a backend would, and says whether a node wanted the message (1) or it was
unroutable (0); in broadcast routing it uses the fanout exchange and the
wspush-to header."""

import pytest

import amqp_stack
import wsp


@pytest.mark.parametrize("routing", ["interest", "broadcast"])
def test_wspushctl_publish_through_rabbitmq(h, routing):
    stack = amqp_stack.make_stack(h, fanout=True, routing=routing)
    try:
        a = stack.node("a", workers=1)
        x, y = wsp.uid("px"), wsp.uid("py")
        cx, cy = a.connect(x), a.connect(y)
        cp = a.ctl("publish", "--user", x, '{"hello":"x"}')
        assert cp.returncode == 0 and cp.stdout.strip() == "1", cp.stderr
        cp = a.ctl("publish", "--all", "everyone")
        assert cp.returncode == 0 and cp.stdout.strip() == "1", cp.stderr
        cp = a.ctl("publish", "--user", x, "--from", "ops", "enveloped")
        assert cp.returncode == 0, cp.stderr
        got_x, got_y = amqp_stack.fence(stack, [cx, cy])
        assert got_x == [
            {"op": "msg", "to": f"user:{x}", "data": {"hello": "x"}},
            {"op": "msg", "to": "all", "data": "everyone"},
            {"op": "msg", "to": f"user:{x}", "from": "ops",
             "data": "enveloped"}]
        assert got_y == [{"op": "msg", "to": "all", "data": "everyone"}]
        if routing == "interest":
            # Nobody holds this user: RabbitMQ returns it unroutable.
            cp = a.ctl("publish", "--user", wsp.uid("nobody"), "lost")
            assert cp.returncode == 0 and cp.stdout.strip() == "0", \
                cp.stderr
    finally:
        stack.close()
