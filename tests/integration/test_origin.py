"""gateway.allowed_origins: exact origins and
"*.example.org" forms pass; any other Origin gets HTTP 403 before the
upgrade; a request without Origin (not a browser) passes."""

import urllib.parse

import wsp

CONF = {"gateway": {"allowed_origins":
                    "https://app.example.com, *.example.org"}}


def test_origin_allowlist(h):
    c = wsp.Cluster(h, nodes=1, workers=1, conf=CONF)
    n = c.a
    target = "/ws?" + urllib.parse.urlencode({"user": wsp.uid("o")})
    ok = ["https://app.example.com", "HTTPS://APP.EXAMPLE.COM",
          "https://chat.example.org", "https://a.b.example.org"]
    bad = ["https://evil.example.com", "https://app.example.com.evil.net",
           "http://app.example.com", "https://example.org.evil",
           "https://notexample.org", "null"]
    for o in ok:
        assert wsp.handshake_status(n.port, target, {"Origin": o}) == 101, o
    for o in bad:
        assert wsp.handshake_status(n.port, target, {"Origin": o}) == 403, o
    assert wsp.handshake_status(n.port, target) == 101
    # Still serving, and welcomes as usual.
    cl = n.connect(wsp.uid("after"))
    assert cl.welcome["op"] == "welcome"
