"""`gateway.event_loop`: the default runs lws on its libev plugin, whose
backend here is epoll; `poll` runs lws' own poll() loop and delivers just
as well. Which loop a worker runs is seen from the outside: an epoll
instance lists the files it watches in /proc/<pid>/fdinfo/<fd> ("tfd: ...
ino:<hex inode>"), so the gateway's listening socket is watched by one of
the worker's epoll instances exactly when lws runs on epoll. (nng has an
epoll instance of its own in every worker; it never watches the listening
socket.)"""

import glob
import json
import os

import wsp

N = 500


def listening_inode(port):
    """The inode of the socket listening on 127.0.0.1:port."""
    want = f":{port:04X}"
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(path) as f:
            next(f)
            for line in f:
                col = line.split()
                if col[1].endswith(want) and col[3] == "0A":  # LISTEN
                    return int(col[9])
    raise AssertionError(f"nothing listens on port {port}")


def epoll_watched_inodes(pid):
    """Inodes of every file watched by an epoll instance of pid."""
    out = set()
    for fd in glob.glob(f"/proc/{pid}/fd/*"):
        try:
            if os.readlink(fd) != "anon_inode:[eventpoll]":
                continue
            with open(f"/proc/{pid}/fdinfo/{os.path.basename(fd)}") as f:
                info = f.read()
        except OSError:
            continue  # closed meanwhile
        for line in info.splitlines():
            if line.startswith("tfd:"):
                out.add(int(line.split("ino:")[1].split()[0], 16))
    return out


def lws_on_epoll(node):
    """{worker pid: whether the listening socket is in one of its epoll
    sets}."""
    ino = listening_inode(node.port)
    return {pid: ino in epoll_watched_inodes(pid)
            for pid in node.gateway.workers()}


def test_poll_loop_delivers_bursts_in_order(h):
    c = wsp.Cluster(h, nodes=1, workers=2,
                    conf={"gateway": {"event_loop": "poll"}})
    seen = lws_on_epoll(c.a)
    assert len(seen) == 2 and not any(seen.values()), seen
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
    """A machine without libwebsockets-evlib-ev falls back to poll with a
    warning, which would silently cost the epoll gains: the listening
    socket must be in an epoll set of every worker."""
    c = wsp.Cluster(h, nodes=1, workers=2)
    c.a.connect(wsp.uid("ep"))
    seen = lws_on_epoll(c.a)
    err = open(c.a.gateway.err).read()
    assert len(seen) == 2 and all(seen.values()), (seen, err[-2000:])
    assert "using poll" not in err, err
