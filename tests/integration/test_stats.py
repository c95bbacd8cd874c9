"""`wspushctl stats`: the bridge's stats socket, as JSON and as a table;
counters follow connections, deliveries and disconnects."""

import json

import wsp

N_CLIENTS = 6
M_MSGS = 5


def test_stats_counts_connections_and_deliveries(h):
    c = wsp.Cluster(h, nodes=1, workers=2)
    node = c.a
    # Workers report every second: wait for a baseline with both workers.
    wsp.wait_until(lambda: len(node.stats()["workers"]) == 2, 10,
                   "both workers in stats")
    conns0 = node.counter("connections")

    clients = node.connect_many([wsp.uid("st") for _ in range(N_CLIENTS)])
    base = node.wait_counter("connections", conns0 + N_CLIENTS)
    # frames_out counts every frame (welcomes too): the baseline is taken
    # from the same report that shows the new connections.
    frames0 = wsp.worker_total(base, "frames_out")
    for i in range(M_MSGS):
        assert c.publish("all", json.dumps({"n": i})) >= 1
    for cl in clients:
        got = [f for f in cl.collect(count=M_MSGS, timeout=5)
               if isinstance(f, dict) and f.get("op") == "msg"]
        assert len(got) == M_MSGS, got

    want = frames0 + M_MSGS * N_CLIENTS
    st = node.wait_counter("frames_out", lambda n: n >= want)
    assert wsp.worker_total(st, "frames_out") == want, st["workers"]
    assert wsp.worker_total(st, "connections") == conns0 + N_CLIENTS
    br = st["bridge"]
    assert br["node"] == node.id
    assert br["redis"]["state"] == "up"
    assert br["msgs_from_redis"] >= M_MSGS
    assert br["envelopes_published"] >= M_MSGS
    assert br["subscriptions"] >= 1
    assert br["uptime_s"] >= 0 and br["version"]
    pids = sorted(node.gateway.workers())
    assert sorted(w["pid"] for w in st["workers"]) == pids
    for w in st["workers"]:
        assert w["attached"] and w["slot"] in (1, 2)

    # The table form.
    cp = node.ctl("stats")
    assert cp.returncode == 0, cp.stderr
    assert "SLOT" in cp.stdout and "FRAMES_OUT" in cp.stdout, cp.stdout
    for pid in pids:
        assert str(pid) in cp.stdout, cp.stdout
    assert f"node {node.id}" in cp.stdout

    # --watch with a bound: two refreshes, the second with rates.
    cp = node.ctl("stats", "--watch", "--count", "2")
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.count("SLOT") == 2 and "OUT/s" in cp.stdout, cp.stdout

    # Disconnects move the numbers back.
    wsp.close_all(clients[:N_CLIENTS // 2])
    left = conns0 + N_CLIENTS - N_CLIENTS // 2
    st = node.wait_counter("connections", left)
    assert wsp.worker_total(st, "frames_out") == want


def test_stats_bad_socket_is_an_error(h):
    c = wsp.Cluster(h, nodes=1, workers=1)
    node = c.a
    other = dict(node.sections)
    other["node"] = dict(other["node"], runtime_dir=h.dir + "/nowhere")
    path = h.dir + "/other.conf"
    wsp.write_conf(path, other)
    cp = wsp.ctl(h, path, "stats", "--json", timeout=15)
    assert cp.returncode == 1 and "stats" in cp.stderr, cp
