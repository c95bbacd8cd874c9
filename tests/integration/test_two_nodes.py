"""Two nodes (two bridges, two gateways) sharing one Redis: a message for a
user is delivered by whichever node holds that user's socket."""

import json

import wsp


def test_each_node_delivers_to_its_own_clients(cluster):
    x, y = wsp.uid("nx"), wsp.uid("ny")
    cx = cluster.a.connect(x)
    cy = cluster.b.connect(y)
    assert cx.node == cluster.a.id and cy.node == cluster.b.id

    cluster.publish(f"user:{x}", json.dumps({"for": x}))
    got_x, got_y = cluster.fence([cx, cy])
    assert wsp.datas(got_x) == [{"for": x}]
    assert got_y == []

    cluster.publish(f"user:{y}", json.dumps({"for": y}))
    got_x, got_y = cluster.fence([cx, cy])
    assert got_x == []
    assert got_y == [{"op": "msg", "to": f"user:{y}", "data": {"for": y}}]
