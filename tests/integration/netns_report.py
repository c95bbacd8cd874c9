"""A pytest plugin: one summary line saying how many namespace tests
(test_netns_*.py) ran and how many were skipped, and why. The namespace
tests load it with `pytest_plugins`; the ctest entry that runs them reports
"Skipped" when the line says none ran. With WSPUSH_NETNS_SUMMARY set (the
ctest entries set it to the file `make test` prints at the end), the line
is appended there too."""

import os

_outcomes = {"ran": 0, "skipped": 0, "reasons": set()}


def pytest_runtest_logreport(report):
    if "test_netns_" not in report.nodeid:
        return
    if report.skipped:
        _outcomes["skipped"] += 1
        if isinstance(report.longrepr, tuple):
            _outcomes["reasons"].add(str(report.longrepr[2]))
    elif report.when == "call":
        _outcomes["ran"] += 1


def pytest_terminal_summary(terminalreporter):
    if not (_outcomes["ran"] or _outcomes["skipped"]):
        return
    line = (f"wspush namespace tests: {_outcomes['ran']} ran, "
            f"{_outcomes['skipped']} skipped")
    if _outcomes["reasons"]:
        line += " (" + "; ".join(sorted(_outcomes["reasons"])) + ")"
    terminalreporter.write_line(line)
    path = os.environ.get("WSPUSH_NETNS_SUMMARY")
    if path:
        files = sorted({os.path.basename(a) for a in
                        terminalreporter.config.args})
        with open(path, "a") as f:
            f.write(f"{line} [{' '.join(files)}]\n")
