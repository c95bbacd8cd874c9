"""The bridge's /metrics (Prometheus text format, parsed by
prometheus_client, not by us) and /healthz on [bridge] metrics_listen."""

import json

from prometheus_client.parser import text_string_to_metric_families

import wsp


def families(node):
    status, body = wsp.http_get(node.metrics_port, "/metrics")
    assert status == 200, body
    return {f.name: f for f in text_string_to_metric_families(body.decode())}


def sample_sum(fams, family, sample):
    return sum(s.value for s in fams[family].samples if s.name == sample)


def stats_frames(node):
    cp = node.ctl("stats", "--json")
    assert cp.returncode == 0, cp.stderr
    st = json.loads(cp.stdout)
    return sum(w["counters"].get("frames_out", 0) for w in st["workers"])


def test_metrics_match_stats_and_healthz_follows_redis(h):
    c = wsp.Cluster(h, nodes=1, workers=2)
    node = c.a
    clients = node.connect_many([wsp.uid("m") for _ in range(4)])
    for i in range(3):
        c.publish("all", json.dumps({"i": i}))
    for cl in clients:
        assert len(wsp.msgs(cl.collect(count=3, timeout=5))) == 3

    # Counters settle within a report period; then both views agree.
    def agree():
        a = stats_frames(node)
        b = sample_sum(families(node), "wspush_frames_delivered",
                       "wspush_frames_delivered_total")
        return a > 0 and a == b
    wsp.wait_until(agree, 10, "/metrics and stats to agree on frames")

    fams = families(node)
    assert fams["wspush_frames_delivered"].type == "counter"
    assert fams["wspush_connections"].type == "gauge"
    labels = {s.labels["worker"] for s in fams["wspush_connections"].samples}
    assert labels == {"1", "2"}, labels
    assert sample_sum(fams, "wspush_connections", "wspush_connections") >= 4
    assert sample_sum(fams, "wspush_redis_up", "wspush_redis_up") == 1
    assert sample_sum(fams, "wspush_messages_from_redis",
                      "wspush_messages_from_redis_total") >= 3
    reasons = {s.labels["reason"] for s in fams["wspush_drops"].samples}
    assert {"queue_full", "bus_gap"} <= reasons, reasons

    node.wait_bridge_healthz(200, 10)
    c.redis.stop()
    body = node.wait_bridge_healthz(503, 10, "bridge /healthz 503 with Redis "
                                    "stopped")
    assert b"redis" in body, body
    assert sample_sum(families(node), "wspush_redis_up",
                      "wspush_redis_up") == 0
    c.redis.start()
    node.wait_bridge_healthz(200, 20, "bridge /healthz 200 once Redis is "
                             "back")
    assert sample_sum(families(node), "wspush_redis_reconnects",
                      "wspush_redis_reconnects_total") >= 2
