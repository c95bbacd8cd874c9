"""auth.mode = jwt: a token in ?token= or
`Authorization: Bearer` is checked before the upgrade (HTTP 401); without
one the first message must be a good `auth` within auth.timeout_s (else
close 4001); a later `auth` extends the session, and exp closes it with
4001; the subs/pubs claims gate subscribe/publish; tokens never reach a
log. Tokens are HS256, made here with the standard library (RS256/ES256
are covered by tests/unit/jwtauth_test.c)."""

import asyncio
import base64
import glob
import hashlib
import hmac
import json
import os
import time
import urllib.parse

import pytest
import websockets

import wsp

SECRET = b"integration-test-secret-0123456789abcdef"  # >= 32 bytes
GRANT_ALL = {"subs": ["*"], "pubs": ["*"]}


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def make_token(sub, exp=None, key=SECRET, alg="HS256", **claims):
    """A JWT for sub; exp is seconds from now (None: no exp)."""
    header = {"alg": alg, "typ": "JWT"}
    payload = {"sub": sub, "iat": int(time.time())}
    if exp is not None:
        payload["exp"] = int(time.time()) + exp
    payload.update(claims)
    signing = (b64(json.dumps(header).encode()) + "."
               + b64(json.dumps(payload).encode()))
    if alg == "none":
        return signing + "."
    sig = hmac.new(key, signing.encode(), hashlib.sha256).digest()
    return signing + "." + b64(sig)


class JwtNode(wsp.Node):
    """A node whose url(user) carries a token for user (all grants), so the
    harness' readiness probe and connect() work in jwt mode."""

    def url(self, user=None, path="/ws", **query):
        if user is not None and "token" not in query:
            query["token"] = make_token(user, exp=600, **GRANT_ALL)
        return super().url(None, path, **query)


def jwt_node(h, auth=None, gateway=None):
    secret = os.path.join(h.dir, "jwt.key")
    with open(secret, "wb") as f:
        f.write(SECRET + b"\n")
    redis = wsp.RedisServer(h).start()
    conf = {"auth": dict({"mode": "jwt", "jwt_alg": "HS256",
                          "jwt_secret_file": secret, "leeway_s": 0,
                          "timeout_s": 1}, **(auth or {})),
            "gateway": dict({"workers": 1}, **(gateway or {}))}
    n = JwtNode(h, "a", redis, workers=1, conf=conf)
    return n.start()


def handshake_status(url, headers=None):
    """The HTTP status of an upgrade request for a ws:// URL (401 when the
    token is refused)."""
    u = urllib.parse.urlsplit(url)
    return wsp.handshake_status(u.port, u.path + ("?" + u.query if u.query
                                                  else ""), headers)


def plain_url(node, **query):
    """The node's ws URL without the automatic token."""
    s = f"ws://127.0.0.1:{node.port}/ws"
    return s + ("?" + urllib.parse.urlencode(query) if query else "")


def open_unauthenticated(node, label="unauth"):
    return wsp.WsClient(plain_url(node), label).open()


def expect_welcome(c, user):
    w = c.recv_json()
    assert w.get("op") == "welcome", w
    assert w["user"] == user
    c.welcome = w
    return w


def test_token_in_url_or_header_and_refusals(h):
    n = jwt_node(h)
    user = wsp.uid("alice")
    tok = make_token(user, exp=600)
    c = wsp.connect(plain_url(n, token=tok), "url-token")
    assert c.welcome["user"] == user

    # Authorization: Bearer (non-browser clients).
    async def bearer():
        ws = await websockets.connect(plain_url(n), close_timeout=1,
            ping_interval=None,
            extra_headers={"Authorization": "Bearer " + tok})
        w = json.loads(await asyncio.wait_for(ws.recv(), wsp.T(5)))
        await ws.close()
        return w
    w = wsp._Loop.get().call(bearer(), 8)
    assert w["op"] == "welcome" and w["user"] == user

    bad_sig = make_token(user, exp=600, key=b"another-secret-another-secret-0123")
    expired = make_token(user, exp=-10)
    alg_none = make_token(user, exp=600, alg="none")
    for t in (bad_sig, expired, alg_none, "not.a.token", ""):
        assert handshake_status(plain_url(n, token=t)) == 401, t
    assert handshake_status(plain_url(n),
        headers={"Authorization": "Bearer " + expired}) == 401
    assert handshake_status(plain_url(n),
        headers={"Authorization": "Basic dXNlcjpwdw=="}) == 401
    # auth.mode = jwt ignores ?user=: no token, no identity yet.
    c2 = wsp.WsClient(plain_url(n, user="mallory"), "user-param").open()
    assert c2.wait_closed(timeout=4) == 4001
    # Still serving.
    c3 = wsp.connect(plain_url(n, token=make_token(user, exp=600)), "after")
    assert c3.welcome["user"] == user
    assert_tokens_not_logged(h, [tok, bad_sig, expired, alg_none])


