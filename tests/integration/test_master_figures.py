"""The gateway master's own figures (worker restarts, reloads, crash loops)
reach `wspushctl stats` and /metrics although the master never talks to
the bridge: it keeps them in a page shared with its workers, which report
them (gateway/mfig.h)."""

import signal

import wsp

from prometheus_client.parser import text_string_to_metric_families


def master(node):
    return node.stats()["master"]


def wait_master(node, want, what):
    seen = {}

    def ok():
        seen.update(master(node))
        return all(seen.get(k) == v for k, v in want.items())
    wsp.wait_until(ok, 15, f"{what} (last: {seen})", check=node.check_running,
                   interval=0.2)


def metrics(node):
    st, body = wsp.http_get(node.metrics_port, "/metrics")
    assert st == 200
    return {s.name: s.value
            for fam in text_string_to_metric_families(body.decode())
            for s in fam.samples if s.name.startswith("wspush_master_")}


def kill_and_wait_respawn(node):
    before = node.gateway.workers()
    victim = min(before)
    node.gateway.kill_worker(victim)
    wsp.wait_until(lambda: len(node.gateway.workers() - before) >= 1, 30,
                   "the master to respawn the killed worker",
                   check=node.gateway.check_running, interval=0.02)


def test_restarts_reloads_and_crash_loops_are_reported(h):
    c = wsp.Cluster(h, nodes=1, workers=2)
    node = c.a
    wait_master(node, {"reported": True, "restarts": 0, "reloads": 0,
                       "crash_loops": 0}, "the master's figures at start")

    kill_and_wait_respawn(node)
    node.wait_workers()
    wait_master(node, {"restarts": 1, "reloads": 0, "crash_loops": 0},
                "one restart to be reported")

    # A refused configuration is no reload.
    good = open(node.conf).read()
    with open(node.conf, "a") as f:
        f.write("\n[gateway]\nno_such_key = 1\n")
    node.gateway.signal(signal.SIGHUP)
    wsp.wait_until(lambda: "keeping the running configuration" in
                   open(node.gateway.err).read(), 15,
                   "the broken configuration to be refused",
                   check=node.check_running)
    with open(node.conf, "w") as f:
        f.write(good)

    node.gateway.killed_workers |= node.gateway.workers()  # drained on purpose
    node.gateway.signal(signal.SIGHUP)
    wsp.wait_until(lambda: "reload: done" in open(node.gateway.err).read(),
                   30, "the reload to finish", check=node.check_running)
    node.wait_attached()
    wait_master(node, {"restarts": 1, "reloads": 1, "crash_loops": 0},
                "one reload to be reported")

    # More than five deaths of a slot within a minute is a crash loop.
    # Killing the newest worker each time keeps hitting one slot: the one
    # respawned last.
    for _ in range(6):
        before = node.gateway.workers()
        victim = max(before)
        node.gateway.kill_worker(victim)
        wsp.wait_until(lambda: len(node.gateway.workers() - before) >= 1,
                       30, "the master to respawn the killed worker",
                       check=node.gateway.check_running, interval=0.02)
    wsp.wait_until(lambda: "is crash-looping" in open(node.gateway.err).read(),
                   10, "the crash loop to be logged")
    node.wait_attached()
    wait_master(node, {"restarts": 7, "reloads": 1, "crash_loops": 1},
                "the crash loop to be reported")
    m = metrics(node)
    assert m == {"wspush_master_worker_restarts_total": 7.0,
                 "wspush_master_reloads_total": 1.0,
                 "wspush_master_crash_loops_total": 1.0}, m
