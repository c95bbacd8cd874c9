"""With connections of one user on both workers of both nodes, every
connection gets each message exactly once (interest routing)."""

import json

import wsp

N = 20


def test_exactly_once_per_connection_across_workers_and_nodes(cluster):
    u = wsp.uid("once")
    clients = cluster.a.connect_spread(u) + cluster.b.connect_spread(u)
    for n in cluster.nodes:
        assert len({c.worker for c in clients if c.node == n.id}) >= 2, n.id
    assert len({c.conn for c in clients}) == len(clients), "duplicate conn id"

    for i in range(N):
        cluster.publish(f"user:{u}", json.dumps({"n": i}))
    for c, frames in zip(clients, cluster.fence(clients)):
        assert frames == [{"op": "msg", "to": f"user:{u}", "data": {"n": i}}
                          for i in range(N)], c
