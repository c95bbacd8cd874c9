"""A Redis that refuses the bridge's credentials or permissions is a failed
connect, not a link that is up: NOAUTH (a password the URL lacks),
WRONGPASS and NOPERM (an ACL user without a permission the links need)
back off like a refused TCP connection, are logged once per change of
cause, counted in connect_failures, shown as down in stats and /healthz
(503), and the links are never reported up before their handshake
succeeded. Once the cause is fixed, the bridge connects and the outage is
counted."""

import re
import time

import wsp


class AclRedis(wsp.RedisServer):
    """redis-server with extra startup arguments (requirepass, ...). The
    harness client authenticates as the admin user it creates."""

    def __init__(self, h, args=(), admin=None):
        super().__init__(h)
        self.args = list(args)
        self.admin = admin  # (user, password) for self.client()

    def start(self):
        self.proc = self.h.spawn("redis", ["redis-server", "--port",
            self.port, "--bind", "127.0.0.1", "--save", "", "--appendonly",
            "no", "--dir", self.dir, "--daemonize", "no", *self.args])
        c = self.client()
        wsp.wait_until(lambda: wsp._ping(c), 10,
                       f"redis-server on {self.port}",
                       check=self.proc.check_running)
        return self

    def client(self):
        kw = {}
        if self.admin is not None:
            kw = {"username": self.admin[0], "password": self.admin[1]}
        return wsp.redislib.Redis(host="127.0.0.1", port=self.port,
            socket_timeout=wsp.T(10), socket_connect_timeout=wsp.T(5), **kw)


def bridge_log(node):
    with open(node.bridge.err, errors="replace") as f:
        return f.read()


def redis_stats(node):
    return node.stats()["bridge"]["redis"]


# Attempts of two links in WINDOW_S seconds with the backoff (100 ms
# doubling to 5 s): about 6 each. Without it (the defect) it was hundreds.
WINDOW_S = 6
MAX_ATTEMPTS = 30


def check_refused(node, cause):
    """The bridge keeps failing for cause: backs off, logs it once per
    link, counts it, reports down, never says up."""
    time.sleep(WINDOW_S)
    node.bridge.check_running()
    st = redis_stats(node)
    assert st["state"] == "down", st
    assert not st["sub_up"] and not st["cmd_up"], st
    assert 2 <= st["connect_failures"] <= MAX_ATTEMPTS, st
    assert st["reconnects"] == 0, st
    assert st["down_for_ms"] > 0, st
    status, body = wsp.http_get(node.metrics_port, "/healthz")
    assert status == 503, (status, body)

    log = bridge_log(node)
    ups = re.findall(r"redis: link=\w+ up ", log)
    assert ups == [], f"a link reported up: {ups}"
    warns = [l for l in log.splitlines()
             if ": warn: redis: connect(" in l]
    assert any(cause in l for l in warns), warns
    # Once per link and cause, not once per attempt.
    assert len(warns) <= 2, "\n".join(warns)
    return st


def start_bridge(h, redis, url):
    node = wsp.Node(h, "a", redis, workers=1, conf={"redis": {"url": url}})
    node.start_bridge()
    return node


def test_noauth_is_a_failed_connect_with_backoff(h):
    redis = AclRedis(h, ["--requirepass", "s3cret"],
                     admin=("default", "s3cret")).start()
    node = start_bridge(h, redis, f"redis://127.0.0.1:{redis.port}")
    check_refused(node, "NOAUTH")

    # The operator fixes Redis: the links come up, the outage is counted.
    redis.client().config_set("requirepass", "")
    wsp.wait_until(lambda: redis_stats(node)["state"] == "up", 20,
                   "links up once Redis accepts them",
                   check=node.bridge.check_running)
    st = redis_stats(node)
    assert st["outages"] == 1, st
    assert wsp.http_get(node.metrics_port, "/healthz")[0] in (200, 503)


def test_wrongpass_is_a_failed_connect(h):
    redis = AclRedis(h, ["--requirepass", "s3cret"],
                     admin=("default", "s3cret")).start()
    node = start_bridge(h, redis, f"redis://:wrong@127.0.0.1:{redis.port}")
    check_refused(node, "WRONGPASS")


def test_acl_user_without_permissions_is_a_failed_connect(h):
    redis = AclRedis(h).start()
    r = redis.client()
    r.execute_command("ACL", "SETUSER", "admin", "on", ">adm", "~*", "&*",
                      "+@all")
    # May log in and subscribe, but not PUBLISH (the command link's probe)
    # nor subscribe to anything but other prefixes' channels.
    r.execute_command("ACL", "SETUSER", "weak", "on", ">weak",
                      "resetchannels", "&other:*", "~*", "+subscribe",
                      "+xadd")
    r.execute_command("ACL", "SETUSER", "default", "off")
    redis.admin = ("admin", "adm")
    node = start_bridge(h, redis,
                        f"redis://weak:weak@127.0.0.1:{redis.port}")
    check_refused(node, "NOPERM")
