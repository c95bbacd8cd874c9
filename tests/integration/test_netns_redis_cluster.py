"""The three-node namespace scenario of test_netns_cluster.py with a
three-master Redis Cluster in the Redis namespace: the bridges run with
cluster = on (SSUBSCRIBE on each channel's master), backends publish with
SPUBLISH; order and exactly-once are checked per address, which is what
sharded pub/sub promises."""

from test_netns_cluster import bed, run_three_nodes  # noqa: F401 (fixture)

pytest_plugins = ["netns_report"]


def test_three_nodes_behind_nginx_on_a_redis_cluster(bed):  # noqa: F811
    run_three_nodes(bed, "cluster")
