"""The bridge with [redis] cluster = on against a private Redis Cluster
(redis_cluster.py): users and channels spread over three shards reach
their clients exactly once and in order; a channel nobody on the node
wants never reaches it; a killed master's replica takes over and
deliveries resume without client reconnects; a migrated slot is
re-subscribed on its new owner; cluster = on against a plain Redis, or
with broadcast routing, stops the bridge at start naming the key."""

import json
import os
import subprocess
import uuid

import wsp
from redis_cluster import RedisCluster, by_address, shard_fence

CLUSTER_CONF = {"redis": {"cluster": "on"}}


class _Url:
    def __init__(self, url):
        self.url = url


def cluster_node(h, rc, name="a", workers=2, conf=None):
    seed = rc.nodes[0]
    node = wsp.Node(h, name, _Url(f"redis://127.0.0.1:{seed.port}"),
                    workers=workers, conf=wsp.merge(CLUSTER_CONF, conf))
    return node.start()


def sfence(rc, clients, addrs_of=None, timeout=20):
    """shard_fence() over each client's addresses (default: its user)."""
    if addrs_of is None:
        def addrs_of(c):
            return [f"user:{c.welcome['user']}"]
    return shard_fence(lambda a, p: rc.spublish(f"{wsp.PREFIX}:{a}", p),
                       clients, addrs_of, timeout)


def msg(to, data):
    return {"op": "msg", "to": to, "data": data}


def bridge_stats(node):
    return node.stats()["bridge"]


def spread_users(rc, tag, per_master=2):
    """User ids whose channels land on every master."""
    names = rc.names_on_each_master(f"{wsp.PREFIX}:user:{tag}",
                                    per_master=per_master)
    prefix = f"{wsp.PREFIX}:user:"
    return {port: [n[len(prefix):] for n in ns] for port, ns in
            names.items()}


def test_three_shards_deliver_exactly_once_in_order(h):
    rc = RedisCluster(h, masters=3).start()
    node = cluster_node(h, rc)
    users = spread_users(rc, wsp.uid("u") + "-")
    chans = rc.names_on_each_master(f"{wsp.PREFIX}:channel:c{uuid.uuid4().hex[:6]}-")
    chans = {p: [n.split(":", 2)[2] for n in ns] for p, ns in chans.items()}
    all_users = [u for us in users.values() for u in us]
    all_chans = [c for cs in chans.values() for c in cs]
    clients = node.connect_many(all_users)
    for i, c in enumerate(clients):
        ch = all_chans[i % len(all_chans)]
        assert c.request({"op": "subscribe", "channel": ch, "ref": i}) == \
            {"op": "subscribed", "channel": ch, "ref": i}
    for k in range(20):
        for u in all_users:
            rc.spublish(f"{wsp.PREFIX}:user:{u}", json.dumps({"n": k}))
        for ch in all_chans:
            rc.spublish(f"{wsp.PREFIX}:channel:{ch}", json.dumps({"c": k}))
    chan_of = {c: all_chans[i % len(all_chans)] for i, c in enumerate(clients)}
    fenced = sfence(rc, clients, lambda c: [f"user:{c.welcome['user']}",
                                            f"channel:{chan_of[c]}"])
    for i, (c, frames) in enumerate(zip(clients, fenced)):
        # Order holds per address: each shard has its own link.
        assert by_address(frames) == {
            f"user:{all_users[i]}": [msg(f"user:{all_users[i]}", {"n": k})
                                     for k in range(20)],
            f"channel:{chan_of[c]}": [msg(f"channel:{chan_of[c]}", {"c": k})
                                      for k in range(20)],
        }, c.label
    # Every master carried some of it: one subscriber link each.
    for port in rc.masters():
        shard = rc.node(port).client()
        subs = shard.execute_command("PUBSUB", "SHARDCHANNELS",
                                     f"{wsp.PREFIX}:*")
        assert subs, f"no sharded subscription on master {port}"


