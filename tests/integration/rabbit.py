"""rabbit.py - a private rabbitmq-server for the AMQP tests.

One RabbitMQ node per pytest session (it takes seconds to start), shared by
every AMQP test of the run; tests that restart it leave it running again.
Everything it writes lives in its own directory: node name, AMQP and
distribution ports on loopback, mnesia and log directories, a HOME of its
own with its own Erlang cookie (so the node and our rabbitmqctl calls agree
on it, and nothing of the user's ~/.erlang.cookie is touched), and an
enabled-plugins file holding `[].` (no management plugin: faster start).

Debian's /usr/sbin wrappers refuse to run as anyone but root or the
rabbitmq user and drop privileges; the real scripts in /usr/lib/rabbitmq/bin
run as we are. The server runs in the foreground as our child (the
-detached mode loses the PID) and is stopped by that PID. epmd is shared by
every Erlang node on the machine and is left alone: the unique node name is
what keeps instances apart.
"""

import json
import os
import secrets
import signal
import socket
import subprocess
import time

import wsp

RABBIT_BIN = "/usr/lib/rabbitmq/bin"


def available():
    return os.access(os.path.join(RABBIT_BIN, "rabbitmq-server"), os.X_OK)


class RabbitServer:
    """A private rabbitmq-server; h is a wsp.Harness (owns the process)."""

    def __init__(self, h, port=None):
        self.h = h
        self.port = port or wsp.free_port()
        self.dist_port = wsp.free_port()
        self.tag = secrets.token_hex(4)
        self.node = f"wspit{self.tag}@localhost"
        self.dir = os.path.join(h.dir, f"rabbit-{self.port}")
        self.home = os.path.join(self.dir, "home")
        for d in ("home", "mnesia", "log"):
            os.makedirs(os.path.join(self.dir, d), exist_ok=True)
        cookie = os.path.join(self.home, ".erlang.cookie")
        if not os.path.exists(cookie):
            with open(cookie, "w") as f:
                f.write(secrets.token_hex(16).upper())
            os.chmod(cookie, 0o400)
        with open(os.path.join(self.dir, "enabled_plugins"), "w") as f:
            f.write("[].\n")
        # Small heartbeat floor so a dead bridge is noticed quickly; guest
        # may log in over loopback (the default already allows it).
        with open(os.path.join(self.dir, "rabbitmq.conf"), "w") as f:
            f.write(f"listeners.tcp.default = 127.0.0.1:{self.port}\n"
                    "loopback_users.guest = true\n"
                    "log.console = true\n"
                    "log.console.level = warning\n"
                    "log.file = false\n")
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}/%2f"
        self.proc = None
        self.start_s = None  # measured start time of the last start()

    def env(self):
        return {
            "HOME": self.home,
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": os.path.join(self.dir, "mnesia"),
            "RABBITMQ_LOG_BASE": os.path.join(self.dir, "log"),
            "RABBITMQ_PID_FILE": os.path.join(self.dir, "rabbit.pid"),
            "RABBITMQ_CONFIG_FILE": os.path.join(self.dir, "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE":
                os.path.join(self.dir, "enabled_plugins"),
            "RABBITMQ_ENABLED_PLUGINS": "",
            "RABBITMQ_ALLOW_INPUT": "",
            # No sanitizer variables matter here; keep the CLI quiet.
            "ERL_CRASH_DUMP": os.path.join(self.dir, "erl_crash.dump"),
        }

    def start(self, timeout=60):
        t0 = time.monotonic()
        self.proc = self.h.spawn("rabbitmq",
            [os.path.join(RABBIT_BIN, "rabbitmq-server")], env=self.env())
        wsp.wait_until(self._amqp_ready, timeout,
            f"rabbitmq-server {self.node} on port {self.port}",
            check=self.proc.check_running, interval=0.1)
        self.start_s = time.monotonic() - t0
        return self

    def _amqp_ready(self):
        """The AMQP listener answers a protocol header with Connection.Start
        (the port opens only once the broker is booted)."""
        try:
            with socket.create_connection(("127.0.0.1", self.port),
                                          timeout=1) as s:
                s.sendall(b"AMQP\x00\x00\x09\x01")
                data = s.recv(7)
                return len(data) == 7 and data[0] == 1
        except OSError:
            return False

    def stop(self, timeout=30):
        """SIGTERM to the foreground server (it shuts down cleanly)."""
        self.proc.stop(timeout=timeout)

    def kill(self):
        self.proc.kill()

    def beam_pid(self):
        """The Erlang VM's pid: the foreground script's child beam.smp
        (epmd, shared by every node, is never touched)."""
        for pid in wsp.children(self.proc.pid):
            try:
                with open(f"/proc/{pid}/comm") as f:
                    if f.read().strip().startswith("beam"):
                        return pid
            except OSError:
                pass
        raise wsp.HarnessError(f"no beam.smp under pid {self.proc.pid}")

    def pause(self):
        """SIGSTOP the VM: the broker stops answering, sockets stay open
        (a silent peer, as behind a dead link)."""
        os.kill(self.beam_pid(), signal.SIGSTOP)

    def resume(self):
        os.kill(self.beam_pid(), signal.SIGCONT)

    def restart(self):
        self.stop()
        self.start()

    def ctl(self, *args, timeout=30):
        """rabbitmqctl against this node; returns stdout (text)."""
        env = wsp._child_env(self.env())
        cp = subprocess.run([os.path.join(RABBIT_BIN, "rabbitmqctl"),
            "-n", self.node, *[str(a) for a in args]], env=env,
            stdin=subprocess.DEVNULL, capture_output=True,
            timeout=wsp.T(timeout))
        if cp.returncode != 0:
            raise wsp.HarnessError(f"rabbitmqctl {' '.join(map(str, args))}"
                f" failed rc={cp.returncode}: {cp.stderr.decode()[-800:]}")
        return cp.stdout.decode()

    def ctl_json(self, *args, timeout=30):
        out = self.ctl(*args, "--formatter", "json", "--quiet",
                       timeout=timeout)
        out = out.strip()
        return json.loads(out) if out else []

    def bindings(self, source):
        """(routing_key, destination) pairs of exchange source."""
        rows = self.ctl_json("list_bindings", "source_name", "routing_key",
                             "destination_name", "destination_kind")
        return sorted((r["routing_key"], r["destination_name"])
                      for r in rows if r["source_name"] == source)

    def queues(self):
        """{name: messages} of every queue."""
        rows = self.ctl_json("list_queues", "name", "messages")
        return {r["name"]: r["messages"] for r in rows}

    def connections(self):
        """[{pid, name, client_properties}] of the client connections."""
        return self.ctl_json("list_connections", "pid", "name",
                             "client_properties")

    def close_connections(self, why="test"):
        """Closes every client connection from the broker side
        (connection.close, then the TCP close)."""
        self.ctl("close_all_connections", why)


def pika_conn(url):
    import pika
    params = pika.URLParameters(url)
    params.socket_timeout = wsp.T(10)
    params.blocked_connection_timeout = wsp.T(10)
    return pika.BlockingConnection(params)
