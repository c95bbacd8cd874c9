"""Every request that carries a `ref` gets exactly one reply with that ref,
in the order the requests were made, and the final state of a channel is
the one its last request asked for, even when the requests race with the
node's subscription at Redis (a `subscribe` is answered only once Redis
confirmed it, so the replies of the requests sent behind it must wait)."""

import contextlib
import os
import random
import signal
import time

import wsp

CHURN_CLIENTS = 6
CHURN_REQUESTS = 300  # per client
CHURN_CHANNELS = 4  # per client's pool; pools overlap between clients


def send_all(c, reqs):
    for r in reqs:
        c.send_json(r)


@contextlib.contextmanager
def bridge_paused(node):
    """Holds the node's bridge (SIGSTOP) while the body sends requests, so
    that the worker handles them all before any ACK can come back: the
    race these tests are about happens every time instead of sometimes.
    Well under the workers' bus-silence limit (3 heartbeats of 200 ms)."""
    pid = node.bridge.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
        time.sleep(0.2)  # the worker reads what was sent meanwhile
    finally:
        os.kill(pid, signal.SIGCONT)


def replies(c, n, timeout=10):
    """The next n frames, reduced to the protocol's fields; fails if fewer
    arrive within timeout."""
    got = c.collect(count=n, quiet=wsp.T(timeout), timeout=timeout)
    assert len(got) == n, f"{len(got)} of {n} replies: {got[-5:]!r}"
    return [wsp.norm(f) for f in got]


def expected(reqs, subscribed=None):
    """The replies a node that handles reqs one at a time gives, and the
    channels subscribed at the end."""
    subs = set(subscribed or ())
    out = []
    for r in reqs:
        ch, ref = r.get("channel"), r["ref"]
        if r["op"] == "subscribe":
            subs.add(ch)
            out.append({"op": "subscribed", "channel": ch, "ref": ref})
        elif r["op"] == "unsubscribe":
            if ch in subs:
                subs.discard(ch)
                out.append({"op": "unsubscribed", "channel": ch, "ref": ref})
            else:
                out.append({"op": "error", "code": "not_subscribed",
                            "ref": ref})
        else:
            out.append({"op": "pong", "ref": ref})
    return out, subs


def check_final_state(cl, clients, channels, subscribed):
    """One message on each channel reaches each client of clients exactly
    for the channels subscribed[i] it is left subscribed to."""
    for ch in channels:
        cl.publish(f"channel:{ch}", f"final-{ch}")
    for c, frames, subs in zip(clients, cl.fence(clients), subscribed):
        got = sorted(f["to"] for f in frames if f.get("op") == "msg"
                     and f["to"].startswith("channel:"))
        assert got == sorted(f"channel:{ch}" for ch in subs), (c, frames)


def test_subscribe_then_unsubscribe_sent_together(cluster):
    c = cluster.a.connect(wsp.uid("ro"))
    ch = wsp.uid("ro-su")
    reqs = [{"op": "subscribe", "channel": ch, "ref": 1},
            {"op": "unsubscribe", "channel": ch, "ref": 2}]
    with bridge_paused(cluster.a):
        send_all(c, reqs)
    want, subs = expected(reqs)
    assert replies(c, 2) == want
    check_final_state(cluster, [c], [ch], [subs])
    rch = f"{wsp.PREFIX}:channel:{ch}"
    wsp.wait_until(lambda: wsp.numsub(cluster.r, rch) == 0, 10,
                   "the node's interest dropped")


def test_two_subscribes_of_one_channel_get_two_replies(cluster):
    c = cluster.a.connect(wsp.uid("ro"))
    ch = wsp.uid("ro-ss")
    reqs = [{"op": "subscribe", "channel": ch, "ref": "a"},
            {"op": "subscribe", "channel": ch, "ref": "b"}]
    with bridge_paused(cluster.a):
        send_all(c, reqs)
    want, subs = expected(reqs)
    assert replies(c, 2) == want
    check_final_state(cluster, [c], [ch], [subs])


def test_unsubscribe_then_subscribe_leaves_it_subscribed(cluster):
    c = cluster.a.connect(wsp.uid("ro"))
    ch = wsp.uid("ro-us")
    assert c.request({"op": "subscribe", "channel": ch, "ref": 0}) == \
        {"op": "subscribed", "channel": ch, "ref": 0}
    reqs = [{"op": "unsubscribe", "channel": ch, "ref": 1},
            {"op": "subscribe", "channel": ch, "ref": 2},
            {"op": "unsubscribe", "channel": ch, "ref": 3},
            {"op": "subscribe", "channel": ch, "ref": 4}]
    with bridge_paused(cluster.a):
        send_all(c, reqs)
    want, subs = expected(reqs, {ch})
    assert replies(c, 4) == want
    check_final_state(cluster, [c], [ch], [subs])


def test_replies_behind_a_pending_subscribe_wait_for_it(cluster):
    """A ping or a subscribe of an already active channel sent behind the
    subscribe of a new channel is answered after it."""
    c = cluster.a.connect(wsp.uid("ro"))
    old, new = wsp.uid("ro-old"), wsp.uid("ro-new")
    assert c.request({"op": "subscribe", "channel": old, "ref": 0}) == \
        {"op": "subscribed", "channel": old, "ref": 0}
    reqs = [{"op": "subscribe", "channel": new, "ref": 1},
            {"op": "ping", "ref": 2},
            {"op": "unsubscribe", "channel": old, "ref": 3},
            {"op": "subscribe", "channel": old, "ref": 4},
            {"op": "unsubscribe", "channel": "never-" + new, "ref": 5}]
    with bridge_paused(cluster.a):
        send_all(c, reqs)
    want, subs = expected(reqs, {old})
    assert replies(c, len(reqs)) == want
    check_final_state(cluster, [c], [old, new], [subs])


def test_churn_every_ref_answered_once_in_order(h):
    """Several clients toggle overlapping channels as fast as they can:
    every request is answered once, in order, with the reply a one-at-a-
    time node would give, and each client ends subscribed to exactly what
    its last requests asked for."""
    cl = wsp.Cluster(h, nodes=1, workers=2, conf={"gateway": {
        "rate_limit_per_s": 1000000, "rate_burst": 1000000,
        "max_subscriptions": 1000}})
    rng = random.Random(16)
    base = wsp.uid("churn")
    pool = [f"{base}-{i}" for i in range(CHURN_CHANNELS + 2)]
    clients = [cl.a.connect(wsp.uid("churn")) for _ in range(CHURN_CLIENTS)]
    plans = []
    for k, c in enumerate(clients):
        mine = pool[k % 3:k % 3 + CHURN_CHANNELS]
        reqs = []
        for i in range(CHURN_REQUESTS):
            op = rng.choice(["subscribe", "subscribe", "unsubscribe",
                             "unsubscribe", "ping"])
            r = {"op": op, "ref": i}
            if op != "ping":
                r["channel"] = rng.choice(mine)
            reqs.append(r)
        plans.append((c, mine, reqs))
    for c, _, reqs in plans:
        send_all(c, reqs)
    finals = []
    for c, mine, reqs in plans:
        want, subs = expected(reqs)
        got = replies(c, len(reqs), timeout=20)
        refs = [g.get("ref") for g in got]
        assert refs == list(range(len(reqs))), \
            f"{c}: refs out of order or missing: {refs[:40]}"
        for i, (g, w) in enumerate(zip(got, want)):
            assert g == w, (c, i, reqs[i], g, w)
        finals.append(subs)
    check_final_state(cl, clients, pool, finals)