def test_an_unwanted_channel_never_reaches_the_node(h):
    rc = RedisCluster(h, masters=3).start()
    node = cluster_node(h, rc, workers=1)
    u = wsp.uid("want")
    c = node.connect(u)
    before = bridge_stats(node)["msgs_from_redis"]
    nobody = [f"{wsp.PREFIX}:user:{wsp.uid('nobody')}" for _ in range(30)]
    for ch in nobody:
        assert rc.spublish(ch, "x") == 0  # no subscriber anywhere
    rc.spublish(f"{wsp.PREFIX}:user:{u}", json.dumps({"mine": 1}))
    assert sfence(rc, [c])[0] == [msg(f"user:{u}", {"mine": 1})]
    # The user message and the fence, nothing else.
    assert bridge_stats(node)["msgs_from_redis"] - before == 2


def test_failover_resumes_deliveries_without_reconnects(h):
    rc = RedisCluster(h, masters=3, replicas=1).start()
    node = cluster_node(h, rc)
    users = spread_users(rc, wsp.uid("fo") + "-", per_master=1)
    all_users = [u for us in users.values() for u in us]
    clients = node.connect_many(all_users)
    victim = rc.owner(f"{wsp.PREFIX}:user:{all_users[0]}")
    rc.kill_master(victim)

    def publish_to_all(payload):
        for u in all_users:
            rc.spublish(f"{wsp.PREFIX}:user:{u}", payload)
    wsp.publish_until_all_receive(publish_to_all, clients, timeout=30,
                                  check=node.check_running,
                                  what="deliveries after the failover")
    for u in all_users:
        rc.spublish(f"{wsp.PREFIX}:user:{u}", json.dumps({"after": u}))
    for u, c, frames in zip(all_users, clients, sfence(rc, clients)):
        assert wsp.not_probes(frames) == [msg(f"user:{u}", {"after": u})]
        assert c.is_open()
    st = node.stats()["bridge"]["redis"]
    assert st["state"] == "up", st
    # Only the dead master's links failed: no other link was re-made
    # (the promoted replica's links are first connections).
    assert st["connect_failures"] > 0, st
    assert (st["sub_reconnects"], st["cmd_reconnects"]) == (0, 0), st


def test_a_migrated_slot_is_resubscribed_on_its_new_owner(h):
    rc = RedisCluster(h, masters=3).start()
    node = cluster_node(h, rc, workers=1)
    u = wsp.uid("mig")
    c = node.connect(u)
    ch = f"{wsp.PREFIX}:user:{u}"
    src = rc.owner(ch)
    dst = [m for m in rc.masters() if m != src][0]
    rc.move_slot(rc.keyslot(ch), dst)
    wsp.publish_until_all_receive(lambda p: rc.spublish(ch, p), [c],
                                  timeout=20, check=node.check_running,
                                  what="deliveries after the slot move")
    assert dst in [p for p in rc.masters()] and rc.owner(ch) == dst
    shard = rc.node(dst).client()
    assert shard.execute_command("PUBSUB", "SHARDNUMSUB", ch)[1] == 1
    for i in range(10):
        rc.spublish(ch, json.dumps({"i": i}))
    frames = wsp.not_probes(sfence(rc, [c])[0])
    assert frames == [msg(f"user:{u}", {"i": i}) for i in range(10)]


def _bridge_refuses(h, name, conf):
    d = os.path.join(h.dir, name)
    os.makedirs(os.path.join(d, "run"), exist_ok=True)
    path = os.path.join(d, "wspush.conf")
    wsp.write_conf(path, wsp.merge({
        "node": {"id": name, "runtime_dir": os.path.join(d, "run")},
        "auth": {"mode": "none"}}, conf))
    cp = subprocess.run([wsp.binary("bridge/wspush-bridge"), "-c", path],
                        capture_output=True, text=True, timeout=wsp.T(20),
                        stdin=subprocess.DEVNULL, env=wsp._child_env())
    wsp.check_tool_output(["wspush-bridge"], cp)
    assert cp.returncode != 0, cp.stderr
    return cp.stderr


def test_cluster_on_against_a_plain_redis_stops_the_bridge(h):
    r = wsp.RedisServer(h).start()
    err = _bridge_refuses(h, "plain", {"redis": {"url": r.url,
                                                 "cluster": "on"}})
    assert "redis.cluster" in err and "not a Redis Cluster node" in err, err


