"""Health endpoints: each worker answers /healthz on the gateway port; the
bridge serves /healthz (200 once subscribed and every worker attached) and
/metrics on metrics_listen."""

import wsp


def test_gateway_and_bridge_health(cluster):
    for node in cluster.nodes:
        for _ in range(8):  # any worker may answer; ask several times
            status, body = wsp.http_get(node.port, "/healthz")
            assert status == 200, (node.id, status, body)
        node.wait_bridge_healthz(200, 10)
        status, body = wsp.http_get(node.metrics_port, "/metrics")
        assert status == 200, (node.id, status, body)
        assert b"# TYPE" in body, body[:500]
