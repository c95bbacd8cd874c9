"""A gateway whose bridge cannot be reached (node.runtime_dir names a
directory without the bridge's sockets) says so in its log, naming the
socket's path and the reason, and says it again periodically while it
lasts, instead of waiting silently."""

import os
import re

import wsp


def err_lines(proc, pattern):
    with open(proc.err, errors="replace") as f:
        return [ln for ln in f if re.search(pattern, ln)]


def test_unreachable_bus_is_logged_with_path_and_reason(h):
    redis = wsp.RedisServer(h).start()
    missing = os.path.join(h.dir, "no-such-dir")
    node = wsp.Node(h, "a", redis, workers=1,
                    conf={"node": {"runtime_dir": missing}})
    gw = h.spawn("gateway-a", [wsp.binary("gateway/wspush-gateway"), "-c",
                               node.conf], cls=wsp.GatewayProc)
    path = re.escape(os.path.join(missing, "bus1.ipc"))
    pattern = f"cannot reach the bridge at {path}: No such file or directory"
    wsp.wait_until(lambda: len(err_lines(gw, pattern)) >= 1, 10,
                   "the first unreachable-bus line", check=gw.check_running)
    # Periodic, not once: the next one comes about 10 s later.
    wsp.wait_until(lambda: len(err_lines(gw, pattern)) >= 2, 15,
                   "the unreachable-bus line again", check=gw.check_running)
    assert len(err_lines(gw, pattern)) == 2, err_lines(gw, pattern)
