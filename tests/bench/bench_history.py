#!/usr/bin/python3
"""The history benchmark: what storing costs at publish, and a recovery storm.

Started by run.sh after bench.py (or alone:
`tests/bench/bench_history.py BUILD_DIR --bin-dir DIR`). It reuses
bench.py's servers, wsb_client groups and CPU accounting (schedstat, every
thread of every process of a server; Redis apart).

publish   wspush with [history] size = 1000, 5,000 connections on one
          channel, 10 msg/s for --seconds: the same Python publisher sends
          either PUBLISH wspush:channel:<c> or FCALL wspush_publish 1
          wspush:channel:<c> (runs alternate, --rounds times each). Measured:
          Redis CPU per message (Redis' idle CPU over the same time, taken
          just before, subtracted) and p50/p99 end to end (the payload's
          send time, CLOCK_MONOTONIC, to the client's read), with loss,
          duplicates and order. Then a burst (--burst messages back to back
          to 10 connections) for Redis' cost per message with little else
          running.
storm     --storm-conns clients follow one channel, are cut (TCP close),
          --storm-msgs messages are published meanwhile, and all reconnect
          at once asking for what they missed (history_storm.js: wspush
          subscribes with since; Socket.IO sends its pid and offset).
          Measured: time from the reconnect until every client had all of
          them, server (and Redis) CPU per recovered message, loss,
          duplicates, order, recoveries that were not full.
          Socket.IO: one process with connectionStateRecovery and the
          in-memory adapter (sio_csr_server.js): its Redis adapter does not
          implement recovery, so there is no clustered peer to compare.
"""
import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench as B  # noqa: E402

import redis as redislib  # noqa: E402

HISTORY_CONF = """[history]
size = 1000
ttl_s = 600
max_recover = 1000
"""


class HistWspush(B.WspushServer):
    """bench.py's wspush with a [history] section."""

    def start(self):
        real_open = open

        # WspushServer.start writes its config with open(conf, "w"); add
        # the section to that one file.
        def hooked(path, mode="r", *a, **kw):
            f = real_open(path, mode, *a, **kw)
            if str(path).endswith("wspush.conf") and "w" in mode:
                f.write(HISTORY_CONF)
            return f
        B.open = hooked
        try:
            super().start()
        finally:
            del B.open
        r = redislib.Redis(port=self.redis_port)
        B.wait_until(lambda: _loaded(r), 15, self.procs, "the library")
        r.close()


def _loaded(r):
    try:
        return r.fcall_ro("wspush_config", 0)[0] >= 1
    except redislib.RedisError:
        return False


class CsrSio(B.Server):
    mode = "sio"
    label = "Socket.IO (recovery)"

    def start(self):
        self.port, self.control = B.free_port(), B.free_port()
        p = B.Proc("sio_csr", ["node", os.path.join(HERE,
                   "sio_csr_server.js"), str(self.port), str(self.control)],
                   self.dir, env=dict(os.environ, NODE_ENV="production"),
                   cwd=HERE)
        self.procs.append(p)
        B.wait_until(lambda: "READY" in p.tail(), 20, [p], "sio_csr")

    def redis_cpu(self):
        return 0

    def check_alive(self):
        for p in self.procs:
            if not p.alive():
                raise B.BenchError(f"{p.name} died:\n{p.tail()}")


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def publish_paced(r, fcall, key, phase, count, rate):
    """count messages at rate/s, as wsb_pub's payloads; returns errors."""
    err = 0
    pad = "x" * 60
    start = time.monotonic()
    for seq in range(count):
        due = start + seq / rate
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        t_us = time.monotonic_ns() // 1000
        body = (f'{{"s":{phase * B.PHASE_MUL + seq},"t":{t_us},'
                f'"p":"{pad}"}}')
        try:
            if fcall:
                r.fcall("wspush_publish", 1, key, body)
            else:
                r.publish(key, body)
        except redislib.RedisError:
            err += 1
    return err


