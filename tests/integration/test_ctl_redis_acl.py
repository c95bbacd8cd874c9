"""wspushctl logs in to Redis as the ACL user of the config's URL
(`AUTH user password`), not as `default`; a refused login fails with the
server named and the password never printed."""

import wsp


def test_publish_and_online_log_in_as_the_acl_user(h):
    redis = wsp.RedisServer(h).start()
    r = redis.client()
    r.execute_command("ACL", "SETUSER", "ops", "on", ">pw", "~*", "&*",
                      "+@all")
    # Only the ACL user can do anything from now on.
    r.execute_command("ACL", "SETUSER", "default", "off")
    target = f"127.0.0.1:{redis.port}"
    node = wsp.Node(h, "a", redis,
                    conf={"redis": {"url": f"redis://ops:pw@{target}"}})

    cp = node.ctl("publish", "--channel", "news", "hello")
    assert cp.returncode == 0 and cp.stdout.strip() == "0", cp
    cp = node.ctl("online")
    assert cp.returncode == 0 and cp.stdout.startswith("online: 0 nodes"), cp

    bad = wsp.Node(h, "b", redis,
                   conf={"redis": {"url": f"redis://ops:nope@{target}"}})
    cp = bad.ctl("publish", "--all", "hello")
    assert cp.returncode == 1, cp
    assert "WRONGPASS" in cp.stderr and target in cp.stderr, cp.stderr
    assert "nope" not in cp.stderr, cp.stderr
