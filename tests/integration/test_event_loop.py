"""`gateway.event_loop = poll` (lws' own loop) delivers like the default
epoll loop: the shared cluster runs epoll; this node runs poll, with a
burst to a user spread over both workers and a channel."""

import json

import wsp

N = 500


def test_poll_loop_delivers_bursts_in_order(h):
    c = wsp.Cluster(h, nodes=1, workers=2,
                    conf={"gateway": {"event_loop": "poll"}})
    u, ch, clients = c.a.connect_subscribed("poll")
    pipe = c.r.pipeline(transaction=False)
    for i in range(N):
        pipe.publish(f"{wsp.PREFIX}:user:{u}", json.dumps({"i": i}))
        pipe.publish(f"{wsp.PREFIX}:channel:{ch}", json.dumps({"c": i}))
    pipe.execute()
    want = [d for i in range(N) for d in ({"i": i}, {"c": i})]
    for cl, frames in zip(clients, c.fence(clients, timeout=60)):
        assert wsp.datas(frames) == want, cl
    assert "using poll" not in open(c.a.gateway.err).read()


def test_default_loop_is_epoll(h):
    """The default runs lws on its libev plugin; a machine without
    libwebsockets-evlib-ev falls back to poll with a warning, which would
    silently cost the epoll gains (and this suite would not notice)."""
    c = wsp.Cluster(h, nodes=1, workers=1)
    c.a.connect(wsp.uid("ep"))
    err = open(c.a.gateway.err).read()
    assert "using poll" not in err, err