def publish_cost(bench, srv, args, out):
    r = redislib.Redis(port=srv.redis_port)
    ch = "hbench"
    key = f"wspush:channel:{ch}"
    g = bench.open_group(srv, bench.n(args.conns), 2, topic=ch)
    count = int(args.rate * args.seconds)
    try:
        for rnd in range(args.rounds):
            for fcall in (False, True):
                label = "FCALL" if fcall else "PUBLISH"
                # Redis' own background (cron, heartbeats, presence) over
                # the same span, to subtract.
                r0 = srv.redis_cpu()
                time.sleep(args.seconds)
                idle = srv.redis_cpu() - r0
                pid = bench.next_phase()
                g.phase(pid, count)
                la = loadavg()
                c0, r0 = srv.cpu(), srv.redis_cpu()
                errs = publish_paced(r, fcall, key, pid, count, args.rate)
                m = g.wait(1500, 60000)
                c1, r1 = srv.cpu(), srv.redis_cpu()
                want = count * m["conns"]
                res = {"name": f"publish-{label}", "round": rnd,
                       "conns": m["conns"], "msgs": count,
                       "deliveries": m["uniq"], "lost": want - m["uniq"],
                       "dup": m["dup"], "reorder": m["reorder"],
                       "pub_errors": errs, "loadavg": la,
                       "redis_us_per_msg": (r1 - r0) / count,
                       "redis_idle_us_per_msg": idle / count,
                       "redis_net_us_per_msg": (r1 - r0 - idle) / count,
                       "server_us_per_delivery": ((c1 - c0) / m["uniq"]
                                                  if m["uniq"] else None)}
                for q, k in ((0.5, "p50_ms"), (0.99, "p99_ms")):
                    v = B.percentile(m["hist"], q)
                    res[k] = v / 1000 if v is not None else None
                B.log(f"  {label} round {rnd}: deliv={m['uniq']}/{want} "
                      f"dup={m['dup']} reord={m['reorder']} "
                      f"redis/msg={res['redis_net_us_per_msg']:.1f}us "
                      f"(idle {res['redis_idle_us_per_msg']:.1f}) "
                      f"p50={B.fmt(res['p50_ms'])} "
                      f"p99={B.fmt(res['p99_ms'])}ms load {la}")
                out.append(res)
    finally:
        bench.close_group(srv, g)
    # Burst: Redis' cost per message with a small audience.
    g = bench.open_group(srv, 10, 1, topic="hburst")
    try:
        for fcall in (False, True):
            label = "FCALL" if fcall else "PUBLISH"
            pid = bench.next_phase()
            g.phase(pid, args.burst)
            la = loadavg()
            r0 = srv.redis_cpu()
            t0 = time.monotonic()
            errs = publish_paced(r, fcall, "wspush:channel:hburst", pid,
                                 args.burst, 1e9)
            took = time.monotonic() - t0
            r1 = srv.redis_cpu()
            m = g.wait(1000, 60000)
            res = {"name": f"burst-{label}", "msgs": args.burst,
                   "lost": args.burst * m["conns"] - m["uniq"],
                   "dup": m["dup"], "pub_errors": errs, "loadavg": la,
                   "redis_us_per_msg": (r1 - r0) / args.burst,
                   "pub_s": took}
            B.log(f"  burst {label}: redis/msg="
                  f"{res['redis_us_per_msg']:.1f}us lost={res['lost']} "
                  f"load {la}")
            out.append(res)
    finally:
        bench.close_group(srv, g)
    r.close()


def storm(bench, srv, args, out):
    n, m = bench.n(args.storm_conns), args.storm_msgs
    topic = f"storm{bench.next_phase()}"
    aux = srv.redis_port if srv.mode == "wspush" else srv.control
    logf = open(os.path.join(srv.dir, "storm.log"), "ab")
    p = subprocess.Popen(["node", os.path.join(HERE, "history_storm.js"),
                          srv.mode, str(srv.port), str(aux), topic, str(n),
                          str(m)], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=logf, cwd=HERE,
                         text=True)
    try:
        line = p.stdout.readline().strip()
        if line != "CUT":
            raise B.BenchError(f"history_storm said {line!r} (see "
                               f"{logf.name})")
        srv.check_alive()
        la = loadavg()
        c0, r0, k0 = srv.cpu(), srv.redis_cpu(), B.cpu_us([p.pid])
        p.stdin.write("GO\n")
        p.stdin.flush()
        res = json.loads(p.stdout.readline())
        c1, r1, k1 = srv.cpu(), srv.redis_cpu(), B.cpu_us([p.pid])
        p.wait(30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(5)
        logf.close()
    got = res["recovered_msgs"]
    res.update({"name": f"storm-{srv.mode}", "loadavg": la,
                "server_us_per_msg": (c1 - c0) / got if got else None,
                "redis_us_per_msg": (r1 - r0) / got if got else None,
                "client_us_per_msg": (k1 - k0) / got if got else None})
    B.log(f"  storm {srv.label}: {n} x {m}: all in "
          f"{B.fmt(res['all_done_ms'], 0)} ms lost={res['lost']} "
          f"dup={res['dup']} reord={res['reorder']} failed={res['failed']} "
          f"retries={res['retries']} "
          f"not_recovered={res['not_recovered']} server/msg="
          f"{B.fmt(res['server_us_per_msg'])}us redis/msg="
          f"{B.fmt(res['redis_us_per_msg'])}us load {la}")
    out.append(res)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("build_dir")
    ap.add_argument("--bin-dir", required=True)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--conns", type=int, default=5000)
    ap.add_argument("--rate", type=float, default=10)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--burst", type=int, default=3000)
    ap.add_argument("--storm-conns", type=int, default=5000)
    ap.add_argument("--storm-msgs", type=int, default=100)
    ap.add_argument("--parts", default="publish,storm,sio-storm")
    ap.add_argument("--json", help="write every figure as JSON here")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    bench = B.Bench(args)
    parts = args.parts.split(",")
    work = B.tempfile.mkdtemp(prefix="wsp-hbench-")
    out = []
    B.log(f"history bench in {work}, load {loadavg()}")
    try:
        if "publish" in parts or "storm" in parts:
            srv = HistWspush(bench, os.path.join(work, "wspush"))
            try:
                srv.start()
                if "publish" in parts:
                    publish_cost(bench, srv, args, out)
                if "storm" in parts:
                    storm(bench, srv, args, out)
            finally:
                bad = srv.stop()
                if bad:
                    bench.failures += bad
        if "sio-storm" in parts:
            srv = CsrSio(bench, os.path.join(work, "sio"))
            try:
                srv.start()
                storm(bench, srv, args, out)
            finally:
                srv.stop()
    finally:
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"machine": B.machine(), "results": out,
                           "failures": bench.failures}, f, indent=1)
        if not args.keep:
            B.shutil.rmtree(work, ignore_errors=True)
    for r in out:
        if r.get("lost") or r.get("dup") or r.get("reorder"):
            bench.failures.append(f"{r['name']}: lost {r.get('lost')} dup "
                                  f"{r.get('dup')} reorder "
                                  f"{r.get('reorder')}")
    for f in bench.failures:
        B.log(f"FAILURE: {f}")
    return 1 if bench.failures else 0


if __name__ == "__main__":
    sys.exit(main())
