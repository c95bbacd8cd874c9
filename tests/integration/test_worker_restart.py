"""The master restarts a worker that was killed; the clients of the other
worker keep their connections and lose nothing."""

import json
import time

import wsp


def test_killed_worker_is_restarted_and_other_clients_lose_nothing(h):
    c = wsp.Cluster(h, nodes=1, workers=2)
    node = c.a
    u = wsp.uid("wr")
    clients = node.connect_spread(u)
    pids = node.gateway.workers()
    assert len(pids) == 2, pids

    c.publish(f"user:{u}", json.dumps({"m": 1}))
    for cl, frames in zip(clients, c.fence(clients)):
        assert wsp.datas(frames) == [{"m": 1}], cl

    victim = min(pids)
    node.gateway.kill_worker(victim)

    # The victim's connections drop; they all belong to one worker slot.
    wsp.wait_until(lambda: any(not cl.is_open() for cl in clients), 10,
                   "the killed worker's connections to close")
    slot = next(cl.worker for cl in clients if not cl.is_open())
    wsp.wait_until(lambda: all(not cl.is_open() for cl in clients
                               if cl.worker == slot), 10,
                   f"every connection of worker {slot} to close")
    survivors = [cl for cl in clients if cl.worker != slot]
    assert survivors and all(cl.is_open() for cl in survivors), \
        "connections of the other worker were closed"

    # Published while the master restarts the worker.
    c.publish(f"user:{u}", json.dumps({"m": 2}))
    node.wait_workers(exclude={victim})
    c.publish(f"user:{u}", json.dumps({"m": 3}))

    for cl, frames in zip(survivors, c.fence(survivors)):
        assert wsp.datas(frames) == [{"m": 2}, {"m": 3}], cl
        assert cl.is_open()

    # New connections reach the restarted worker (same slot, new conn ids).
    old_conns = {cl.conn for cl in clients}
    fresh = []
    deadline = time.monotonic() + wsp.T(20)
    while not any(f.worker == slot for f in fresh):
        assert time.monotonic() < deadline, \
            f"no new connection landed on the restarted worker {slot}"
        assert len(fresh) < 64, \
            f"64 new connections, none on the restarted worker {slot}"
        fresh += node.connect_many([u] * 4)
    assert not old_conns & {f.conn for f in fresh}, "conn id reused"
    assert len({f.conn for f in fresh}) == len(fresh), "conn id reused"

    c.publish(f"user:{u}", json.dumps({"m": 4}))
    for cl, frames in zip(survivors + fresh, c.fence(survivors + fresh)):
        assert wsp.datas(frames) == [{"m": 4}], cl