def test_auth_message_timeout_and_bad_token(h):
    n = jwt_node(h)
    user = wsp.uid("bob")
    tok = make_token(user, exp=600)

    # Auth as the first message.
    c = open_unauthenticated(n, "auth-msg")
    c.send_json({"op": "auth", "token": tok})
    expect_welcome(c, user)
    assert c.request({"op": "ping", "ref": 1}) == {"op": "pong", "ref": 1}

    # Nothing within auth.timeout_s = 1.
    t0 = time.monotonic()
    slow = open_unauthenticated(n, "silent")
    assert slow.wait_closed(timeout=5) == 4001
    assert time.monotonic() - t0 < wsp.T(4)
    assert "timeout" in slow.closed.reason

    # A bad token, or another first message, closes with 4001.
    bad = open_unauthenticated(n, "bad-token")
    bad.send_json({"op": "auth", "token": make_token(user, exp=-5)})
    assert bad.wait_closed() == 4001
    other = open_unauthenticated(n, "no-auth-first")
    other.send_json({"op": "subscribe", "channel": "news"})
    assert other.wait_closed() == 4001
    junk = open_unauthenticated(n, "junk-auth")
    junk.send_json({"op": "auth", "token": 42})
    assert junk.wait_closed() == 4001

    # A later auth for another sub is refused; the session is unchanged.
    r = c.request({"op": "auth", "token": make_token("eve", exp=600),
                   "ref": 2})
    assert r["op"] == "error" and r["code"] == "forbidden" and r["ref"] == 2
    assert c.request({"op": "ping", "ref": 3}) == {"op": "pong", "ref": 3}
    assert c.is_open()
    assert_tokens_not_logged(h, [tok])


def test_expiry_closes_unless_refreshed(h):
    n = jwt_node(h)
    user = wsp.uid("carol")
    short = make_token(user, exp=3)
    a = wsp.connect(plain_url(n, token=short), "expires")
    b = open_unauthenticated(n, "refreshes")
    b.send_json({"op": "auth", "token": short})
    expect_welcome(b, user)
    # A fresh token of the same sub before the expiry extends b.
    assert b.request({"op": "auth", "token": make_token(user, exp=600),
                      "ref": "r"}) == {"op": "ok", "ref": "r"}
    assert a.wait_closed(timeout=8) == 4001
    assert "expired" in a.closed.reason
    time.sleep(1)
    assert b.is_open()
    assert b.request({"op": "ping", "ref": 9}) == {"op": "pong", "ref": 9}


def test_subs_and_pubs_claims(h):
    n = jwt_node(h)
    user = wsp.uid("dave")
    tok = make_token(user, exp=600, subs=["news", "chat.*"],
                     pubs=["channel:chat.*"])
    c = wsp.connect(plain_url(n, token=tok), "claims")
    assert c.request({"op": "subscribe", "channel": "news", "ref": 1}) == \
        {"op": "subscribed", "channel": "news", "ref": 1}
    assert c.request({"op": "subscribe", "channel": "chat.r1", "ref": 2}) == \
        {"op": "subscribed", "channel": "chat.r1", "ref": 2}
    for ch in ("secret", "newsx", "chat"):
        r = c.request({"op": "subscribe", "channel": ch, "ref": 3})
        assert r["op"] == "error" and r["code"] == "forbidden", (ch, r)

    # Publishing to an allowed channel reaches its subscriber (c itself).
    assert c.request({"op": "publish", "to": "channel:chat.r1",
                      "data": {"x": 1}, "ref": 4}) == {"op": "ok", "ref": 4}
    got = c.until(lambda d: d.get("op") == "msg", timeout=5)
    assert got == []
    for to in ("channel:news", "user:" + user, "all"):
        r = c.request({"op": "publish", "to": to, "data": 1, "ref": 5})
        assert r["op"] == "error" and r["code"] == "forbidden", (to, r)

    # No claims: nothing is granted.
    bare = wsp.connect(plain_url(n, token=make_token(user, exp=600)), "bare")
    r = bare.request({"op": "subscribe", "channel": "news", "ref": 6})
    assert r["op"] == "error" and r["code"] == "forbidden"
    r = bare.request({"op": "publish", "to": "channel:chat.r1", "data": 1,
                      "ref": 7})
    assert r["op"] == "error" and r["code"] == "forbidden"
    assert_tokens_not_logged(h, [tok])


def assert_tokens_not_logged(h, tokens):
    """No token, nor its signature alone, in any process log."""
    needles = set()
    for t in tokens:
        if t:
            needles.add(t)
            sig = t.rsplit(".", 1)[-1]
            if len(sig) >= 16:
                needles.add(sig)
    files = glob.glob(os.path.join(h.dir, "**", "*.out"), recursive=True)
    files += glob.glob(os.path.join(h.dir, "**", "*.err"), recursive=True)
    files += glob.glob(os.path.join(h.dir, "**", "*.log"), recursive=True)
    assert files, "no log files found"
    for p in files:
        with open(p, "rb") as f:
            text = f.read().decode("utf-8", "replace")
        for s in needles:
            assert s not in text, f"a token appears in {p}"


if __name__ == "__main__":
    pytest.main([__file__, "-q"])
