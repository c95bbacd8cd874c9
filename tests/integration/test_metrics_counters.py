"""/metrics exports every worker counter under its own family, from the
one counter list the workers report with: a handshake refused for its
Sec-WebSocket-Version is wspush_handshakes_rejected_total{reason="version"}
(it used to fall into the generic wspush_worker_counter family), and
/metrics agrees with `wspushctl stats` on it. Each counter a worker reports
appears once per worker in /metrics."""

import socket

from prometheus_client.parser import text_string_to_metric_families

import wsp


def samples(node):
    status, body = wsp.http_get(node.metrics_port, "/metrics")
    assert status == 200, body
    return [s for f in text_string_to_metric_families(body.decode())
            for s in f.samples]


def refuse_version(port):
    """One upgrade request with Sec-WebSocket-Version 8; its status."""
    with socket.create_connection(("127.0.0.1", port),
                                  timeout=wsp.T(5)) as s:
        s.sendall(b"GET /ws?user=v HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                  b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
                  b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                  b"Sec-WebSocket-Version: 8\r\n\r\n")
        reply = s.recv(4096)
    return int(reply.split(b" ", 2)[1])


def version_refusals(node):
    return sum(s.value for s in samples(node)
               if s.name == "wspush_handshakes_rejected_total"
               and s.labels.get("reason") == "version")


def test_version_refusals_have_their_own_series(h):
    c = wsp.Cluster(h, nodes=1, workers=1)
    node = c.a
    for _ in range(2):
        assert refuse_version(node.port) == 400
    wsp.wait_until(
        lambda: wsp.worker_total(node.stats(), "hs_rejected_version") == 2,
        10, "stats to count 2 version refusals")
    wsp.wait_until(lambda: version_refusals(node) == 2, 10,
                   "/metrics to count 2 version refusals")
    generic = [s for s in samples(node)
               if s.name == "wspush_worker_counter"
               and s.labels.get("name") == "hs_rejected_version"]
    assert generic == [], generic

    # One sample per counter the worker reports (the master's figures are
    # node-wide samples without a worker label).
    st = node.stats()
    counters = st["workers"][0]["counters"]
    per_worker = [s for s in samples(node) if s.labels.get("worker") == "1"
                  and s.name != "wspush_worker_last_seen_seconds"]
    reported = [k for k in counters if not k.startswith("master_")]
    assert len(per_worker) == len(reported), (
        sorted(s.name + str(s.labels) for s in per_worker), sorted(reported))
