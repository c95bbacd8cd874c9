"""`wspushctl listen URL`: a WebSocket client for operators. It sends its
--send messages once connected, prints every message on a line, stops
after --count, and says why when the server refuses it."""

import json
import subprocess
import time

import wsp


def listen(*args):
    argv = [wsp.binary("bridge/wspushctl"), "listen"] + [str(a) for a in args]
    return argv, subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                  stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True,
                                  env=wsp._child_env())


def finish(argv, p, timeout=15):
    try:
        out, err = p.communicate(timeout=wsp.T(timeout))
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        raise wsp.HarnessError(f"{' '.join(argv)} did not finish")
    cp = subprocess.CompletedProcess(argv, p.returncode, out, err)
    wsp.check_tool_output(argv, cp)
    return cp


def test_listen_subscribes_and_prints_what_arrives(cluster):
    node = cluster.a
    u, ch = wsp.uid("ls"), wsp.uid("lsch")
    sub = json.dumps({"op": "subscribe", "channel": ch, "ref": 7})
    argv, p = listen(node.url(u), "--send", sub, "--count", 3,
                     "--timeout", 30)
    lines = []
    deadline = time.monotonic() + wsp.T(20)
    while len(lines) < 2:
        assert time.monotonic() < deadline, lines
        line = p.stdout.readline()
        assert line, f"listen ended early: {p.stderr.read()}"
        lines.append(json.loads(line))
    assert lines[0]["op"] == "welcome" and lines[0]["user"] == u, lines
    assert wsp.norm(lines[1]) == {"op": "subscribed", "channel": ch,
                                  "ref": 7}
    cluster.publish(f"channel:{ch}", json.dumps({"hello": "listen"}))
    cp = finish(argv, p)
    assert cp.returncode == 0, cp.stderr
    last = json.loads(cp.stdout.strip().splitlines()[-1])
    assert wsp.norm(last) == {"op": "msg", "to": f"channel:{ch}",
                              "data": {"hello": "listen"}}, last


def test_listen_reports_refusals_and_bad_urls(cluster):
    node = cluster.a
    argv, p = listen(f"ws://127.0.0.1:{node.port}/nope?user=x", "--count", 1)
    cp = finish(argv, p)
    assert cp.returncode == 1 and "HTTP 404" in cp.stderr, cp

    port = wsp.free_port()
    argv, p = listen(f"ws://127.0.0.1:{port}/ws", "--count", 1)
    cp = finish(argv, p)
    assert cp.returncode == 1 and cp.stderr, cp

    for bad in ("http://127.0.0.1/ws", "nonsense"):
        argv, p = listen(bad)
        cp = finish(argv, p)
        assert cp.returncode == 2 and bad in cp.stderr, cp

    # Without --count, a timeout is a normal end; with it, a failure.
    argv, p = listen(node.url(wsp.uid("lt")), "--timeout", 0.5)
    cp = finish(argv, p)
    assert cp.returncode == 0, cp
    assert json.loads(cp.stdout.splitlines()[0])["op"] == "welcome"
    argv, p = listen(node.url(wsp.uid("lt")), "--count", 5, "--timeout", 0.5)
    cp = finish(argv, p)
    assert cp.returncode == 1 and "1 of 5 messages" in cp.stderr, cp
