#!/usr/bin/env python3
"""wspush on RabbitMQ beside wspush on Redis, in one run of bench.py.

    tests/bench/bench_amqp.py BUILD_DIR --bin-dir DIR [bench.py options]

Adds a server "amqp" to bench.py's servers: the same bridge and gateway
with [broker] kind = amqp, on a private rabbitmq-server (own node name,
ports, HOME/cookie, mnesia and log directories under the work dir; stopped
by PID). Its "broker CPU" column is the Erlang VM's (beam.smp and the
script above it), where the Redis runs show redis-server's. The publisher
for "amqp" is this file in --publish mode (pika, one basic.publish per
message on the direct exchange, routing key = address, no confirms: as
fire-and-forget as Redis PUBLISH), sending the payloads wsb_pub sends
({"s": phase * 1e9 + seq, "t": send time in us on CLOCK_MONOTONIC,
"p": padding to 100 bytes}) so wsb_client checks order, loss and latency
the same way. Default: --servers wspush,amqp --scenarios user,5k (the
5,000 connections x 10/s latency/burst/fan-out run and the user-targeted
one).
"""

import json
import os
import secrets
import socket
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

RABBIT_BIN = "/usr/lib/rabbitmq/bin"
PHASE_MUL = 1000000000


# ---- the publisher (a child process, like wsb_pub) --------------------------

def now_us():
    return time.monotonic_ns() // 1000


def publish_main(argv):
    import argparse
    import pika

    ap = argparse.ArgumentParser()
    ap.add_argument("--publish", action="store_true")
    ap.add_argument("--url", required=True)
    ap.add_argument("--exchange", default="wspush")
    ap.add_argument("--phase", type=int, default=0)
    ap.add_argument("--count", type=int, default=1)
    ap.add_argument("--rate", type=float, default=0)
    ap.add_argument("--size", type=int, default=100)
    ap.add_argument("--topic")
    ap.add_argument("--users", type=int, default=0)
    ap.add_argument("--user-prefix")
    a = ap.parse_args(argv)
    conn = pika.BlockingConnection(pika.URLParameters(a.url))
    ch = conn.channel()
    ok = err = 0
    t0 = now_us()
    for i in range(a.count):
        if a.rate > 0:
            due = t0 + i * 1e6 / a.rate
            wait = (due - now_us()) / 1e6
            if wait > 0:
                time.sleep(wait)
        if a.topic is not None:
            seq = i
            key = "all" if a.topic == "*all*" else f"channel:{a.topic}"
        else:
            seq = i // a.users
            key = f"user:{a.user_prefix}{i % a.users}"
        head = '{"s":%d,"t":%d,"p":"' % (a.phase * PHASE_MUL + seq,
                                         now_us())
        pad = max(0, a.size - len(head) - 2)
        try:
            ch.basic_publish(a.exchange, key, head + "x" * pad + '"}')
            ok += 1
        except Exception:
            err += 1
    end = now_us()
    conn.close()
    print(json.dumps({"sent": a.count, "ok": ok, "err": err,
                      "start_us": t0, "end_us": end}))
    return 0


# ---- the server and the run --------------------------------------------------

