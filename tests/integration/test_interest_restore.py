"""Interest survives a bridge restart (SIGKILL, new bridge) and a Redis
restart: channel and user subscriptions made before are served after,
without the clients reconnecting."""

import json

import wsp


def start(h):
    c = wsp.Cluster(h, nodes=1, workers=2)
    u, ch, clients = c.a.connect_subscribed("ir")
    return c, u, ch, clients


def check_served(c, u, ch, clients):
    wsp.publish_until_all_receive(lambda p: c.publish(f"channel:{ch}", p),
                                  clients, timeout=30,
                                  check=c.a.check_running,
                                  what="channel deliveries to resume")
    wsp.publish_until_all_receive(lambda p: c.publish(f"user:{u}", p),
                                  clients, timeout=30,
                                  check=c.a.check_running,
                                  what="user deliveries to resume")
    c.publish(f"channel:{ch}", json.dumps({"to": "channel"}))
    c.publish(f"user:{u}", json.dumps({"to": "user"}))
    for cl, frames in zip(clients, c.fence(clients)):
        assert wsp.datas(wsp.not_probes(frames)) == [{"to": "channel"},
                                                     {"to": "user"}], cl
        assert cl.is_open()
    assert wsp.numsub(c.r, f"{wsp.PREFIX}:channel:{ch}") == 1


def test_subscriptions_survive_a_bridge_restart(h):
    c, u, ch, clients = start(h)
    c.a.bridge.kill()
    c.a.start_bridge()
    check_served(c, u, ch, clients)


def test_subscriptions_survive_a_redis_restart(h):
    c, u, ch, clients = start(h)
    c.redis.restart()
    c.r = c.redis.client()
    check_served(c, u, ch, clients)
