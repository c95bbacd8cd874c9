"""Input coalescing (`[bridge] coalesce_ms`): under sustained traffic the
bridge reads its Redis subscriber connection at most once per window and
sends each worker what it read as one nng message, because every wakeup
and every nng message costs the bridge and the worker a fixed amount of
context switches whatever it carries. A message after a quiet spell is
read at once, and nothing is lost or reordered by the waiting.

The bridge counts the nng messages it sent as `bus_batches` and the
envelopes as `envelopes_published` (MSGs) in its stats.
"""

import json
import statistics
import time

import wsp


def bridge_figures(node):
    br = node.stats()["bridge"]
    return br["bus_batches"], br["envelopes_published"]


def test_sustained_messages_share_nng_messages(h):
    """100 messages to one user, one PUBLISH every ~2 ms, with a 20 ms
    window: about one nng message per window instead of one per message
    (without coalescing: one per message, ~100)."""
    c = wsp.Cluster(h, nodes=1, workers=1,
                    conf={"bridge": {"coalesce_ms": "20"}})
    node = c.a
    node.wait_attached()
    cl = node.connect(wsp.uid("batch"))
    user = cl.welcome["user"]
    c.publish(f"user:{user}", json.dumps({"k": -1}))  # route is warm
    assert cl.recv_json(timeout=5)["data"] == {"k": -1}
    time.sleep(0.1)
    batches0, msgs0 = bridge_figures(node)

    n = 100
    t0 = time.monotonic()
    for k in range(n):
        c.publish(f"user:{user}", json.dumps({"k": k}))
        time.sleep(0.002)
    elapsed = time.monotonic() - t0
    got = [f["data"]["k"] for f in cl.collect(count=n, timeout=10)]
    assert got == list(range(n)), got  # nothing lost, held out of order

    def settled():
        b, m = bridge_figures(node)
        return (b, m) if m - msgs0 >= n else None
    batches1, msgs1 = wsp.wait_until(settled, 5, "the bridge's counters")
    batches = batches1 - batches0
    # One batch per window, plus: the two reads before the flow counts as
    # dense, the last partial window, heartbeats (one a second, each a
    # batch of its own when it falls between reads) and slack for a
    # loaded machine. Without coalescing: one batch per message.
    windows = elapsed / 0.020
    assert batches <= windows + 2 * elapsed + 8, \
        (batches, msgs1 - msgs0, elapsed)
    assert batches <= n // 3, (batches, elapsed)


def test_a_message_after_a_quiet_spell_is_not_held(h):
    """With the widest window (50 ms), a message that follows a quiet
    spell goes at once: its delivery time is far below the window."""
    c = wsp.Cluster(h, nodes=1, workers=1,
                    conf={"bridge": {"coalesce_ms": "50"}})
    node = c.a
    node.wait_attached()
    cl = node.connect(wsp.uid("quiet"))
    user = cl.welcome["user"]
    took = []
    for k in range(7):
        time.sleep(0.3)  # longer than the window: the stream is idle
        t0 = time.monotonic()
        c.publish(f"user:{user}", json.dumps({"k": k}))
        assert cl.recv_json(timeout=5)["data"] == {"k": k}
        took.append(time.monotonic() - t0)
    assert statistics.median(took) < 0.030, took


def test_a_window_of_zero_sends_every_loop_pass(h):
    """coalesce_ms = 0: no holding; still in order and complete."""
    c = wsp.Cluster(h, nodes=1, workers=1,
                    conf={"bridge": {"coalesce_ms": "0"}})
    node = c.a
    node.wait_attached()
    cl = node.connect(wsp.uid("zero"))
    user = cl.welcome["user"]
    for k in range(50):
        c.publish(f"user:{user}", json.dumps({"k": k}))
    got = [f["data"]["k"] for f in cl.collect(count=50, timeout=10)]
    assert got == list(range(50)), got

