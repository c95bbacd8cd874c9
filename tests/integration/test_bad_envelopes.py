"""Bad input on the node-internal side: envelopes that are truncated,
of an unknown version or kind, or not msgpack at all, sent where only the
bridge and the workers should write (tests/tools/wsp_nngsend).

- Upstream (a PUSH on the bridge's up.ipc): the bridge drops and counts
  each (`drops.bad_upstream`), keeps reading after an unknown version or
  kind within the same nng message (the envelope after it is processed),
  and keeps serving its real workers.
- Bus (a PUB bound on each slot's bus<N>.ipc while the bridge is stopped, which the
  workers dial): the workers count `drop_bad_envelope`, skip the rest of a
  message after a truncated or malformed envelope but not after an
  unknown version, count sequence gaps (`drop_bus_gap`), keep their
  clients and deliver what is valid; then the real bridge starts again
  and deliveries resume for the same connections.
The envelope formats are in proto/PROTOCOL.md.
"""

import json
import os
import subprocess

import msgpack

import wsp

FAKE_SLOT, FAKE_GEN = 7, 4242


def pack(*a):
    return msgpack.packb(list(a), use_bin_type=True)


def nngsend(mode, url, msgs, peers=1, linger_ms=300, wait_ms=10000,
            background=False):
    argv = [wsp.binary("tests/tools/wsp_nngsend"), f"--{mode}", url,
            "--peers", str(peers), "--wait-ms", str(int(wait_ms * wsp.MULT)),
            "--linger-ms", str(linger_ms)] + [m.hex() for m in msgs]
    if background:
        return subprocess.Popen(argv, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    cp = subprocess.run(argv, capture_output=True, text=True,
                        timeout=wsp.T(30))
    wsp.check_tool_output(argv, cp)
    assert cp.returncode == 0, (cp.returncode, cp.stderr)
    return cp


def up(kind, *rest, slot=FAKE_SLOT, gen=FAKE_GEN, v=1):
    return pack(v, kind, slot, gen, 4242, *rest)


def test_bad_upstream_envelopes_are_counted_and_skipped(h):
    c = wsp.Cluster(h, nodes=1, workers=2)
    node = c.a
    u = wsp.uid("bu")
    clients = node.connect_spread(u)
    url = f"ipc://{node.runtime_dir}/up.ipc"
    counters = up(7, {"fake_counter": 17})
    bad = [
        # (what, nng message, envelopes counted as bad_upstream)
        ("truncated", counters[:-3], 1),
        ("unknown version", up(7, {"x": 1}, v=2), 1),
        ("unknown kind", up(99, "x"), 1),
        ("not an array", msgpack.packb({"v": 1}), 1),
        ("mistyped slot", pack(1, 7, "seven", FAKE_GEN, 1, {}), 1),
        ("missing fields", pack(1, 4, FAKE_SLOT), 1),
        ("garbage", b"\xc1\xffgarbage\x00\x01", 1),
        ("a string", msgpack.packb("not an envelope"), 1),
        ("nil version", pack(None, 7, 1, 1, 1, {}), 1),
        ("empty message", b"", 0),
        # The rest of the message is skipped after a truncated one ...
        ("truncated then valid", counters[:-1] + counters, 1),
        ("huge array header", b"\xdd\xff\xff\xff\xff", 1),
    ]
    before = node.stats()["bridge"]["drops"]["bad_upstream"]
    nngsend("push", url, [m for _, m, _ in bad])
    want = before + sum(n for _, _, n in bad)
    wsp.wait_until(lambda: node.stats()["bridge"]["drops"]["bad_upstream"]
                   >= want, 10, f"bad_upstream to reach {want}",
                   check=node.check_running)
    st = node.stats()
    assert st["bridge"]["drops"]["bad_upstream"] == want, \
        (st["bridge"]["drops"], [w for w, _, _ in bad])
    assert not [w for w in st["workers"] if w["slot"] == FAKE_SLOT], \
        "an envelope of the fake worker was accepted"

    # ... but not after an unknown version: the COUNTERS behind it are
    # read (the bridge lists the sender until its pipe closes).
    p = nngsend("push", url, [up(7, {"x": 1}, v=3) + counters],
                linger_ms=int(8000 * wsp.MULT), background=True)
    try:
        def fake():
            for w in node.stats()["workers"]:
                if (w["slot"], w["gen"]) == (FAKE_SLOT, FAKE_GEN):
                    return w
            return None
        w = wsp.wait_until(fake, 10, "the envelope after an unknown "
                           "version to be processed", check=node.check_running)
        assert w["counters"] == {"fake_counter": 17}, w
        assert node.stats()["bridge"]["drops"]["bad_upstream"] == want + 1
    finally:
        p.terminate()
        p.wait(wsp.T(10))
    with open(node.bridge.err, "rb") as f:
        log = f.read()
    assert b"upstream envelope dropped" in log, "no log line for the drops"

    # The bridge and the workers still serve the clients.
    c.publish(f"user:{u}", json.dumps({"still": "working"}))
    for cl, frames in zip(clients, c.fence(clients)):
        assert wsp.datas(frames) == [{"still": "working"}], cl
    node.wait_bridge_healthz(200, 10)


def bus_msg(epoch, seq, to, data, v=1):
    return pack(v, 1, epoch, seq, to, 0, data, None, None, 0)


def test_bad_bus_envelopes_are_counted_and_workers_keep_serving(h):
    c = wsp.Cluster(h, nodes=1, workers=2)
    node = c.a
    u = wsp.uid("bb")
    clients = node.connect_spread(u)
    conns = [cl.conn for cl in clients]
    st0 = node.stats()
    bad0 = wsp.worker_total(st0, "drop_bad_envelope")
    gap0 = wsp.worker_total(st0, "drop_bus_gap")

    node.bridge.stop()
    epoch = int.from_bytes(os.urandom(8), "big") | 1

    def msg(seq, tag, v=1):
        return bus_msg(epoch, seq, "all", json.dumps({"fake": tag}).encode(),
                       v=v)
    good = msg(1, "first")
    sends = [
        # (what, nng message, bad envelopes counted per worker)
        ("truncated", good[:-4], 1),
        ("unknown version", msg(2, "v9", v=9), 1),
        ("not an array", msgpack.packb("hello"), 1),
        ("mistyped epoch", pack(1, 1, "e", 1, "all", 0, b"x", None, None,
                                0), 1),
        ("class out of range", pack(1, 1, epoch, 1, "all", 7, b"x", None,
                                    None, 0), 1),
        ("garbage", b"\xc1" + bytes(range(32)), 1),
        ("huge map header", b"\xdf\xff\xff\xff\xff", 1),
        ("empty message", b"", 0),
        # Unknown kinds are skipped silently (a newer bridge's).
        ("unknown kind", pack(1, 77, epoch, 1), 0),
        # After an unknown version the next envelope is read: delivered.
        ("unknown version, then valid", msg(3, "v8", v=8) + good, 1),
        # After a malformed one the rest of the message is skipped.
        ("malformed, then valid", b"\xc1" + msg(2, "skipped"), 1),
        # A gap: seq 1 then 5 loses 3; a heartbeat saying 7 loses 2 more.
        ("after a gap", msg(5, "fifth"), 0),
        ("heartbeat", pack(1, 2, epoch, 7, node.id, True), 0),
    ]
    # One bus stream per worker slot: the same sends on each.
    fakes = [nngsend("pub", f"ipc://{node.runtime_dir}/bus{slot}.ipc",
                     [m for _, m, _ in sends], peers=1, linger_ms=500,
                     background=True) for slot in (1, 2)]
    for p in fakes:
        out, err = p.communicate(timeout=wsp.T(30))
        assert p.returncode == 0, (p.returncode, err)
    for cl in clients:
        got = cl.collect(count=2, timeout=10)
        assert wsp.datas(got) == [{"fake": "first"}, {"fake": "fifth"}], \
            (cl, got)
        assert cl.is_open()

    node.start_bridge()
    wsp.publish_until_all_receive(lambda p: c.publish(f"user:{u}", p),
                                  clients, timeout=20,
                                  check=node.check_running,
                                  what="deliveries after the real bridge")
    c.publish(f"user:{u}", json.dumps({"after": "bridge"}))
    for cl, frames in zip(clients, c.fence(clients)):
        assert wsp.datas(wsp.not_probes(frames)) == [{"after": "bridge"}], cl
        assert cl.is_open()
    assert [cl.conn for cl in clients] == conns

    want_bad = bad0 + 2 * sum(n for _, _, n in sends)
    want_gap = gap0 + 2 * (3 + 2)
    st = wsp.wait_until(lambda: (lambda s: s if len(s["workers"]) == 2 and
                                 wsp.worker_total(s, "drop_bad_envelope") >= want_bad
                                 else None)(node.stats()), 10,
                        "the workers' counters after the restart")
    print({k: wsp.worker_total(st, k) for k in ("drop_bad_envelope", "drop_bus_gap",
                                      "msgs_in")})
    assert wsp.worker_total(st, "drop_bad_envelope") == want_bad, \
        [w["counters"]["drop_bad_envelope"] for w in st["workers"]]
    assert wsp.worker_total(st, "drop_bus_gap") == want_gap, \
        [w["counters"]["drop_bus_gap"] for w in st["workers"]]
    for w in st["workers"]:
        assert w["counters"]["drop_bad_envelope"] > 0, w
