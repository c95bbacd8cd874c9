"""Sharded pub/sub on a private Redis Cluster (redis_cluster.py) through
the bridge's own modules (tests/tools/resp_probe: resp_conn +
cluster_slots): the slot map read from CLUSTER SHARDS and CLUSTER SLOTS
matches the cluster; SSUBSCRIBE on each shard's master gets exactly its
channels' messages in order; the wrong master answers MOVED with the
owner; a slot moved away ends the subscription with a sunsubscribe push
and the new owner serves it; a killed master's replica takes over."""

import pytest

import wsp
from redis_cluster import Probe, RedisCluster


@pytest.fixture
def rc3(h):
    return RedisCluster(h, masters=3).start()


def shard_probes(h, rc):
    """One pub/sub probe per master, {port: probe}."""
    out = {}
    for port in rc.masters():
        p = Probe(h, "127.0.0.1", port, pubsub=True, name=f"sub{port}",
                  backoff="50,200").start()
        p.wait_state(True)
        out[port] = p
    return out


def test_slot_map_from_shards_and_slots_matches_the_cluster(h, rc3):
    p = Probe(h, "127.0.0.1", rc3.nodes[1].port).start()
    p.wait_state(True)
    truth = rc3.slots()
    for which in ("map", "slots"):
        m = p.map(which)
        assert m["uncovered"] == 0, m
        got = sorted((s["port"], s["slots"]) for s in m["shards"])
        want = sorted((port, hi - lo + 1) for lo, hi, port in truth)
        assert got == want, (which, m)
        assert all(s["host"] == "127.0.0.1" and len(s["id"]) == 40
                   for s in m["shards"]), m
    names = [f"wspush:user:{i}" for i in range(40)] + ["{tag}a", "{tag}b"]
    for o in p.owners(*names):
        assert o["slot"] == rc3.keyslot(o["name"]), o
        assert o["port"] == rc3.owner(o["name"]), o
    p.quit()


def test_each_shard_delivers_its_channels_exactly_once_in_order(h, rc3):
    probes = shard_probes(h, rc3)
    names = rc3.names_on_each_master("wspush:channel:c", per_master=3)
    for port, chans in names.items():
        for c in chans:
            # One channel per SSUBSCRIBE: a cluster refuses channels of
            # different slots in one command (CROSSSLOT).
            assert probes[port].call("SSUBSCRIBE", c)[0] == "ssubscribe"
    every = [c for chans in names.values() for c in chans]
    for i in range(60):
        c = every[i % len(every)]
        assert rc3.spublish(c, f"m{i}") == 1
    for port, chans in names.items():
        want = [["smessage", every[i % len(every)], f"m{i}"]
                for i in range(60) if every[i % len(every)] in chans]
        got = [probes[port].push(lambda r: r[0] == "smessage")
               for _ in want]
        assert got == want, port
        # Nothing else: a marker on the same link arrives next.
        probes[port].call("SSUBSCRIBE", chans[0])
        rc3.spublish(chans[0], "fence")
        assert probes[port].push(lambda r: r[0] == "smessage") == \
            ["smessage", chans[0], "fence"]
    for p in probes.values():
        p.quit()


def test_ssubscribe_on_the_wrong_master_is_moved_to_the_owner(h, rc3):
    masters = rc3.masters()
    ch = "wspush:user:42"
    owner = rc3.owner(ch)
    wrong = [m for m in masters if m != owner][0]
    p = Probe(h, "127.0.0.1", wrong, pubsub=True).start()
    p.wait_state(True)
    err = p.call("SSUBSCRIBE", ch)
    assert err["redirect"] == {"kind": "moved", "slot": rc3.keyslot(ch),
                               "host": "127.0.0.1", "port": owner}, err
    # CROSSSLOT: channels of two slots in one command.
    a, b = "wspush:user:1", "wspush:user:2"
    assert rc3.keyslot(a) != rc3.keyslot(b)
    err = p.call("SSUBSCRIBE", a, b)
    assert err["error"].startswith("CROSSSLOT") or "redirect" in err, err
    # The link stays usable (and is not subscribed: both were refused).
    assert p.call("PING") == {"status": "PONG"}
    p.quit()


