"""auth.mode = jwt: a token must carry `exp`. A token without one would
keep its session open for ever, so it is refused like any bad token: HTTP
401 before the upgrade (?token= or Authorization), close 4001 as an `auth`
message, and counted as auth_rejected_no_exp. The same token with an exp
is accepted, so nothing else about it is wrong."""

import wsp
from test_jwt import (handshake_status, jwt_node, make_token,
                      open_unauthenticated, plain_url)


def test_a_token_without_exp_is_refused_and_counted(h):
    n = jwt_node(h)
    user = wsp.uid("noexp")
    no_exp = make_token(user, subs=["*"])
    assert handshake_status(plain_url(n, token=no_exp)) == 401
    assert handshake_status(
        plain_url(n), headers={"Authorization": "Bearer " + no_exp}) == 401

    c = open_unauthenticated(n, "auth-no-exp")
    c.send_json({"op": "auth", "token": no_exp})
    assert c.wait_closed() == 4001

    # A later auth that would drop the exp of a live session is refused
    # too: the session is closed, it does not become endless.
    ok = wsp.connect(plain_url(n, token=make_token(user, exp=600)), "ok")
    assert ok.welcome["user"] == user
    ok.send_json({"op": "auth", "token": no_exp})
    assert ok.wait_closed() == 4001

    wsp.wait_until(
        lambda: wsp.worker_total(n.stats(), "auth_rejected_no_exp") >= 4,
        10, "auth_rejected_no_exp counted 4 times")
    st = n.stats()
    assert wsp.worker_total(st, "auth_rejected_expired") == 0
    assert wsp.worker_total(st, "auth_rejected_bad_claims") == 0
