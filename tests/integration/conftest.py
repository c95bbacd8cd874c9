"""Fixtures of the wspush integration suite (README.md in this directory).

- `h`: a private Harness (directory, processes) for tests that start their
  own Redis/nodes, usually because they restart or kill something.
- `cluster`: a shared two-node cluster (one Redis, two nodes with two
  workers each, client_publish = all, max_subscriptions = 8) for tests that
  do not disturb it. It is restarted if a test leaves it unhealthy.
Every test fails if a process it used died by an unexpected signal, exited
on its own, or wrote a sanitizer report. Logs are attached to failures; the
directory is kept on failure or with WSPUSH_TEST_LEAVE=1.
"""

import os
import signal
import sys
import tempfile

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wsp  # noqa: E402

SHARED_CONF = {"gateway": {"client_publish": "all", "max_subscriptions": 8}}
TEST_LIMIT_S = float(os.environ.get("WSPUSH_TEST_LIMIT_S") or "150")

_base = None
_kept = []


def base_dir():
    global _base
    if _base is None:
        _base = tempfile.mkdtemp(prefix="wspush-it-", dir="/tmp")
    return _base


def _keep(d, why):
    _kept.append((d, why))


def pytest_report_header(config):
    return (f"wspush build dir: {wsp.build_dir()}  "
            f"timeout mult: {wsp.MULT}  leave: {wsp.LEAVE}")


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """With WSPUSH_TEST_SUMMARY set (ctest sets it), writes one line there:
    how many tests passed, failed and were skipped, and why they were
    skipped. `make test` prints it: ctest shows no output of a passing
    test, and a skipped test (e.g. one that needs root) must not pass
    unnoticed."""
    path = os.environ.get("WSPUSH_TEST_SUMMARY")
    if not path:
        return
    stats = terminalreporter.stats
    parts = [f"{len(stats[k])} {k}" for k in
             ("passed", "failed", "error", "skipped", "xfailed", "xpassed")
             if stats.get(k)]
    why = {}
    for rep in stats.get("skipped", []):
        r = rep.longrepr
        reason = r[2] if isinstance(r, tuple) and len(r) == 3 else str(r)
        reason = reason.removeprefix("Skipped: ")
        why[reason] = why.get(reason, 0) + 1
    line = "integration tests: " + (", ".join(parts) or "none ran")
    if why:
        line += "; skipped: " + "; ".join(
            f"{n} x {r}" if n > 1 else r for r, n in sorted(why.items()))
    with open(path, "w") as f:
        f.write(line + "\n")


def pytest_sessionfinish(session, exitstatus):
    if _base is None:
        return
    if _kept:
        print(f"\nwspush: kept test directories under {_base}:")
        for d, why in _kept:
            print(f"  {d}  ({why})")
    else:
        wsp.rmtree(_base)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)
    if rep.failed and rep.when == "call":
        logs = "".join(h.logs() for h in wsp.ACTIVE)
        if logs:
            rep.sections.append(("wspush process logs (tails)", logs))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    """A hard per-test bound, on top of every wait being bounded."""
    limit = int(TEST_LIMIT_S * wsp.MULT)

    def on_alarm(signum, frame):
        raise wsp.HarnessError(f"test exceeded {limit}s "
            "(WSPUSH_TEST_LIMIT_S x WSPUSH_TEST_TIMEOUT_MULT)")
    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(limit)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _failed(node):
    return any(getattr(getattr(node, "rep_" + w, None), "failed", False)
               for w in ("setup", "call"))


@pytest.fixture(autouse=True)
def _close_clients():
    yield
    wsp.close_all()


@pytest.fixture
def h(request):
    """A private harness: start your own Redis/nodes with wsp.Cluster(h)."""
    d = wsp.new_dir(base_dir(), request.node.name)
    harness = wsp.Harness(d)
    yield harness
    wsp.close_all()
    problems = harness.finish()
    if problems:
        _keep(d, "process problems")
        pytest.fail("process problems:\n" + "\n".join(problems) + "\n"
                    + harness.logs(), pytrace=False)
    if _failed(request.node) or wsp.LEAVE:
        _keep(d, "failed" if _failed(request.node) else "WSPUSH_TEST_LEAVE")
    else:
        wsp.rmtree(d)


class _Shared:
    def __init__(self):
        self.h = None
        self.cluster = None
        self.broken = False
        self.failed = False
        self.start_error = None

    def get(self):
        if self.start_error is not None:
            pytest.fail("the shared cluster failed to start earlier in this "
                        f"session: {self.start_error}", pytrace=False)
        if self.cluster is not None and self.broken:
            self.discard()
        if self.cluster is None:
            self.h = wsp.Harness(wsp.new_dir(base_dir(), "shared"))
            self.broken = self.failed = False
            try:
                self.cluster = wsp.Cluster(self.h, nodes=2, workers=2,
                    conf=SHARED_CONF)
            except BaseException as e:
                self.start_error = str(e).splitlines()[0]
                self.h.finish()
                _keep(self.h.dir, "shared cluster failed to start")
                self.h = None
                raise
        return self.cluster

    def discard(self):
        problems = self.h.finish() if self.h else []
        if self.h is not None:
            if problems or self.failed or self.broken or wsp.LEAVE:
                _keep(self.h.dir, "shared cluster")
            else:
                wsp.rmtree(self.h.dir)
        self.h = self.cluster = None
        return problems


@pytest.fixture(scope="session")
def _shared():
    s = _Shared()
    yield s
    problems = s.discard()
    if problems:
        pytest.fail("shared cluster, at shutdown:\n" + "\n".join(problems),
                    pytrace=False)


@pytest.fixture
def cluster(request, _shared):
    """The shared two-node cluster (see the module docstring)."""
    c = _shared.get()
    yield c
    wsp.close_all()
    problems = c.health()
    if _failed(request.node):
        _shared.failed = True
    if problems:
        _shared.broken = True
        pytest.fail("shared cluster problems during this test:\n"
                    + "\n".join(problems) + "\n" + c.h.logs(), pytrace=False)
