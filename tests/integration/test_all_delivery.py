"""PUBLISH <prefix>:all reaches every connection on every node and worker
exactly once."""

import json

import wsp


def test_all_reaches_every_connection_once(cluster):
    clients = []
    for node in cluster.nodes:
        clients += node.connect_spread(wsp.uid("all"))
        clients += node.connect_many([wsp.uid("all") for _ in range(3)])
    token = wsp.uid("everyone")

    cluster.publish("all", json.dumps({"everyone": token}))
    got = cluster.fence(clients)

    for c, frames in zip(clients, got):
        assert frames == [{"op": "msg", "to": "all",
                           "data": {"everyone": token}}], c
