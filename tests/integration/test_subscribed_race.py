"""A message published right after the client saw `subscribed` is always
delivered: the reply follows Redis' confirmation on the ordered bus."""

import wsp

ROUNDS = 100


def test_message_published_right_after_subscribed_is_delivered(cluster):
    clients = (cluster.a.connect_spread(wsp.uid("race"))[:2]
               + cluster.b.connect_spread(wsp.uid("race"))[:2])
    base = wsp.uid("race")
    for i in range(ROUNDS):
        c = clients[i % len(clients)]
        ch = f"{base}-{i}"
        r = c.request({"op": "subscribe", "channel": ch, "ref": i})
        assert r == {"op": "subscribed", "channel": ch, "ref": i}, (i, c)
        cluster.publish(f"channel:{ch}", f"m{i}")
        m = wsp.norm(c.recv_json())
        assert m == {"op": "msg", "to": f"channel:{ch}", "data": f"m{i}"}, \
            (i, c, m)
        r = c.request({"op": "unsubscribe", "channel": ch, "ref": 1000 + i})
        assert r == {"op": "unsubscribed", "channel": ch,
                     "ref": 1000 + i}, (i, c)
