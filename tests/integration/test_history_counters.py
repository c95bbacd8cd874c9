"""History in the node's figures, against the real redis-server, bridge and
gateway: recoveries (full / partial), replayed messages and history reads
counted per worker; the bridge's history state, function-load failures and
range requests in the stats JSON, /metrics (parsed by prometheus_client)
and `wspushctl stats`; /healthz naming "history requested but
unavailable" while it stays 200 (live delivery goes on); and the
accounting equation still holding with replayed frames."""

import json

import pytest
from prometheus_client.parser import text_string_to_metric_families

import wsp
from test_history_bridge import OldRedis
from test_history_recovery import (HIST, _history_built, check_exact, fcall,
                                   frames_until_fence, subscribe,
                                   wait_function)

pytestmark = pytest.mark.skipif(not _history_built(),
    reason="this build refuses [history] size > 0")


def families(node):
    status, body = wsp.http_get(node.metrics_port, "/metrics")
    assert status == 200, body
    return {f.name: f for f in text_string_to_metric_families(body.decode())}


def sample(fams, family, name, **labels):
    """The value of one sample (labels beyond worker/gen must match),
    summed over workers; None if absent."""
    if family not in fams:
        return None
    vals = [s.value for s in fams[family].samples if s.name == name
            and all(s.labels.get(k) == v for k, v in labels.items())]
    return sum(vals) if vals else None


def bridge_health(node):
    status, body = wsp.http_get(node.metrics_port, "/healthz")
    return status, body.decode()


def test_recoveries_replays_and_reads_are_counted_everywhere(h):
    from test_loss_accounting import TERMS_IN, TERMS_OUT
    c = wsp.Cluster(h, nodes=1, workers=1, conf=HIST)
    wait_function(c.r)
    n = c.a
    ch = wsp.uid("cnt")
    to = f"channel:{ch}"
    since = fcall(c.r, to, b"0")
    ids = [fcall(c.r, to, json.dumps(i)) for i in range(20)]
    # A full recovery: since is still stored.
    cl = n.connect(wsp.uid("u"))
    assert subscribe(cl, ch, since=since).get("recovered") is True
    check_exact(frames_until_fence(c.r, cl), to, ids)
    # A partial one: since "1-0" is older than anything stored, so the
    # promise cannot be made; everything stored (21) is replayed.
    cl2 = n.connect(wsp.uid("u"))
    assert subscribe(cl2, ch, since="1-0").get("recovered") is False
    check_exact(frames_until_fence(c.r, cl2), to, [since] + ids)
    # One history read.
    cl2.send_json({"op": "history", "to": to, "limit": 5, "ref": 7})
    rep = cl2.recv_json()
    assert [m["id"] for m in rep["messages"]] == ids[-5:]

    want = {"recoveries_full": 1, "recoveries_partial": 1,
            "replayed": 20 + 21, "history_reads": 1,
            "history_read_errors": 0}

    def counted():
        st = n.stats()
        return all(wsp.worker_total(st, k) == v for k, v in want.items())
    wsp.wait_until(counted, 10, f"worker counters {want}")

    st = n.stats()
    hist = st["bridge"]["history"]
    assert hist["state"] == "ready" and hist["error"] == "", hist
    assert hist["load_failures"] == 0
    assert hist["range_requests"] == 3, hist
    assert hist["ranges_recovered"] >= 1 and hist["range_bad"] == 0 \
        and hist["range_failed"] == 0, hist
    assert hist["range_entries"] == 20 + 21 + 5, hist
    # Replayed frames are targets: the equation holds.
    for w in st["workers"]:
        k = w["counters"]
        assert sum(k[t] for t in TERMS_IN) == sum(k[t] for t in TERMS_OUT), k

    # /metrics is a snapshot renewed every second or so.
    want_metrics = [
        ("wspush_recoveries", "wspush_recoveries_total",
         {"result": "full"}, 1),
        ("wspush_recoveries", "wspush_recoveries_total",
         {"result": "partial"}, 1),
        ("wspush_replayed_messages", "wspush_replayed_messages_total", {},
         41),
        ("wspush_history_reads", "wspush_history_reads_total",
         {"result": "ok"}, 1),
        ("wspush_history_reads", "wspush_history_reads_total",
         {"result": "error"}, 0),
        ("wspush_history_up", "wspush_history_up", {}, 1),
        ("wspush_history_enabled", "wspush_history_enabled", {}, 1),
        ("wspush_history_load_failures",
         "wspush_history_load_failures_total", {}, 0),
        ("wspush_history_range_requests",
         "wspush_history_range_requests_total", {}, 3),
        ("wspush_history_range_errors", "wspush_history_range_errors_total",
         {"reason": "failed"}, 0),
        ("wspush_history_range_entries",
         "wspush_history_range_entries_total", {}, 46),
    ]
    seen = {}

    def metrics_agree():
        fams = families(n)
        seen.clear()
        for fam, name, labels, v in want_metrics:
            seen[(name, tuple(labels.items()))] = sample(fams, fam, name,
                                                         **labels)
        return all(seen[(name, tuple(labels.items()))] == v
                   for _, name, labels, v in want_metrics)
    wsp.wait_until(metrics_agree, 10, f"/metrics to agree: {seen}")

    status, body = bridge_health(n)
    assert status == 200 and "history" not in body, body
    cp = n.ctl("stats")
    assert cp.returncode == 0, cp.stderr
    assert "history  ready" in cp.stdout, cp.stdout
    assert "recoveries 1 full 1 partial  replayed 41  reads 1" in cp.stdout


