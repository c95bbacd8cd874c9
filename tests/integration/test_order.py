"""1,000 messages published back to back arrive complete and in order on
every connection they target."""

import json

import wsp

N = 1000


def test_pipelined_burst_arrives_complete_and_in_order(cluster):
    u = wsp.uid("order")
    clients = cluster.a.connect_spread(u) + [cluster.b.connect(u)]

    pipe = cluster.r.pipeline(transaction=False)
    for i in range(N):
        pipe.publish(f"{wsp.PREFIX}:user:{u}", json.dumps({"i": i}))
    receivers = pipe.execute()
    assert receivers == [2] * N  # one subscriber link per node

    got = cluster.fence(clients, timeout=60)
    for c, frames in zip(clients, got):
        data = wsp.datas(frames)
        assert len(data) == N, f"{c}: {len(data)} of {N} messages arrived"
        assert data == [{"i": i} for i in range(N)], f"{c}: out of order"
        assert len(frames) == N, f"{c}: unexpected frames"
