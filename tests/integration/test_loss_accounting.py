"""Every bus message a worker takes is accounted for, per
target connection, in `wspushctl stats`:

    bus_targets + replies = frames_out + drop_queue_full + drop_slow_closed
                            + drop_too_large + drop_closed + queue_frames

(bus_targets: MSG envelopes x their live target connections; replies: the
protocol frames queued (welcome, subscribed ...); queue_frames: frames
queued now). Each worker's COUNTERS report is one snapshot, so the
equality holds exactly in every report of every worker. The mix: a normal
client, two stalled clients under drop_oldest (queue_full drops, frames
left queued), an oversize message (too_large), user messages, and one
stalled client that disconnects with a full queue (closed).
"""

import json
import time

import wsp

MAX_QUEUED = 64 * 1024
MAX_MSG = 8192
BURSTS, BURST = 30, 40  # 1,200 x 1 KiB: far beyond a stalled queue
N_USER = 5

TERMS_IN = ("bus_targets", "replies")
TERMS_OUT = ("frames_out", "drop_queue_full", "drop_slow_closed",
             "drop_too_large", "drop_closed", "queue_frames")


def check_invariant(st):
    for w in st["workers"]:
        k = w["counters"]
        lhs = sum(k[t] for t in TERMS_IN)
        rhs = sum(k[t] for t in TERMS_OUT)
        assert lhs == rhs, (f"worker {w['slot']}: "
                            f"{' + '.join(f'{t}={k[t]}' for t in TERMS_IN)} = "
                            f"{lhs} != {rhs} = "
                            f"{' + '.join(f'{t}={k[t]}' for t in TERMS_OUT)}")


def stalled_client(node, user, ch):
    s = wsp.RawWs(node.port, f"/ws?user={user}", rcvbuf=4096)
    op, p = s.frame()
    assert op == 1 and json.loads(p)["op"] == "welcome", p
    s.send_text(json.dumps({"op": "subscribe", "channel": ch, "ref": 1}))
    op, p = s.frame()
    assert json.loads(p) == {"op": "subscribed", "channel": ch, "ref": 1}, p
    return s


def test_bus_messages_are_delivered_or_dropped_by_reason(h):
    c = wsp.Cluster(h, nodes=1, workers=2, conf={"gateway": {
        "slow_client": "drop_oldest", "max_queued_bytes": MAX_QUEUED,
        "max_message_bytes": MAX_MSG}})
    node = c.a
    ch, un = wsp.uid("acc"), wsp.uid("accu")
    normal = node.connect(un)
    assert normal.request({"op": "subscribe", "channel": ch, "ref": 1}) == \
        {"op": "subscribed", "channel": ch, "ref": 1}
    stalled_a = stalled_client(node, wsp.uid("acca"), ch)
    stalled_b = stalled_client(node, wsp.uid("accb"), ch)
    base = wsp.wait_until(
        lambda: (lambda st: st if len(st["workers"]) == 2 and all(
            w["counters"] for w in st["workers"]) and wsp.worker_total(
            st, "connections") == 3 else None)(node.stats()),
        10, "stats to show the three connections")
    check_invariant(base)

    body = "x" * 1018
    for b in range(BURSTS):
        p = c.r.pipeline(transaction=False)
        for i in range(BURST):
            p.publish(f"{wsp.PREFIX}:channel:{ch}", f"{b * BURST + i:06d}"
                      + body)
        p.execute()
        got = normal.collect(count=BURST, timeout=10)
        assert len(wsp.msgs(got)) == BURST, f"burst {b}: {len(got)} frames"
        if b % 10 == 0:
            check_invariant(node.stats())  # mid-flight reports too
    c.publish(f"channel:{ch}", "y" * (MAX_MSG + 1))  # too large
    for i in range(N_USER):
        c.publish(f"user:{un}", json.dumps({"user": i}))
    for f in c.fence([normal]):
        assert wsp.datas(f) == [{"user": i} for i in range(N_USER)], f

    # Three targets per channel message, one per user message, three
    # for the fence (on `all`).
    want = 3 * (BURSTS * BURST + 1) + N_USER + 3

    def after(st, name):
        return wsp.worker_total(st, name) - wsp.worker_total(base, name)
    mid = wsp.wait_until(lambda: (lambda st: st if after(
        st, "bus_targets") == want else None)(node.stats()), 10,
        f"bus_targets to grow by {want}")
    print("with two stalled clients:", {t: after(mid, t)
                                         for t in TERMS_IN + TERMS_OUT})
    check_invariant(mid)
    assert after(mid, "drop_too_large") == 3
    assert after(mid, "drop_queue_full") > 0
    assert wsp.worker_total(mid, "queue_frames") > 0
    assert after(mid, "drop_closed") == 0
    assert after(mid, "drop_slow_closed") == 0

    # B leaves with a full queue: its frames are counted, not lost.
    queued_before = wsp.worker_total(mid, "queue_frames")
    stalled_b.close()
    node.wait_counter("connections", 2, what="the stalled client to be gone")
    # A reads again: its queue drains, up to a second fence.
    token = wsp.uid("fence")
    c.publish("all", json.dumps({"fence": token}))
    seqs = []
    deadline = time.monotonic() + wsp.T(10)
    while True:
        assert time.monotonic() < deadline, "stalled client A: no fence"
        op, p = stalled_a.frame(10)
        if op != 1:
            continue
        d = json.loads(p)
        if d.get("data") == {"fence": token}:
            break
        if d.get("to") == f"channel:{ch}":
            seqs.append(int(d["data"][:6]))
    assert seqs == sorted(seqs) and seqs[-1] == BURSTS * BURST - 1, seqs[-5:]
    normal.collect(count=1)

    end = wsp.wait_until(lambda: (lambda st: st if after(
        st, "bus_targets") == want + 2 and wsp.worker_total(st, "queue_frames") == 0
        else None)(node.stats()), 10, "the queues to drain")
    print("after B left and A drained:", {t: after(end, t)
                                          for t in TERMS_IN + TERMS_OUT})
    check_invariant(end)
    assert after(end, "drop_closed") > 0
    assert after(end, "drop_closed") <= queued_before
    assert after(end, "drop_too_large") == 3
    # Every drop is by one of the two stalled clients: the normal client
    # got all it was sent (checked above), in order.
    stalled_a.close()
