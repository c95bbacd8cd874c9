"""PUBLISH <prefix>:user:<id> reaches every connection of that user on
every worker exactly once, and no connection of another user."""

import json

import wsp


def test_user_message_reaches_each_connection_of_the_user_once(cluster):
    a, b = wsp.uid("ua"), wsp.uid("ub")
    a_clients = cluster.a.connect_spread(a)  # welcomes from both workers
    b_client = cluster.a.connect(b)
    assert len({c.worker for c in a_clients}) >= 2

    cluster.publish(f"user:{a}", json.dumps({"hello": a}))
    got = cluster.fence(a_clients + [b_client])

    for c, frames in zip(a_clients, got[:-1]):
        assert frames == [{"op": "msg", "to": f"user:{a}",
                           "data": {"hello": a}}], c
    assert got[-1] == [], "user b received user a's message"
