"""The node survives its neighbours' faults and
the clients never notice more than the messages that could not exist.

- Redis stopped (by PID) for 10 s, then restarted on the same port and
  directory: the bridge's /healthz says 503 while it is down and 200
  after, `wspushctl stats` reports the outage (outages, last_outage_ms,
  reconnects), and deliveries to channels and users resume for the same
  connections (same conn ids, never closed).
- The bridge killed with SIGKILL and restarted: every worker keeps its
  clients, and every client gets a channel and a user delivery within
  RESUME_S of the restart (measured from the new bridge's spawn to the
  first delivery at each client).

The shorter Redis restart and the bridge-restart interest checks are in
test_redis_restart.py and test_interest_restore.py; the bridge starting
with Redis down is test_bridge_redis_down.py.
"""

import json
import time

import wsp

OUTAGE_S = 10
RESUME_S = 5.0
BRIDGE_DOWN_S = 3


def start_cluster(h):
    c = wsp.Cluster(h, nodes=1, workers=2)
    u, ch, clients = c.a.connect_subscribed("flt")
    return c, u, ch, clients


def check_same_connections(c, u, ch, clients, conns):
    """After probes: one more message per address arrives exactly once,
    on the connections that existed before the fault."""
    c.publish(f"channel:{ch}", json.dumps({"after": "channel"}))
    c.publish(f"user:{u}", json.dumps({"after": "user"}))
    for cl, frames in zip(clients, c.fence(clients)):
        assert wsp.datas(wsp.not_probes(frames)) == [
            {"after": "channel"}, {"after": "user"}], cl
        assert cl.is_open(), cl
    assert [cl.conn for cl in clients] == conns


def first_deliveries(c, addrs, clients, timeout, check):
    """Publishes {"probe": n} to every address each ~50 ms until every
    client got a probe from each; returns, per client, the monotonic time
    it had them all."""
    done = {}
    got = {cl: set() for cl in clients}
    n = 0
    deadline = time.monotonic() + wsp.T(timeout)
    next_pub = 0
    while len(done) < len(clients):
        check()
        now = time.monotonic()
        if now >= deadline:
            raise wsp.HarnessError(
                f"deliveries did not resume within {wsp.T(timeout):.0f}s: "
                f"{[cl for cl in clients if cl not in done]}")
        if now >= next_pub:
            for a in addrs:
                try:
                    c.publish(a, json.dumps({"probe": n, "to": a}))
                except Exception:
                    pass  # Redis down: the probe never existed
            n += 1
            next_pub = now + 0.05
        for cl in clients:
            while True:
                try:
                    f = cl.decode(cl.recv(0.001))
                except wsp.RecvTimeout:
                    break
                if isinstance(f, dict) and isinstance(f.get("data"), dict) \
                        and "probe" in f["data"]:
                    got[cl].add(f["data"]["to"])
            if cl not in done and got[cl] == set(addrs):
                done[cl] = time.monotonic()
        time.sleep(0.01)
    return done


def test_redis_down_10s_healthz_stats_and_same_connections(h):
    c, u, ch, clients = start_cluster(h)
    node = c.a
    conns = [cl.conn for cl in clients]
    node.wait_bridge_healthz(200, 10, "bridge /healthz 200 before the outage")
    st0 = node.stats()["bridge"]["redis"]
    # Connecting at start is no outage.
    assert st0["outages"] == 0 and st0["connect_failures"] == 0, st0

    t_stop = time.monotonic()
    c.redis.proc.stop()  # SIGTERM by PID
    body = node.wait_bridge_healthz(503, 5, "bridge /healthz 503 with Redis "
                                    "down")
    assert b"redis" in body, body
    st = node.stats()["bridge"]["redis"]
    assert st["state"] == "down", st
    wsp.wait_until(lambda: node.stats()["bridge"]["redis"]["down_for_ms"]
                   > 0, 5, "down_for_ms to grow")

    # Down for OUTAGE_S: no client is disconnected meanwhile.
    while time.monotonic() - t_stop < OUTAGE_S:
        node.check_running()
        assert node.bridge_healthz()[0] == 503
        assert all(cl.is_open() for cl in clients)
        time.sleep(0.5)

    c.redis.start()  # same port, same directory
    t_start = time.monotonic()
    outage_s = t_start - t_stop
    c.r = c.redis.client()
    node.wait_bridge_healthz(200, 15, "bridge /healthz 200 after Redis is "
                             "back")
    done = first_deliveries(c, [f"channel:{ch}", f"user:{u}"], clients, 15,
                            node.check_running)
    resumed = max(done.values()) - t_start
    check_same_connections(c, u, ch, clients, conns)

    st = node.stats()["bridge"]["redis"]
    print(f"redis outage {outage_s:.1f}s: deliveries resumed "
          f"{resumed:.2f}s after the restart; stats {st}")
    assert st["state"] == "up" and st["down_for_ms"] == 0, st
    assert st["outages"] == st0["outages"] + 1, (st0, st)
    # The bridge's clock: from its first look at the down links (every
    # 200 ms) to the reconnection (backoff capped at 5 s, after start).
    assert st["last_outage_ms"] >= (outage_s - 1) * 1000, (outage_s, st)
    assert st["last_outage_ms"] <= (outage_s + 10) * 1000 * wsp.MULT, st
    assert st["reconnects"] > st0["reconnects"], (st0, st)
    assert st["sub_reconnects"] > 0 and st["cmd_reconnects"] > 0, st
    assert wsp.numsub(c.r, f"{wsp.PREFIX}:channel:{ch}") == 1


def test_bridge_sigkill_deliveries_resume_within_5s(h):
    c, u, ch, clients = start_cluster(h)
    node = c.a
    conns = [cl.conn for cl in clients]
    workers = node.gateway.workers()

    node.bridge.kill()
    t_kill = time.monotonic()
    # Down for BRIDGE_DOWN_S, long enough for the workers' redial
    # interval to reach its maximum (the worst case for the restart).
    while time.monotonic() - t_kill < BRIDGE_DOWN_S:
        node.gateway.check_running()
        assert all(cl.is_open() for cl in clients)
        time.sleep(0.2)

    t_restart = time.monotonic()
    node.start_bridge()
    t_bound = time.monotonic() - t_restart
    done = first_deliveries(c, [f"channel:{ch}", f"user:{u}"], clients, 20,
                            node.check_running)
    per_client = sorted(t - t_restart for t in done.values())
    print(f"bridge restart: sockets bound after {t_bound:.2f}s; every "
          f"client had a channel and a user delivery after "
          f"{per_client[0]:.2f}..{per_client[-1]:.2f}s")
    assert node.gateway.workers() == workers, "a worker was replaced"
    assert per_client[-1] <= RESUME_S * wsp.MULT, \
        (f"deliveries resumed {per_client[-1]:.2f}s after the restart "
         f"(bound {RESUME_S}s)")
    check_same_connections(c, u, ch, clients, conns)
