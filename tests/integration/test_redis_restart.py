"""The bridge survives a Redis restart and deliveries resume for the
existing connections, which never reconnect."""

import json

import wsp


def test_deliveries_resume_after_redis_restart(h):
    c = wsp.Cluster(h, nodes=1, workers=2)
    u = wsp.uid("rr")
    clients = c.a.connect_spread(u)
    conns = [cl.conn for cl in clients]

    c.redis.restart()
    c.r = c.redis.client()
    wsp.publish_until_all_receive(lambda p: c.publish(f"user:{u}", p),
                                  clients, timeout=30,
                                  check=c.a.check_running,
                                  what="user deliveries after the restart")

    c.publish(f"user:{u}", json.dumps({"after": "restart"}))
    for cl, frames in zip(clients, c.fence(clients)):
        assert wsp.datas(wsp.not_probes(frames)) == [{"after": "restart"}], cl
        assert cl.is_open()
    assert [cl.conn for cl in clients] == conns