def test_broadcast_routing_with_cluster_on_is_refused(h):
    err = _bridge_refuses(h, "bcast", {"redis": {"cluster": "on"},
                                       "broker": {"routing": "broadcast"}})
    assert "broker.routing" in err and "redis.cluster" in err, err


def test_upstream_writes_go_to_the_owning_shards(h):
    """Client publishes become SPUBLISH on the target's shard; `send` and
    connect events land in streams on whichever master owns their key;
    the presence hash lives on its own shard."""
    rc = RedisCluster(h, masters=3).start()
    node = cluster_node(h, rc, workers=1,
                        conf={"gateway": {"client_publish": "all"}})
    users = spread_users(rc, wsp.uid("up") + "-", per_master=1)
    sender, *targets = [u for us in users.values() for u in us]
    cs = node.connect(sender)
    cts = node.connect_many(targets)
    for i, t in enumerate(targets):
        cs.send_json({"op": "publish", "to": f"user:{t}", "data": {"i": i},
                      "ref": i})
    for i, (t, ct) in enumerate(zip(targets, cts)):
        assert wsp.norm(ct.recv_json()) == {"op": "msg", "to": f"user:{t}",
                                            "from": sender, "data": {"i": i}}
    cs.send_json({"op": "send", "data": {"cart": 1}, "ref": 9})

    def entries(key, **match):
        r = rc.node(rc.owner(key)).client()
        return [f for _id, f in r.xrange(key, "-", "+")
                if all(f.get(k) == v for k, v in match.items())]
    inbound = f"{wsp.PREFIX}:inbound"
    (e,) = wsp.wait_until(lambda: entries(inbound, conn=cs.conn), 10,
                          f"the send in {inbound} on its shard")
    assert e["user"] == sender and json.loads(e["data"]) == {"cart": 1}
    events = f"{wsp.PREFIX}:events"
    wsp.wait_until(lambda: entries(events, conn=cs.conn, type="connect"),
                   10, f"the connect event in {events} on its shard")
    pres = f"{wsp.PREFIX}:presence:{node.id}"
    r = rc.node(rc.owner(pres)).client()
    wsp.wait_until(lambda: r.hget(pres, sender) == "1", 15,
                   f"{sender} in {pres} on its shard")
    assert bridge_stats(node)["redis"]["state"] == "up"


def test_cluster_on_with_a_unix_socket_url_is_refused(h):
    err = _bridge_refuses(h, "unix", {"redis": {
        "url": "unix:///run/redis/redis.sock", "cluster": "on"}})
    assert "redis.cluster = on needs a redis:// URL" in err, err


def test_acl_user_and_a_refused_channel_do_not_spin(h):
    """The links authenticate as an ACL user on every master; a channel
    the user may not subscribe (NOPERM) is retried a few times a second,
    not at network speed, and the others work."""
    rc = RedisCluster(h, masters=3).start()
    for n in rc.nodes:
        n.client().execute_command(
            "ACL", "SETUSER", "wsp", "on", ">pw", "~*", "resetchannels",
            f"&{wsp.PREFIX}:user:ok-*", f"&{wsp.PREFIX}:all",
            f"&{wsp.PREFIX}:user:readyprobe", "+@all")
    seed = rc.nodes[0]
    node = wsp.Node(h, "a", _Url(f"redis://wsp:pw@127.0.0.1:{seed.port}"),
                    workers=1, conf=CLUSTER_CONF).start()
    ok = wsp.uid("ok")
    c = node.connect(ok)
    rc.spublish(f"{wsp.PREFIX}:user:{ok}", json.dumps({"ok": 1}))
    assert sfence(rc, [c])[0] == [msg(f"user:{ok}", {"ok": 1})]

    bad = wsp.uid("bad")
    owner = rc.node(rc.owner(f"{wsp.PREFIX}:user:{bad}")).client()

    def ssubscribe_calls():
        # An ACL refusal counts as rejected, not as a call.
        st = owner.info("commandstats").get("cmdstat_ssubscribe", {})
        return sum(st.get(k, 0) for k in ("calls", "rejected_calls",
                                           "failed_calls"))
    before = ssubscribe_calls()
    b = node.connect(bad, welcome=False)
    frames = b.collect(quiet=2, timeout=2)
    assert [f for f in frames if f.get("op") == "welcome"] == [], frames
    calls = ssubscribe_calls() - before
    assert 1 <= calls <= 20, f"{calls} SSUBSCRIBE in 2 s for a refused channel"
    # The refused one blocks nothing else.
    rc.spublish(f"{wsp.PREFIX}:user:{ok}", json.dumps({"ok": 2}))
    assert sfence(rc, [c])[0] == [msg(f"user:{ok}", {"ok": 2})]


