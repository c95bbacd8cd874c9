"""Presence: `wspushctl online` sums the live nodes, `online --user` finds
a user, and a node killed with SIGKILL drops out within the TTL (10 s)."""

import re
import time

import wsp

TTL_S = 10


def online(node):
    cp = node.ctl("online")
    assert cp.returncode == 0, cp.stderr
    m = re.search(r"online:\s*(\d+)\s+nodes?,\s*(\d+)\s+connections?,\s*"
                  r"(\d+)\s+users?", cp.stdout)
    assert m, f"unexpected `wspushctl online` output:\n{cp.stdout}"
    return tuple(int(x) for x in m.groups())


def online_user(node, user):
    cp = node.ctl("online", "--user", user)
    return cp.stdout + cp.stderr


def presence(r, node_id):
    h = r.hgetall(f"{wsp.PREFIX}:presence:{node_id}")
    return {k.decode(): int(v) for k, v in h.items() if int(v) != 0}


def test_online_counts_across_nodes_and_a_dead_node_drops_out(h):
    c = wsp.Cluster(h, nodes=2, workers=2)
    p1, p2, p3, p4 = (wsp.uid(f"p{i}") for i in range(1, 5))
    c.a.connect_many([p1, p1, p2])
    c.b.connect_many([p3, p4])

    wsp.wait_until(lambda: presence(c.r, c.a.id) == {p1: 2, p2: 1}, 10,
                   f"presence hash of {c.a.id}")
    wsp.wait_until(lambda: presence(c.r, c.b.id) == {p3: 1, p4: 1}, 10,
                   f"presence hash of {c.b.id}")
    wsp.wait_until(lambda: online(c.a) == (2, 5, 4), 10,
                   "`wspushctl online` to report 2 nodes, 5 connections, "
                   "4 users")
    assert online(c.b) == (2, 5, 4)
    node_a = {k.decode(): v.decode() for k, v in
              c.r.hgetall(f"{wsp.PREFIX}:node:{c.a.id}").items()}
    assert node_a.get("connections") == "3" and node_a.get("users") == "2", \
        node_a
    assert node_a.get("workers") == "2", node_a
    assert 0 < c.r.ttl(f"{wsp.PREFIX}:node:{c.a.id}") <= TTL_S

    out = online_user(c.b, p1)
    assert c.a.id in out and "2 connection" in out, out
    out = online_user(c.a, p3)
    assert c.b.id in out and c.a.id not in out, out
    out = online_user(c.a, wsp.uid("nobody"))
    assert c.a.id not in out and c.b.id not in out, out

    c.b.kill_all()
    t0 = time.monotonic()
    wsp.wait_until(lambda: online(c.a) == (1, 3, 2), TTL_S + 5,
                   f"{c.b.id} to drop out of `wspushctl online`")
    wsp.wait_until(lambda: not c.r.exists(f"{wsp.PREFIX}:node:{c.b.id}",
                                          f"{wsp.PREFIX}:presence:{c.b.id}"),
                   TTL_S + 5, f"the Redis keys of {c.b.id} to expire")
    elapsed = time.monotonic() - t0
    assert elapsed <= wsp.T(TTL_S + 5), elapsed
    out = online_user(c.a, p3)
    assert c.b.id not in out, out
    assert presence(c.r, c.a.id) == {p1: 2, p2: 1}