def test_slot_migration_ends_the_subscription_and_the_new_owner_serves(h,
                                                                       rc3):
    ch = "wspush:channel:moving"
    slot = rc3.keyslot(ch)
    src = rc3.owner(ch)
    dst = [m for m in rc3.masters() if m != src][0]
    probes = shard_probes(h, rc3)
    assert probes[src].call("SSUBSCRIBE", ch) == ["ssubscribe", ch, 1]
    rc3.spublish(ch, "before")
    assert probes[src].push(lambda r: r[0] == "smessage") == \
        ["smessage", ch, "before"]

    assert rc3.move_slot(slot, dst) == src
    # Redis tells the subscriber by itself that the channel is gone.
    assert probes[src].push(lambda r: r[0] == "sunsubscribe",
                            what="sunsubscribe after the move") == \
        ["sunsubscribe", ch, 0]
    # Asking the old owner now gives MOVED to the new one.
    err = probes[src].call("SSUBSCRIBE", ch)
    assert err["redirect"]["port"] == dst, err
    assert probes[dst].call("SSUBSCRIBE", ch) == ["ssubscribe", ch, 1]
    for i in range(5):
        assert rc3.spublish(ch, f"after{i}") == 1
    assert [probes[dst].push(lambda r: r[0] == "smessage")
            for _ in range(5)] == [["smessage", ch, f"after{i}"]
                                   for i in range(5)]
    for p in probes.values():
        p.quit()


def test_reshard_with_redis_cli_moves_slots_the_map_then_shows(h, rc3):
    src, dst = rc3.masters()[0], rc3.masters()[1]
    p = Probe(h, "127.0.0.1", dst).start()
    p.wait_state(True)
    before = {s["port"]: s["slots"] for s in p.map()["shards"]}
    rc3.reshard(src, dst, count=10)
    after = {s["port"]: s["slots"] for s in p.map()["shards"]}
    assert after[src] == before[src] - 10 and \
        after[dst] == before[dst] + 10, (before, after)
    p.quit()


def test_failover_a_replica_takes_over_and_serves_the_channel(h):
    rc = RedisCluster(h, masters=3, replicas=1).start()
    ch = "wspush:user:failover"
    old = rc.owner(ch)
    probes = shard_probes(h, rc)
    assert probes[old].call("SSUBSCRIBE", ch) == ["ssubscribe", ch, 1]
    other = [m for m in rc.masters() if m != old][0]
    other_ch = rc.names_on_each_master("wspush:user:o")[other][0]
    assert probes[other].call("SSUBSCRIBE", other_ch)[0] == "ssubscribe"

    rc.kill_master(old)
    # The dead master's link goes down (and keeps retrying); the others
    # are untouched.
    probes[old].wait_state(False)
    new = rc.owner(ch)
    assert new != old and new in [n.port for n in rc.nodes]
    q = Probe(h, "127.0.0.1", new, pubsub=True, name="sub-new").start()
    q.wait_state(True)
    m = q.map()
    assert m["uncovered"] == 0 and any(s["port"] == new for s in m["shards"])
    assert q.call("SSUBSCRIBE", ch) == ["ssubscribe", ch, 1]
    assert rc.spublish(ch, "after failover") == 1
    assert q.push(lambda r: r[0] == "smessage") == \
        ["smessage", ch, "after failover"]
    assert rc.spublish(other_ch, "other") == 1
    assert probes[other].push(lambda r: r[0] == "smessage") == \
        ["smessage", other_ch, "other"]
    assert probes[other].stats()["disconnects"] == 0
    q.quit()
    probes[other].quit()
    probes[old].quit()
    for port, p in probes.items():
        if port not in (old, other):
            p.quit()