def test_writes_follow_ask_during_a_slot_migration(h):
    """The inbound stream's slot is half-way migrated (MIGRATING on the
    old master, IMPORTING on the new one, the key already moved): the
    XADD the bridge sends to the old master gets ASK, and goes to the new
    one with ASKING, not to the floor."""
    rc = RedisCluster(h, masters=3).start()
    node = cluster_node(h, rc, workers=1)
    key = f"{wsp.PREFIX}:inbound"
    slot = rc.keyslot(key)
    src = rc.owner(key)
    dst = [m for m in rc.masters() if m != src][0]
    s, d = rc.node(src).client(), rc.node(dst).client()
    s.xadd(key, {"seed": "1"})
    d.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING",
                      rc.node_id(src))
    s.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING",
                      rc.node_id(dst))
    s.execute_command("MIGRATE", "127.0.0.1", dst, "", 0, 5000, "KEYS", key)
    c = node.connect(wsp.uid("ask"))
    c.send_json({"op": "send", "data": {"asked": 1}, "ref": 1})
    c.send_json({"op": "ping", "ref": 2})
    c.until(lambda f: f.get("op") == "pong")
    for n in rc.live():
        n.client().execute_command("CLUSTER", "SETSLOT", slot, "NODE",
                                   rc.node_id(dst))
    rc.wait_ok()

    def ours():
        return [f for _id, f in d.xrange(key, "-", "+")
                if f.get("conn") == c.conn]
    (e,) = wsp.wait_until(ours, 10, f"the send in {key} on the new master")
    assert json.loads(e["data"]) == {"asked": 1}
    drops = node.stats()["bridge"]["drops"]
    assert (drops["redis_error"], drops["redis_down"]) == (0, 0), drops


def test_history_on_every_master_and_recovery_on_each_shard(h):
    """With [history], the function library is loaded on every master,
    publishing with SPUBLISH; messages stored on each shard are recovered
    with `since` exactly, whichever master owns the channel."""
    rc = RedisCluster(h, masters=3).start()
    node = cluster_node(h, rc, workers=1, conf={
        "history": {"size": 100, "ttl_s": 300},
        "gateway": {"max_subscriptions": 8}})

    def config(port):
        try:
            return rc.node(port).client().fcall_ro("wspush_config", 0)
        except Exception:
            return None
    for m in rc.masters():
        conf = wsp.wait_until(lambda: config(m), 15, f"the library on {m}")
        assert conf[-1] == 1, f"master {m} not loaded sharded: {conf}"
    names = rc.names_on_each_master(
        f"{wsp.PREFIX}:channel:h{uuid.uuid4().hex[:6]}-")
    for port, (chan,) in names.items():
        ch = chan.split(":", 2)[2]
        owner = rc.node(port).client()

        def fcall(payload):
            return owner.fcall("wspush_publish", 1, chan, payload)
        c = node.connect(wsp.uid("hu"))
        assert c.request({"op": "subscribe", "channel": ch, "ref": 1}) == \
            {"op": "subscribed", "channel": ch, "ref": 1}
        first = fcall('{"n":0}')
        f = c.recv_json()
        assert (f.get("id"), f.get("data")) == (first, {"n": 0}), f
        c.close()
        missed = [fcall(json.dumps({"n": i})) for i in range(1, 6)]
        c2 = node.connect(wsp.uid("hu"))
        c2.send_json({"op": "subscribe", "channel": ch, "ref": 2,
                      "since": first})
        rep = c2.recv_json()
        assert rep.get("op") == "subscribed" and \
            rep.get("recovered") is True, rep
        got = [c2.recv_json() for _ in missed]
        assert [(g["id"], g["data"]) for g in got] == \
            [(i, {"n": n}) for n, i in enumerate(missed, 1)], port
