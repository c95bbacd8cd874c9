"""deploy/nginx/wspush.conf balancing two nodes: clients of different users
connect through nginx and each receives only its own messages."""

import json
import os
import re
import subprocess

import pytest

import wsp

CONF = os.path.join(wsp.REPO, "deploy", "nginx", "wspush.conf")
NGINX = "/usr/sbin/nginx"


def site_conf(text, backends, port, logdir):
    """The deployed file with our upstream servers and listen port."""
    m = re.search(r"upstream\s+wspush\s*\{([^}]*)\}", text)
    assert m, f"{CONF} has no `upstream wspush {{ ... }}` block"
    body = re.sub(r"^\s*server\s+[^;]*;[^\n]*\n?", "", m.group(1), flags=re.M)
    body += "".join(f"    server {b};\n" for b in backends)
    text = text[:m.start(1)] + body + text[m.end(1):]
    assert re.search(r"^\s*listen\s+80\s*;", text, re.M), \
        f"{CONF} has no `listen 80;` line"
    text = re.sub(r"^(\s*)listen\s+80\s*;", rf"\g<1>listen 127.0.0.1:{port};",
                  text, flags=re.M)
    text = re.sub(r"^\s*listen\s+\[::\]:80[^;]*;[^\n]*\n", "", text,
                  flags=re.M)
    # Logs into the test directory.
    return re.sub(r"/var/log/nginx/", logdir.rstrip("/") + "/", text)


def main_conf(d, site):
    user = "user root;\n" if os.geteuid() == 0 else ""
    temps = "".join(f"    {k}_temp_path {d}/{k}_temp;\n" for k in
                    ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return (f"{user}daemon off;\nworker_processes 1;\n"
            f"pid {d}/nginx.pid;\nerror_log {d}/error.log info;\n"
            "events { worker_connections 256; }\n"
            "http {\n"
            f"    access_log {d}/access.log;\n{temps}"
            f"    include {site};\n"
            "}\n")


def test_nginx_balances_two_nodes(h):
    if not os.path.exists(CONF):
        pytest.fail(f"{CONF} is missing (deploy/nginx is another area's)")
    c = wsp.Cluster(h, nodes=2, workers=1)
    port = wsp.free_port()
    d = os.path.join(h.dir, "nginx")
    os.makedirs(d)
    with open(CONF) as f:
        site = site_conf(f.read(), [f"127.0.0.1:{n.port}" for n in c.nodes],
                         port, d)
    with open(os.path.join(d, "wspush.conf"), "w") as f:
        f.write(site)
    main = os.path.join(d, "nginx.conf")
    with open(main, "w") as f:
        f.write(main_conf(d, os.path.join(d, "wspush.conf")))

    argv = [NGINX, "-p", d + "/", "-c", main,
            "-e", os.path.join(d, "error.log")]
    t = subprocess.run(argv + ["-t"], capture_output=True, text=True,
                           timeout=wsp.T(20))
    assert t.returncode == 0, f"nginx -t refused the config:\n{t.stderr}"
    nginx = h.spawn("nginx", argv)
    # A TCP probe: an HTTP one could mark upstreams as failed.
    wsp.wait_until(lambda: wsp.tcp_listening(port), 10,
                   "nginx to listen", check=nginx.check_running)

    users = [wsp.uid(f"ng{i}") for i in range(10)]
    clients = [wsp.connect(f"ws://127.0.0.1:{port}/ws?user={u}", u)
               for u in users]
    assert [cl.welcome["user"] for cl in clients] == users
    assert {cl.node for cl in clients} == {n.id for n in c.nodes}, \
        "nginx sent every client to the same node"

    for u in users:
        c.publish(f"user:{u}", json.dumps({"for": u}))
    for u, cl, frames in zip(users, clients, c.fence(clients)):
        assert frames == [{"op": "msg", "to": f"user:{u}",
                           "data": {"for": u}}], cl