def test_history_unavailable_is_reported_and_health_stays_200(h):
    redis = OldRedis(h).start()
    n = wsp.Node(h, "a", redis, workers=1, conf=HIST).start()

    def reported():
        hist = n.stats()["bridge"]["history"]
        return hist["state"] == "unavailable" and hist["load_failures"] >= 1
    wsp.wait_until(reported, 15, "stats to say history is unavailable")
    assert "7.0" in n.stats()["bridge"]["history"]["error"]

    def healthy():
        return bridge_health(n)[0] == 200
    wsp.wait_until(healthy, 10, "bridge /healthz 200")
    status, body = bridge_health(n)
    assert status == 200, body
    assert "history requested but unavailable" in body, body

    # Delivery goes on; the history read is an error, counted.
    r = redis.client()
    cl = n.connect(wsp.uid("u"))
    assert cl.request({"op": "history", "to": "all", "ref": 3})["code"] \
        == "unavailable"
    r.publish(f"{wsp.PREFIX}:all", b'{"live":1}')
    assert wsp.datas(wsp.fence(r, [cl])[0]) == [{"live": 1}]
    wsp.wait_until(
        lambda: wsp.worker_total(n.stats(), "history_read_errors") == 1,
        10, "the failed read to be counted")

    def metrics_say_it():
        fams = families(n)
        return (sample(fams, "wspush_history_up", "wspush_history_up") == 0
                and sample(fams, "wspush_history_enabled",
                           "wspush_history_enabled") == 1
                and sample(fams, "wspush_history_load_failures",
                           "wspush_history_load_failures_total") >= 1
                and sample(fams, "wspush_history_reads",
                           "wspush_history_reads_total",
                           result="error") == 1)
    wsp.wait_until(metrics_say_it, 10, "/metrics to say history is down")
    cp = n.ctl("stats")
    assert cp.returncode == 0, cp.stderr
    assert "history  unavailable" in cp.stdout, cp.stdout
    assert "history requested but unavailable:" in cp.stdout, cp.stdout


def test_history_off_is_said_and_nothing_more(h):
    c = wsp.Cluster(h, nodes=1, workers=1)
    n = c.a
    assert n.stats()["bridge"]["history"]["state"] == "off"
    fams = families(n)
    assert sample(fams, "wspush_history_enabled",
                  "wspush_history_enabled") == 0
    assert sample(fams, "wspush_history_up", "wspush_history_up") == 0
    wsp.wait_until(lambda: bridge_health(n)[0] == 200, 10, "/healthz 200")
    assert "history" not in bridge_health(n)[1]
    cp = n.ctl("stats")
    assert cp.returncode == 0 and "history" not in cp.stdout, cp.stdout
