"""Three wspush nodes on separate network stacks behind nginx (netns.py),
with one Redis (here) or a three-master Redis Cluster (cluster = on,
SPUBLISH; test_netns_redis_cluster.py):
300 clients through the balancer get user, channel and `all` messages
exactly once; a node whose cable is pulled loses its clients, which come
back through nginx on the other nodes and, with history on, recover what
was published to them meanwhile (?since=, exactly once, first); the node,
reconnected, takes new clients again."""

import json

import pytest

import netns
import wsp
from redis_cluster import by_address, shard_fence

pytest_plugins = ["netns_report"]

CLIENTS = 300
CHANNELS = 10
# History on: a cut node's clients recover, with the last id they saw,
# what was published to them while they were reconnecting.
NODE_CONF = {"gateway": {"max_subscriptions": 8},
             "history": {"size": 100, "ttl_s": 300, "user_ttl_s": 600}}


@pytest.fixture
def bed(h):
    reason = netns.skip_reason()
    if reason:
        pytest.skip(reason)
    with netns.TestBed(h, nodes=3) as b:
        yield b


def msg(to, data):
    return {"op": "msg", "to": to, "data": data}


def by_node(bed, clients):
    out = {n.id: [] for n in bed.nodes}
    for c in clients:
        out[bed.node_of(c).id].append(c)
    return out


# Messages a client received while waiting for a reply (a recovery's
# replay runs alongside the first requests); the fence checks count them.
EARLY = {}


def subscribe_all(clients, channel_of):
    for i, c in enumerate(clients):
        c.send_json({"op": "subscribe", "channel": channel_of[c], "ref": i})
    for i, c in enumerate(clients):
        while True:
            got = wsp.norm(c.recv_json(10))
            if got.get("op") != "msg":
                break
            EARLY.setdefault(c, []).append(got)
        assert got == {"op": "subscribed", "channel": channel_of[c],
                       "ref": i}, c.label


def fence_and_check(kind, pub, clients, want_of, addrs_of):
    """Everything each client got up to a fence equals want_of(i, c). One
    Redis keeps publish order across addresses: one marker on `all`
    fences everything, and the whole sequence is compared. A cluster
    keeps it per address only (a link per shard): a marker per address,
    and the sequence of each address is compared."""
    if kind == "single":
        got = [EARLY.pop(c, []) + f for c, f in
               zip(clients, wsp.fence(pub, clients, timeout=20))]
        for i, (c, frames) in enumerate(zip(clients, got)):
            assert frames == want_of(i, c), c.label
        return
    got = [EARLY.pop(c, []) + f for c, f in
           zip(clients, shard_fence(pub.to, clients, addrs_of, timeout=30))]
    for i, (c, frames) in enumerate(zip(clients, got)):
        assert by_address(frames) == by_address(want_of(i, c)), c.label


def test_three_nodes_behind_nginx(bed):
    run_three_nodes(bed, "single")


def run_three_nodes(bed, redis_kind):
    """The scenario, with one Redis ("single") or a Redis Cluster
    ("cluster", test_netns_redis_cluster.py)."""
    if redis_kind == "single":
        pub = bed.start_redis()
    else:
        pub = bed.start_redis_cluster(masters=3)
    bed.start_nodes(workers=1, conf=NODE_CONF)
    bed.start_nginx(connections=2 * CLIENTS)

    users = [wsp.uid(f"ns{i}") for i in range(CLIENTS)]
    chans = [wsp.uid(f"nsch{k}") for k in range(CHANNELS)]
    clients = bed.connect_many(users)
    assert [c.welcome["user"] for c in clients] == users
    spread = {n: len(cs) for n, cs in by_node(bed, clients).items()}
    # least_conn: every node gets a fair share, not merely one client.
    assert all(v >= CLIENTS // 6 for v in spread.values()), spread

    channel_of = {c: chans[i % CHANNELS] for i, c in enumerate(clients)}
    subscribe_all(clients, channel_of)

    # User (stored: they get ids), channel and `all` messages, each to
    # every node's clients.
    pub.wait_history()
    last_id = {}
    for i, u in enumerate(users):
        last_id[u] = pub.stored(f"user:{u}", json.dumps({"u": i}))
    for k, ch in enumerate(chans):
        pub.to(f"channel:{ch}", json.dumps({"ch": k}))
    pub.to("all", json.dumps({"all": 1}))
    fence_and_check(redis_kind, pub, clients,
        lambda i, c: [msg(f"user:{users[i]}", {"u": i}),
                      msg(f"channel:{chans[i % CHANNELS]}",
                          {"ch": i % CHANNELS}),
                      msg("all", {"all": 1})],
        lambda c: [f"user:{c.label}", f"channel:{channel_of[c]}", "all"])

    # Pull one node's cable. Its clients hear nothing more (no FIN, no
    # RST) and give up after their keepalive; the others stay.
    victim = bed.nodes[0]
    groups = by_node(bed, clients)
    gone = groups[victim.id]
    stay = [c for c in clients if c not in gone]
    bed.cut(victim)
    # Published while they are cut off: stored, so recovered below.
    missed = {c.label: [] for c in gone}
    for k in range(2):
        for c in gone:
            pub.stored(f"user:{c.label}", json.dumps({"cut": k}))
            missed[c.label].append({"cut": k})
    wsp.wait_until(lambda: not any(c.is_open() for c in gone), 20,
                   f"the {len(gone)} clients of the cut node to notice")
    assert all(c.is_open() for c in stay), "clients of live nodes dropped"

    # They come back through nginx, which skips the silent node.
    back_users = [c.label for c in gone]
    back = bed.connect_many(back_users, timeout=30, since=last_id)
    assert not [c for c in back if c.node == victim.id], \
        "nginx sent a client to the cut node"
    assert all(c.welcome.get("recovered") is True for c in back), \
        [c.welcome for c in back if c.welcome.get("recovered") is not True]
    channel_of.update({b: channel_of[c] for b, c in zip(back, gone)})
    subscribe_all(back, channel_of)

    live = stay + back
    for c in live:
        pub.to(f"user:{c.label}", json.dumps({"after": c.label}))
    pub.to("all", json.dumps({"all": 2}))
    # A recovered client gets what it missed, exactly once and first.
    fence_and_check(redis_kind, pub, live,
        lambda i, c: [msg(f"user:{c.label}", d)
                      for d in missed.get(c.label, [])]
        + [msg(f"user:{c.label}", {"after": c.label}),
           msg("all", {"all": 2})],
        lambda c: [f"user:{c.label}", "all"])

    # The cable is back: the node recovers its Redis link and nginx sends
    # it new clients again once its fail_timeout (10 s) is over.
    bed.mend(victim)
    victim.wait_healthy(timeout=60)
    fresh = []

    def landed():
        c = bed.connect(wsp.uid("fresh"))
        fresh.append(c)
        return c.node == victim.id
    wsp.wait_until(landed, 60, "nginx to send a new client to the "
                   "reconnected node", check=victim.check_running,
                   interval=0.5)
    c = fresh[-1]
    pub.to(f"user:{c.label}", json.dumps({"fresh": 1}))
    fence_and_check(redis_kind, pub, [c],
        lambda i, c: [msg(f"user:{c.label}", {"fresh": 1})],
        lambda c: [f"user:{c.label}"])
