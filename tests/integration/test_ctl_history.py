"""wspushctl with history on, against the real redis-server, bridge and
gateway: `publish` goes through FCALL wspush_publish (stored, delivered
with its id, prints the id; --plain still PUBLISHes), and `history
ADDRESS [--since ID] [--limit N]` prints what the stream holds, oldest
first, with --timeout honoured like the other commands."""

import json
import re
import signal
import time

import pytest

import wsp
from test_history_recovery import (HIST, _history_built, fcall,
                                   frames_until_fence, msg_ids, subscribe,
                                   wait_function)

pytestmark = pytest.mark.skipif(not _history_built(),
    reason="this build refuses [history] size > 0")

ID_RE = re.compile(r"^\d+-\d+$")


@pytest.fixture
def hc(h):
    c = wsp.Cluster(h, nodes=1, workers=1, conf=HIST)
    wait_function(c.r)
    return c


def lines(cp):
    assert cp.returncode == 0, cp.stderr
    return cp.stdout.splitlines()


def test_publish_uses_the_function_and_prints_the_id(hc):
    n = hc.a
    ch = wsp.uid("ctlp")
    to = f"channel:{ch}"
    cl = n.connect(wsp.uid("u"))
    subscribe(cl, ch)
    cp = n.ctl("publish", "--channel", ch, '{"n":1}')
    assert cp.returncode == 0, cp.stderr
    first = cp.stdout.strip()
    assert ID_RE.match(first), cp.stdout
    cp = n.ctl("publish", "--channel", ch, "--from", "svc", '{"n":2}')
    second = cp.stdout.strip()
    assert cp.returncode == 0 and ID_RE.match(second), cp
    frames = frames_until_fence(hc.r, cl)
    assert msg_ids(frames, to) == [first, second]
    assert [f["data"] for f in frames] == [{"n": 1}, {"n": 2}]
    assert [f.get("from") for f in frames] == [None, "svc"]
    stored = hc.r.xrange(f"{wsp.PREFIX}:{to}")
    assert [i.decode() for i, _ in stored] == [first, second]
    assert stored[1][1][b"from"] == b"svc"

    # --plain: PUBLISH as before (receiver count, nothing stored).
    cp = n.ctl("publish", "--plain", "--channel", ch, '{"n":3}')
    assert cp.returncode == 0 and cp.stdout.strip() == "1", cp
    assert wsp.datas(frames_until_fence(hc.r, cl)) == [{"n": 3}]
    assert hc.r.xlen(f"{wsp.PREFIX}:{to}") == 2
    # --id is the envelope's: refused unless --plain.
    cp = n.ctl("publish", "--id", "x1", "--channel", ch, "m")
    assert cp.returncode == 2 and "--plain" in cp.stderr, cp


def test_history_prints_what_is_stored(hc):
    n = hc.a
    to = f"channel:{wsp.uid('ctlh')}"
    ids = [fcall(hc.r, to, json.dumps({"i": i}), frm="svc" if i == 3 else None)
           for i in range(10)]
    got = lines(n.ctl("history", to))
    assert [g.split(" ", 1)[0] for g in got] == ids
    assert got[0] == f'{ids[0]} {{"i": 0}}'
    assert got[3] == f'{ids[3]} from=svc {{"i": 3}}'
    # The last N.
    got = lines(n.ctl("history", to, "--limit", "3"))
    assert [g.split(" ", 1)[0] for g in got] == ids[-3:]
    # The first N after since (exclusive); "0": from the oldest.
    got = lines(n.ctl("history", "--since", ids[4], "--limit", "2", to))
    assert [g.split(" ", 1)[0] for g in got] == ids[5:7]
    got = lines(n.ctl("history", to, "--since", "0", "--limit", "4"))
    assert [g.split(" ", 1)[0] for g in got] == ids[:4]
    assert lines(n.ctl("history", to, "--since", ids[-1])) == []
    # Nothing stored: nothing printed, success.
    assert lines(n.ctl("history", "user:nobody-here")) == []
    # Bytes that would break a line are escaped.
    nl = fcall(hc.r, "all", b"a\nb\\c\x01")
    got = lines(n.ctl("history", "all", "--limit", "1"))
    assert got == [f"{nl} a\\x0ab\\x5cc\\x01"]


@pytest.mark.parametrize("args", [
    ("history",),
    ("history", "nonsense"),
    ("history", "channel:"),
    ("history", "user:a b"),
    ("history", "all", "--since", "yesterday"),
    ("history", "all", "--since", "1-2-3"),
    ("history", "all", "--limit", "0"),
    ("history", "all", "--limit", "abc"),
    ("history", "all", "--limit", "99999999999"),
    ("history", "all", "--timeout", "0"),
    ("history", "all", "channel:x"),
])
def test_history_bad_usage(hc, args):
    cp = hc.a.ctl(*args)
    assert cp.returncode == 2, cp
    assert cp.stdout == "", cp.stdout


def test_history_and_publish_honour_the_timeout(hc):
    n = hc.a
    hc.redis.proc.signal(signal.SIGSTOP)
    try:
        for args in (("history", "all", "--timeout", "1"),
                     ("publish", "--timeout", "1", "--all", "x")):
            t0 = time.monotonic()
            cp = n.ctl(*args, timeout=30)
            took = time.monotonic() - t0
            assert cp.returncode == 1, cp
            assert f"127.0.0.1:{hc.redis.port}" in cp.stderr, cp.stderr
            assert "did not answer within 1 s" in cp.stderr, cp.stderr
            assert took < 1 + wsp.T(2), took
    finally:
        hc.redis.proc.signal(signal.SIGCONT)
    wsp.wait_until(lambda: n.ctl("history", "all").returncode == 0, 15,
                   "history to work after SIGCONT", interval=0.2)


def test_publish_without_history_still_prints_receivers(h):
    c = wsp.Cluster(h, nodes=1, workers=1)
    cl = c.a.connect(wsp.uid("u"))
    cp = c.a.ctl("publish", "--all", '{"x":1}')
    assert cp.returncode == 0 and cp.stdout.strip() == "1", cp
    assert wsp.datas(wsp.fence(c.r, [cl])[0]) == [{"x": 1}]
    assert not c.r.exists(f"{wsp.PREFIX}:all")
