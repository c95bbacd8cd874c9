"""amqp_stack.py - wspush nodes on RabbitMQ for the AMQP tests.

- `rabbit()`: the session's private rabbitmq-server (rabbit.py), started on
  first use and stopped by PID when the interpreter exits. It lives in its
  own directory, outside the per-test ones, because it outlives them.
- `Stack`: one test's names on that shared broker (its own exchanges and
  queues, so tests never see each other's traffic), a pika publisher, and
  nodes (`AmqpNode`: a wsp.Node whose config says `[broker] kind = amqp`).
- `fence()`: the AMQP twin of wsp.fence(): a marker published after the
  messages under test; once every client saw it, everything published
  before it that was going to arrive has arrived (one queue per node,
  delivered in order).
"""

import atexit
import json
import tempfile
import uuid

import pika
import pytest

import rabbit
import wsp

_RABBIT = None
_RABBIT_H = None


def rabbit_server():
    """The shared RabbitMQ of this test session (started on first use)."""
    global _RABBIT, _RABBIT_H
    if _RABBIT is not None:
        if not _RABBIT.proc.running():
            # A test stopped it and failed before starting it again.
            _RABBIT.start()
        return _RABBIT
    d = tempfile.mkdtemp(prefix="wspush-rabbit-", dir="/tmp")
    _RABBIT_H = wsp.Harness(d)
    # Not in wsp.ACTIVE: its log tail would be attached to every failure.
    wsp.ACTIVE.remove(_RABBIT_H)
    _RABBIT = rabbit.RabbitServer(_RABBIT_H)
    _RABBIT.start()
    atexit.register(_stop)
    return _RABBIT


def _stop():
    if _RABBIT_H is None:
        return
    problems = _RABBIT_H.finish()
    if problems or wsp.LEAVE:
        print(f"\nrabbitmq-server directory kept: {_RABBIT_H.dir}")
        for p in problems:
            print(p)
    else:
        wsp.rmtree(_RABBIT_H.dir)


class _NoRedis:
    """[redis] url must parse even when the broker is RabbitMQ; nothing
    listens there and nothing connects to it."""
    url = "redis://127.0.0.1:9"


class Stack:
    """One test's names on the shared RabbitMQ, its publisher and nodes."""

    def __init__(self, h, rb, fanout=False, routing="interest"):
        self.h = h
        self.rb = rb
        tag = uuid.uuid4().hex[:8]
        self.exchange = f"wspush.{tag}"
        self.fanout = f"wspush.fan.{tag}" if fanout else ""
        self.inbound = f"wspush.inbound.{tag}"
        self.events = f"wspush.events.{tag}"
        self.routing = routing
        self.nodes = []
        self._conn = None
        self._ch = None

    def amqp_conf(self, extra=None):
        return wsp.merge({
            "broker": {"kind": "amqp", "routing": self.routing},
            "amqp": {"url": self.rb.url, "exchange": self.exchange,
                     "fanout_exchange": self.fanout or None,
                     "inbound_queue": self.inbound,
                     "events_exchange": self.events},
        }, extra)

    def node(self, name, workers=2, conf=None, start=True):
        n = AmqpNode(self.h, name, self, workers=workers, conf=conf)
        self.nodes.append(n)
        if start:
            n.start()
        return n

    # -- publishing (pika, one blocking connection per stack)

    def channel(self):
        if self._ch is None or self._ch.is_closed or self._conn.is_closed:
            self._conn = rabbit.pika_conn(self.rb.url)
            self._ch = self._conn.channel()
        return self._ch

    def reset_channel(self):
        try:
            if self._conn is not None and self._conn.is_open:
                self._conn.close()
        except Exception:
            pass
        self._conn = self._ch = None

    def publish(self, key, body, exchange=None, headers=None):
        """basic.publish on the direct exchange (or exchange) with routing
        key key; body str or bytes."""
        if isinstance(body, str):
            body = body.encode()
        props = pika.BasicProperties(headers=headers) if headers else None
        self.channel().basic_publish(
            self.exchange if exchange is None else exchange, key, body,
            props)

    def publish_fanout(self, body, to=None, headers=None):
        hs = dict(headers or {})
        if to is not None:
            hs["wspush-to"] = to
        self.publish("", body, exchange=self.fanout, headers=hs or None)

    def get_all(self, queue, limit=10000):
        """Every message now in queue (basic.get, acked): [(props, body)]."""
        out = []
        ch = self.channel()
        for _ in range(limit):
            m, props, body = ch.basic_get(queue, auto_ack=True)
            if m is None:
                break
            out.append((props, body))
        return out

    def events_queue(self):
        """A queue bound to the events exchange (declared by the first
        node); returns its name."""
        ch = self.channel()
        q = ch.queue_declare("", exclusive=True).method.queue
        ch.queue_bind(q, self.events)
        return q

    def close(self):
        self.reset_channel()


