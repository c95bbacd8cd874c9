"""Both programs refuse a config with an unknown key or a bad value at
start (exit status != 0, "file:line" and the key on stderr), and `-t`
prints the effective values of a good one."""

import os
import re
import signal
import subprocess

import pytest

import wsp

PROGRAMS = ["bridge/wspush-bridge", "gateway/wspush-gateway"]

# (section, key, value, name to find in the message)
BAD = [
    ("gateway", "wrokers", "2", "wrokers"),
    ("bridge", "heartbeat", "200", "heartbeat"),
    ("bridge", "coalesce_ms", "51", "coalesce_ms"),
    ("gateway", "workers", "lots", "workers"),
    ("gateway", "listen", "127.0.0.1:99999", "listen"),
    ("gateway", "delivery", "carrier-pigeon", "delivery"),
    ("redis", "routing", "sometimes", "routing"),
    ("gateway", "max_message_bytes", "-5", "max_message_bytes"),
]


def good_sections(h):
    return {
        "node": {"id": "node-t", "runtime_dir": os.path.join(h.dir, "run"),
                 "log_level": "debug"},
        "redis": {"url": f"redis://127.0.0.1:{wsp.free_port()}",
                  "prefix": "wspush"},
        "gateway": {"listen": "127.0.0.1:18123", "workers": 2},
        "auth": {"mode": "none"},
        "bridge": {"heartbeat_ms": 200,
                   "metrics_listen": "127.0.0.1:18124"},
    }


def run(argv, timeout=10):
    """Runs a program that should exit by itself; one that keeps running is
    stopped (with any children) and reported."""
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, env=wsp._child_env(),
                         preexec_fn=wsp._child_setup)
    try:
        out, err = p.communicate(timeout=wsp.T(timeout))
    except subprocess.TimeoutExpired:
        for pid in wsp.children(p.pid):
            os.kill(pid, signal.SIGKILL)
        p.kill()
        out, err = p.communicate()
        pytest.fail(f"{' '.join(argv)} kept running for {wsp.T(timeout)}s "
                    f"instead of refusing the config; stderr:\n{err}")
    cp = subprocess.CompletedProcess(argv, p.returncode, out, err)
    wsp.check_tool_output(argv, cp)
    return cp


@pytest.mark.parametrize("prog", PROGRAMS)
@pytest.mark.parametrize("bad", BAD, ids=[f"{b[0]}.{b[1]}={b[2]}"
                                          for b in BAD])
@pytest.mark.parametrize("check_only", [False, True], ids=["start", "-t"])
def test_bad_config_is_refused_with_file_line_key(h, prog, bad, check_only):
    sec, key, value, name = bad
    sections = good_sections(h)
    sections[sec][key] = value
    path = os.path.join(h.dir, "bad.conf")
    line = wsp.write_conf(path, sections)[(sec, key)]

    argv = [wsp.binary(prog), "-c", path] + (["-t"] if check_only else [])
    cp = run(argv)

    assert cp.returncode != 0, f"{prog} accepted {sec}.{key} = {value}"
    where = re.compile(re.escape(path) + f":{line}\\b|"
                       + re.escape(os.path.basename(path)) + f":{line}\\b")
    assert where.search(cp.stderr), \
        f"stderr does not name {path}:{line}:\n{cp.stderr}"
    assert name in cp.stderr, f"stderr does not name {name}:\n{cp.stderr}"


@pytest.mark.parametrize("prog", PROGRAMS)
def test_check_flag_prints_effective_values(h, prog):
    path = os.path.join(h.dir, "good.conf")
    wsp.write_conf(path, good_sections(h))
    cp = run([wsp.binary(prog), "-c", path, "-t"])
    assert cp.returncode == 0, cp.stderr
    out = cp.stdout + cp.stderr
    for key, value in [
            ("listen", "127.0.0.1:18123"),         # from the file
            ("workers", "2"),
            ("heartbeat_ms", "200"),
            ("id", "node-t"),
            ("max_subscriptions", "128"),          # defaults
            ("idle_timeout_s", "60"),
            ("client_publish", "channels"),
            ("routing", "interest")]:
        assert re.search(rf"^\s*{key}\s*=\s*{re.escape(value)}\s*$", out,
                         re.M), f"-t output lacks {key} = {value}:\n{out}"
