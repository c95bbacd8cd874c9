"""SIGHUP rolling reload with 50 connected clients: never all of them
disconnected at once; messages published during the reload reach every
client that stayed connected; a broken config is refused and changes
nothing."""

import json
import signal
import time

import wsp

N = 50
DRAIN_S = 2


def open_clients(node, n):
    out = []
    for _ in range(0, n, 10):
        out += node.connect_many([wsp.uid("rl") for _ in range(10)])
    return out


def test_sighup_rolls_workers_without_dropping_everyone(h):
    c = wsp.Cluster(h, nodes=1, workers=2)
    node = c.a
    # (client, index of the first message it must get): clients closed by
    # a draining worker reconnect at once, as real ones do.
    conns = [(cl, 0) for cl in open_clients(node, N)]
    gw = node.gateway
    old = set(gw.workers())

    node.sections["gateway"]["max_subscriptions"] = 16  # a real change
    wsp.write_conf(node.conf, node.sections)
    gw.killed_workers |= old  # old workers exit on purpose
    gw.signal(signal.SIGHUP)

    sent, reconnects = [], 0
    deadline = time.monotonic() + wsp.T(DRAIN_S * 2 + 8)
    while time.monotonic() < deadline:
        n_open = sum(cl.is_open() for cl, _ in conns)
        assert n_open > 0, "every client was disconnected at once"
        closed = [e for e in conns if not e[0].is_open()]
        if closed:
            conns = [e for e in conns if e[0].is_open()]
            fresh = node.connect_many([wsp.uid("rl") for _ in closed])
            conns += [(cl, len(sent)) for cl in fresh]
            reconnects += len(fresh)
        payload = {"reload": len(sent)}
        c.publish("all", json.dumps(payload))
        sent.append(payload)
        live = set(gw.workers())
        if not (live & old) and len(live) >= node.workers:
            break
        time.sleep(0.1)
    live = set(gw.workers())
    assert not (live & old), f"old workers {live & old} still running"
    assert reconnects > 0, "the reload drained nobody"

    stayed = [(cl, i) for cl, i in conns if cl.is_open()]
    assert len(stayed) == len(conns), "clients lost after the reload"
    frames = c.fence([cl for cl, _ in stayed], timeout=10)
    for (cl, i), fr in zip(stayed, frames):
        got = [d for d in wsp.datas(fr) if isinstance(d, dict)
               and "reload" in d]
        assert got == sent[i:], (cl, i, len(got), len(sent))


def test_sighup_with_broken_config_changes_nothing(h):
    c = wsp.Cluster(h, nodes=1, workers=2,
                    conf={"gateway": {"max_subscriptions": 2}})
    node = c.a
    clients = open_clients(node, 20)
    gw = node.gateway
    before = set(gw.workers())
    # A real change (more subscriptions) next to a key that does not exist:
    # the whole file is refused, the change included.
    node.sections["gateway"]["max_subscriptions"] = 16
    wsp.write_conf(node.conf, node.sections)
    with open(node.conf, "a") as f:
        f.write("\n[gateway]\nno_such_key = 1\n")
    gw.signal(signal.SIGHUP)
    wsp.wait_until(lambda: "keeping the running configuration"
                   in open(gw.err).read(), 10,
                   "the gateway to refuse the broken configuration",
                   check=gw.check_running)
    # The refusal ends the reload: nothing of it can follow.
    assert set(gw.workers()) == before
    assert "reload: starting" not in open(gw.err).read()
    closed = [cl for cl in clients if not cl.is_open()]
    assert not closed, f"{len(closed)} clients were disconnected"
    # Every client still receives, and nothing else came.
    frames = c.fence(clients, timeout=10)
    assert frames == [[] for _ in clients]
    # The old limit still holds, on a new connection too.
    for cl in clients[:1] + [node.connect(wsp.uid("rl"))]:
        for i in range(2):
            assert cl.request({"op": "subscribe", "channel": f"k{i}",
                               "ref": i})["op"] == "subscribed"
        r = cl.request({"op": "subscribe", "channel": "k3", "ref": 3})
        assert (r["op"], r.get("code")) == ("error",
                                            "too_many_subscriptions"), r
    gw.check_running()
