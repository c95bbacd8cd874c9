#!/usr/bin/python3
"""User-targeted throughput of one bridge against Redis Cluster with 1
shard and with 3 shards (same machine): messages per second end to end,
bridge CPU per message and Redis CPU per shard.

Usage (a release build; bounded: a few seconds per point):
  WSPUSH_BUILD_DIR=build/release python3 tests/bench/bench_cluster.py \
      [--msgs 60000] [--users 60] [--rounds 2]

Uses the integration harness (tests/integration/wsp.py, redis_cluster.py):
private redis-servers with cluster-enabled yes (1 shard: one master with
every slot; 3 shards: redis-cli --cluster create), one bridge + gateway
(2 workers), Python WebSocket clients, one per user, spread evenly over
the shards. The publisher pipelines (or with --unpipelined sends one
at a time) SPUBLISH wspush:user:<u> on the
master owning each channel, in batches read back before the next, so no
client queue overflows. CPU is the on-CPU time (schedstat) of the bridge's
threads and of each master, over the publishing phase only.
"""
import argparse
import json
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

import redis as redislib  # noqa: E402

import wsp  # noqa: E402
from redis_cluster import RedisCluster  # noqa: E402

def cpu_s(pid):
    """On-CPU seconds of every thread of pid (schedstat: ns, not the
    10 ms ticks of /proc/<pid>/stat)."""
    total = 0
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{t}/schedstat") as f:
                total += int(f.read().split()[0])
        except FileNotFoundError:
            pass
    return total / 1e9


def one_shard(h):
    """A cluster of one master owning every slot (redis-cli --cluster
    create wants three)."""
    rc = RedisCluster(h, masters=1)
    n = rc.nodes[0].start()
    n.client().execute_command("CLUSTER", "ADDSLOTSRANGE", 0, 16383)
    wsp.wait_until(lambda: n.client().execute_command("CLUSTER", "INFO")
                   .find("cluster_state:ok") >= 0, 20, "cluster state ok",
                   interval=0.1)
    return rc


def run_point(shards, msgs, users_n, batch, pipelined=True):
    d = tempfile.mkdtemp(prefix="wspush-bench-cluster-")
    h = wsp.Harness(d)
    try:
        rc = one_shard(h) if shards == 1 else \
            RedisCluster(h, masters=3).start()
        seed = rc.nodes[0]

        class _Url:
            url = f"redis://127.0.0.1:{seed.port}"
        node = wsp.Node(h, "a", _Url(), workers=2,
                        conf={"redis": {"cluster": "on"}}).start()
        per = max(1, users_n // shards)
        names = rc.names_on_each_master(f"{wsp.PREFIX}:user:b-",
                                        per_master=per)
        chans = [c for cs in names.values() for c in cs]
        owner = {c: p for p, cs in names.items() for c in cs}
        users = [c.split(":", 2)[2] for c in chans]
        clients = node.connect_many(users)
        conns = {p: redislib.Redis(host="127.0.0.1", port=p)
                 for p in names}
        masters = {p: rc.node(p).proc.pid for p in names}
        bpid = node.bridge.pid
        payload = json.dumps({"p": "x" * 80})
        sent = 0
        c0 = cpu_s(bpid)
        r0 = {p: cpu_s(pid) for p, pid in masters.items()}
        t0 = time.monotonic()
        while sent < msgs:
            k = min(batch, msgs - sent)
            pipes = {p: c.pipeline(transaction=False) if pipelined else c
                     for p, c in conns.items()}
            for i in range(k):
                ch = chans[(sent + i) % len(chans)]
                pipes[owner[ch]].execute_command("SPUBLISH", ch, payload)
            for pp in pipes.values() if pipelined else ():
                pp.execute()
            want = [0] * len(clients)
            for i in range(k):
                want[(sent + i) % len(chans)] += 1
            for c, n in zip(clients, want):
                for _ in range(n):
                    c.recv(timeout=20)
            sent += k
        dt = time.monotonic() - t0
        bcpu = cpu_s(bpid) - c0
        rcpu = {p: cpu_s(pid) - r0[p] for p, pid in masters.items()}
        return {"shards": shards, "pipelined": pipelined, "msgs": msgs, "users": len(users),
                "seconds": dt, "msgs_per_s": msgs / dt,
                "bridge_us_per_msg": bcpu * 1e6 / msgs,
                "redis_cpu_s": rcpu,
                "redis_us_per_msg_per_shard": {
                    p: v * 1e6 / msgs for p, v in rcpu.items()},
                "loadavg": os.getloadavg()}
    finally:
        wsp.close_all()
        h.finish()
        wsp.rmtree(d)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--msgs", type=int, default=60000)
    ap.add_argument("--users", type=int, default=60)
    ap.add_argument("--batch", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--unpipelined", action="store_true",
                    help="one SPUBLISH per round trip, as a simple "
                    "backend publishes")
    a = ap.parse_args()
    for r in range(a.rounds):
        for shards in (1, 3):
            res = run_point(shards, a.msgs, a.users, a.batch,
                            not a.unpipelined)
            print(json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