def bench_main():
    import subprocess

    import bench

    class AmqpServer(bench.WspushServer):
        """wspush with [broker] kind = amqp on a private RabbitMQ."""
        mode = "wspush"  # what wsb_client speaks
        label = "wspush (RabbitMQ)"

        def start_redis(self):
            # The broker of this server: RabbitMQ, not Redis.
            d = os.path.join(self.dir, "rabbit")
            home = os.path.join(d, "home")
            for sub in ("home", "mnesia", "log"):
                os.makedirs(os.path.join(d, sub), exist_ok=True)
            cookie = os.path.join(home, ".erlang.cookie")
            if not os.path.exists(cookie):
                with open(cookie, "w") as f:
                    f.write(secrets.token_hex(16).upper())
                os.chmod(cookie, 0o400)
            with open(os.path.join(d, "enabled_plugins"), "w") as f:
                f.write("[].\n")
            self.redis_port = bench.free_port()
            with open(os.path.join(d, "rabbitmq.conf"), "w") as f:
                f.write(f"listeners.tcp.default = 127.0.0.1:"
                        f"{self.redis_port}\n"
                        "log.console = true\nlog.console.level = warning\n"
                        "log.file = false\n")
            env = dict(os.environ,
                HOME=home,
                RABBITMQ_NODENAME=f"wspbench{secrets.token_hex(4)}@localhost",
                RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
                RABBITMQ_NODE_PORT=str(self.redis_port),
                RABBITMQ_DIST_PORT=str(bench.free_port()),
                RABBITMQ_MNESIA_BASE=os.path.join(d, "mnesia"),
                RABBITMQ_LOG_BASE=os.path.join(d, "log"),
                RABBITMQ_PID_FILE=os.path.join(d, "rabbit.pid"),
                RABBITMQ_CONFIG_FILE=os.path.join(d, "rabbitmq.conf"),
                RABBITMQ_ENABLED_PLUGINS_FILE=os.path.join(
                    d, "enabled_plugins"),
                RABBITMQ_ENABLED_PLUGINS="",
                RABBITMQ_ALLOW_INPUT="",
                ERL_CRASH_DUMP=os.path.join(d, "erl_crash.dump"))
            self.redis = bench.Proc(
                "rabbitmq", [os.path.join(RABBIT_BIN, "rabbitmq-server")],
                self.dir, env=env)
            bench.wait_until(self._amqp_ready, 120, [self.redis],
                             "rabbitmq-server")
            self.url = f"amqp://guest:guest@127.0.0.1:{self.redis_port}/%2f"

        def _amqp_ready(self):
            try:
                with socket.create_connection(
                        ("127.0.0.1", self.redis_port), timeout=1) as s:
                    s.sendall(b"AMQP\x00\x00\x09\x01")
                    data = s.recv(7)
                    return len(data) == 7 and data[0] == 1
            except OSError:
                return False

        def start(self):
            # bench.WspushServer.start() writes a [redis] config: run it
            # with a config writer that appends the broker choice.
            real_open = open
            url_holder = self

            def patched_open(path, mode="r", *a, **kw):
                f = real_open(path, mode, *a, **kw)
                if path.endswith("wspush.conf") and "w" in mode:
                    orig_close = f.close

                    def close():
                        f.write(f"[broker]\nkind = amqp\n[amqp]\n"
                                f"url = {url_holder.url}\n")
                        orig_close()
                    f.close = close
                return f
            bench.open = patched_open
            try:
                super().start()
            finally:
                del bench.open

        def pub_args(self):
            return ["--url", self.url]

    class AmqpBench(bench.Bench):
        def publish(self, srv, count, rate, topic=None, users=None,
                    user_prefix=None, timeout=120):
            if not isinstance(srv, AmqpServer):
                return super().publish(srv, count, rate, topic, users,
                                       user_prefix, timeout)
            args = [sys.executable, os.path.abspath(__file__), "--publish",
                    *srv.pub_args(), "--phase", str(self.phase_no),
                    "--count", str(count), "--rate", str(rate),
                    "--size", "100"]
            if topic:
                args += ["--topic", topic]
            else:
                args += ["--users", str(users), "--user-prefix",
                         user_prefix]
            r = subprocess.run(args, capture_output=True, text=True,
                               timeout=timeout)
            if r.returncode != 0 or not r.stdout.strip():
                raise bench.BenchError(f"amqp publisher failed "
                                       f"({r.returncode}): "
                                       f"{r.stderr.strip()[-500:]}")
            return json.loads(r.stdout.strip().splitlines()[-1])

    def render(results):
        """bench.py's table knows its own peers only: the rows that
        compare the brokers, one column per server of this run."""
        srv = results["servers"]
        names = [n for n in ("wspush", "amqp") if n in srv]
        rows = [
            ("5k x 10/s: CPU-us/delivery, bridge + gateway",
             ("latency", "cpu_us_per_delivery"), 2),
            ("  broker process CPU-us/delivery (apart)",
             ("latency", "redis_cpu_us_per_delivery"), 2),
            ("  p50 ms", ("latency", "p50_ms"), 2),
            ("  p99 ms", ("latency", "p99_ms"), 2),
            ("fan-out: max msg/s, p99<100ms, 5k", ("fanout_max_rate",), 0),
            ("user-targeted: CPU-us/delivery, bridge + gateway",
             ("user", "cpu_us_per_delivery"), 2),
            ("  broker process CPU-us/delivery (apart)",
             ("user", "redis_cpu_us_per_delivery"), 2),
            ("  p50 ms", ("user", "p50_ms"), 2),
            ("  p99 ms", ("user", "p99_ms"), 2),
        ]

        def get(n, path):
            v = srv[n]
            for p in path:
                if not isinstance(v, dict) or p not in v:
                    return None
                v = v[p]
            return v
        head = ["metric"] + [bench.PEERS[n] for n in names]
        out = ["| " + " | ".join(head) + " |",
               "|" + "|".join("---" for _ in head) + "|"]
        for label, path, digits in rows:
            out.append("| " + " | ".join(
                [label] + [bench.fmt(get(n, path), digits)
                           for n in names]) + " |")
        lost = []
        for n in names:
            t = [0, 0, 0]
            for k in ("user", "latency", "burst"):
                r = srv[n].get(k) or {}
                t = [t[0] + (r.get("lost") or 0), t[1] + (r.get("dup") or 0),
                     t[2] + (r.get("reorder") or 0)]
            lost.append("/".join(map(str, t)))
        out.append("| lost/dup/reordered | " + " | ".join(lost) + " |")
        return "\n".join(out) + "\n"

    bench.render = render
    bench.SERVERS["amqp"] = AmqpServer
    bench.PEERS["amqp"] = "wspush (RabbitMQ)"
    bench.PEERS["wspush"] = "wspush (Redis)"
    bench.Bench = AmqpBench
    argv = sys.argv[1:]
    if "--servers" not in argv:
        argv += ["--servers", "wspush,amqp"]
    if "--scenarios" not in argv:
        argv += ["--scenarios", "user,5k"]
    sys.argv = [sys.argv[0]] + argv
    bench.main()


if __name__ == "__main__":
    if "--publish" in sys.argv[1:]:
        sys.exit(publish_main(sys.argv[1:]))
    bench_main()
