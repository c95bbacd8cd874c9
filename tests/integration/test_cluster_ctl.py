"""wspushctl with [redis] cluster = on against a private Redis Cluster
(redis_cluster.py): `publish` reaches users on every shard (SPUBLISH, or
FCALL wspush_publish with history, on the master owning the channel,
following MOVED from the configured node), and `online` finds nodes and
users whose keys live on other masters than the configured one."""

import re

import wsp
from redis_cluster import RedisCluster
from test_cluster_bridge import cluster_node, spread_users


def _node_name_off_seed(rc, taken):
    """A node name whose node key is not on the seed master (a SCAN of
    the configured node alone would miss it)."""
    seed = rc.nodes[0].port
    for i in range(200):
        name = f"x{i}"
        if name in taken:
            continue
        if rc.owner(f"{wsp.PREFIX}:node:node-{name}") != seed:
            return name
    raise wsp.HarnessError("no node name off the seed master")


def test_ctl_publish_reaches_users_on_every_shard(h):
    rc = RedisCluster(h, masters=3).start()
    node = cluster_node(h, rc, workers=1)
    users = spread_users(rc, wsp.uid("cp") + "-", per_master=1)
    all_users = [u for us in users.values() for u in us]
    clients = node.connect_many(all_users)
    for u, c in zip(all_users, clients):
        cp = node.ctl("publish", "--user", u, '{"to":"%s"}' % u)
        assert cp.returncode == 0, cp.stderr
        # SPUBLISH counts the shard's subscribers: this node's link.
        assert cp.stdout.strip() == "1", (u, cp.stdout, cp.stderr)
        assert c.recv_json() == {"op": "msg", "to": f"user:{u}",
                                 "data": {"to": u}}
    # An address nobody wants: 0 receivers, still no error.
    cp = node.ctl("publish", "--user", wsp.uid("nobody"), "lost")
    assert cp.returncode == 0 and cp.stdout.strip() == "0", cp


def test_ctl_publish_with_history_uses_the_owning_master(h):
    rc = RedisCluster(h, masters=3).start()
    node = cluster_node(h, rc, workers=1, conf={
        "history": {"size": 100, "ttl_s": 300}})
    users = spread_users(rc, wsp.uid("ch") + "-", per_master=1)
    all_users = [u for us in users.values() for u in us]
    clients = node.connect_many(all_users)

    def loaded():
        cp = node.ctl("publish", "--user", all_users[0], '{"w":1}')
        return cp if cp.returncode == 0 else None
    wsp.wait_until(loaded, 15, "the history library on every master",
                   interval=0.3)
    clients[0].recv_json()
    for u, c in zip(all_users, clients):
        cp = node.ctl("publish", "--user", u, '{"h":1}')
        assert cp.returncode == 0, cp.stderr
        ident = cp.stdout.strip()
        f = c.recv_json()
        assert (f.get("id"), f.get("data")) == (ident, {"h": 1}), (f, cp)


def test_ctl_online_scans_every_master(h):
    rc = RedisCluster(h, masters=3).start()
    name = _node_name_off_seed(rc, set())
    node = cluster_node(h, rc, name=name, workers=1)
    users = spread_users(rc, wsp.uid("on") + "-", per_master=1)
    all_users = [u for us in users.values() for u in us]
    node.connect_many(all_users)

    def counted():
        cp = node.ctl("online")
        m = re.search(r"online:\s*(\d+)\s+nodes?,\s*(\d+)\s+connections?",
                      cp.stdout)
        return cp if m and m.groups() == ("1", str(len(all_users))) \
            else None
    cp = wsp.wait_until(counted, 15, "`wspushctl online` to see the node",
                        interval=0.3)
    assert node.id in cp.stdout, cp.stdout
    for u in all_users:
        cp = node.ctl("online", "--user", u)
        assert cp.returncode == 0 and node.id in cp.stdout, \
            (u, cp.stdout, cp.stderr)