class AmqpNode(wsp.Node):
    def __init__(self, h, name, stack, workers=2, conf=None):
        self.stack = stack
        super().__init__(h, name, _NoRedis(), workers=workers,
                         conf=stack.amqp_conf(conf))

    def wait_attached(self):
        """/healthz of the bridge says 200 (the broker is up and every
        worker attached)."""
        def ok():
            st, _ = wsp.http_get(self.metrics_port, "/healthz", timeout=2)
            return st == 200
        wsp.wait_until(ok, 20, f"{self.bridge.name} /healthz 200",
                       check=self.check_running, interval=0.05)

    def bridge_log(self):
        with open(self.bridge.err, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def metrics(self):
        st, body = wsp.http_get(self.metrics_port, "/metrics")
        if st != 200:
            raise wsp.HarnessError(f"/metrics: {st} {body[:200]!r}")
        return body.decode()


def metric(text, name, labels=None):
    """The value of one Prometheus sample (labels: a dict that must be a
    subset of the sample's labels); None if absent."""
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        head, _, val = line.rpartition(" ")
        n, _, lab = head.partition("{")
        if n != name:
            continue
        got = {}
        for part in lab.rstrip("}").split(","):
            if "=" in part:
                k, _, v = part.partition("=")
                got[k] = v.strip('"')
        if all(got.get(k) == v for k, v in (labels or {}).items()):
            return float(val)
    return None


def fence(stack, clients, timeout=5):
    """Publishes a unique marker to `all` (the direct exchange, or the
    fanout one in broadcast routing) and returns, per client, the frames
    it received before the marker (wsp.norm'ed)."""
    token = uuid.uuid4().hex
    payload = json.dumps({"fence": token})
    if stack.routing == "broadcast":
        stack.publish_fanout(payload)
    else:
        stack.publish("all", payload)

    def is_fence(d):
        if isinstance(d, dict):
            return (d.get("op") == "msg" and d.get("to") == "all"
                    and d.get("data") == {"fence": token})
        return d == payload

    return [[wsp.norm(f) for f in c.until(is_fence, timeout)]
            for c in clients]


def make_stack(h, **kw):
    """A Stack on the shared RabbitMQ (see Stack)."""
    return Stack(h, rabbit_server(), **kw)


@pytest.fixture
def stack(h):
    """A fixture: make_stack(h) with the defaults, closed after the test.
    A test module takes it with `stack = amqp_stack.stack`."""
    s = make_stack(h)
    yield s
    s.close()


def healthz(node):
    """The status of the node bridge's GET /healthz."""
    return wsp.http_get(node.metrics_port, "/healthz", timeout=2)[0]


def find_key(obj, name):
    """The first value under key name anywhere in a decoded JSON document
    (stats replies nest the broker's figures), or None."""
    if isinstance(obj, dict):
        if name in obj:
            return obj[name]
        for v in obj.values():
            r = find_key(v, name)
            if r is not None:
                return r
    elif isinstance(obj, list):
        for v in obj:
            r = find_key(v, name)
            if r is not None:
                return r
    return None


def restart_publisher_after(stack, fn):
    """Runs fn (which stops or restarts the broker) and drops the stack's
    publishing connection, which does not survive it."""
    stack.reset_channel()
    try:
        fn()
    finally:
        stack.reset_channel()
