"""The bridge routes each bus message only to the workers that hold a
target for it: every worker slot has a bus stream of its own, so a worker
without a target for a message never receives it (its `msgs_in` counter
does not move). A user-targeted message reaches the one worker that holds
the user, a channel message exactly the workers with subscribers, `all`
every worker; a message for an address nobody on the node holds reaches
none.

Counting: each phase ends with one `all` marker. Within one slot's stream
messages stay in the order the bridge sent them, so the report that
counts a worker's marker also counts everything routed to it before; a
misrouted message therefore shows as one too many in that report.
"""

import json

import wsp

WORKERS = 3


def one_user_per_worker(node, workers=WORKERS):
    """Distinct users, one connection each, until every worker slot holds
    one. Returns ({slot: client}, every client opened)."""
    by_slot, opened = {}, []
    while len(by_slot) < workers:
        if len(opened) >= 96:
            raise wsp.HarnessError(f"{len(opened)} users landed on workers "
                                   f"{sorted(by_slot)} only")
        batch = node.connect_many([wsp.uid("rt") for _ in range(2)])
        opened += batch
        for cl in batch:
            by_slot.setdefault(cl.worker, cl)
    return by_slot, opened


def msgs_in(st):
    return {w["slot"]: w["counters"].get("msgs_in", 0) for w in st["workers"]}


def settle(node, want, what, workers=WORKERS):
    """Waits for a report where every worker's msgs_in reached want[slot];
    returns that report's figures."""
    def ok():
        got = msgs_in(node.stats())
        if len(got) == workers and all(got.get(s, 0) >= n
                                       for s, n in want.items()):
            return got
        return None
    return wsp.wait_until(ok, 15, what, check=node.check_running,
                          interval=0.1)


def marker(c, clients, tag):
    """One `all` message; every client gets it."""
    c.publish("all", json.dumps({"marker": tag}))
    for cl in clients:
        got = cl.until(lambda f: isinstance(f, dict) and
                       f.get("data") == {"marker": tag}, timeout=10)
        assert got is not None, cl


def test_messages_reach_only_the_workers_that_hold_a_target(h):
    c = wsp.Cluster(h, nodes=1, workers=WORKERS)
    node = c.a
    node.wait_attached()
    by_slot, everyone = one_user_per_worker(node)
    slots = sorted(by_slot)

    marker(c, everyone, "start")
    base = settle(node, {s: 1 for s in slots}, "the start marker")
    assert all(base[s] == 1 for s in slots), base

    # One user per worker: each user's messages reach its worker only.
    sent = {}
    for i, s in enumerate(slots):
        cl = by_slot[s]
        n = 5 + i
        for k in range(n):
            c.publish(f"user:{cl.welcome['user']}", json.dumps({"k": k}))
        got = cl.collect(count=n, timeout=10)
        assert wsp.datas(got) == [{"k": k} for k in range(n)], (cl, got)
        sent[s] = n
    # Nobody on the node holds these: they reach no worker.
    c.publish(f"user:{wsp.uid('nobody')}", "x")
    c.publish(f"channel:{wsp.uid('nochan')}", "x")
    marker(c, everyone, "users")
    want = {s: base[s] + sent[s] + 1 for s in slots}
    got = settle(node, want, "the user messages and the marker")
    assert got == want, (got, want)

    # A channel with subscribers on two of the three workers.
    ch = wsp.uid("rtch")
    subs = slots[:2]
    for i, s in enumerate(subs):
        assert by_slot[s].request(
            {"op": "subscribe", "channel": ch, "ref": i}) == \
            {"op": "subscribed", "channel": ch, "ref": i}
    for k in range(4):
        c.publish(f"channel:{ch}", json.dumps({"ch": k}))
    for s in subs:
        got_frames = by_slot[s].collect(count=4, timeout=10)
        assert wsp.datas(got_frames) == [{"ch": k} for k in range(4)]
    marker(c, everyone, "channel")
    want2 = {s: want[s] + (4 if s in subs else 0) + 1 for s in slots}
    got = settle(node, want2, "the channel messages and the marker")
    assert got == want2, (got, want2)

    # No message was lost on any stream (each has its own sequence).
    st = node.stats()
    assert wsp.worker_total(st, "drop_bus_gap") == 0
    assert st["bridge"]["drops"]["bus_send"] == 0


def test_each_slot_stream_numbers_its_own_messages(h):
    """Messages for one worker do not consume sequence numbers of the
    others: a worker that received nothing for a while sees no gap when
    the next heartbeat or message arrives."""
    c = wsp.Cluster(h, nodes=1, workers=2)
    node = c.a
    node.wait_attached()
    by_slot, everyone = one_user_per_worker(node, workers=2)
    one, other = sorted(by_slot)
    cl = by_slot[one]
    for k in range(50):
        c.publish(f"user:{cl.welcome['user']}", json.dumps({"k": k}))
    assert len(cl.collect(count=50, timeout=10)) == 50
    # With one sequence shared by all streams the marker would come to
    # the other worker 50 numbers after its last one: a gap of 50.
    marker(c, everyone, "seq")
    got = settle(node, {one: 51, other: 1}, "the marker on both workers",
                 workers=2)
    assert got == {one: 51, other: 1}, got
    st = node.stats()
    assert wsp.worker_total(st, "drop_bus_gap") == 0, \
        [w["counters"] for w in st["workers"]]
