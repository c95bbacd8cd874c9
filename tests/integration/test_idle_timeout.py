"""WebSocket-level keepalive: with ping_interval_s=1 and idle_timeout_s=3 a
client that answers pings stays connected past the idle timeout, and one
that never answers is pinged, then dropped once idle_timeout_s passed
without a valid frame from it (lws hangs up the TCP connection: no close
frame), and the gateway records the reason as "idle"."""

import json
import time

import wsp

PING_S, IDLE_S = 1, 3


def test_silent_client_is_closed_and_ponging_client_stays(h):
    c = wsp.Cluster(h, nodes=1, workers=1, conf={"gateway": {
        "ping_interval_s": PING_S, "idle_timeout_s": IDLE_S}})
    good_user, bad_user = wsp.uid("pong"), wsp.uid("mute")
    good = c.a.connect(good_user)  # websockets answers pings itself
    t_good = time.monotonic()

    bad = wsp.RawWs(c.a.port, f"/ws?user={bad_user}")
    op, payload = bad.frame(timeout=5)
    assert op == wsp.OP_TEXT and json.loads(payload)["op"] == "welcome", \
        payload
    t_bad = time.monotonic()
    code = bad.wait_closed(timeout=IDLE_S + 5)
    closed_after = time.monotonic() - t_bad
    bad.close()
    assert bad.pings >= 1, "the server never pinged the silent client"
    # lws checks the deadline once a second.
    assert IDLE_S - 1 <= closed_after <= wsp.T(IDLE_S + 3), \
        f"closed after {closed_after:.1f}s, not after {IDLE_S}s of silence"
    assert code is None, f"expected a hang-up, got close code {code}"
    wsp.wait_until(lambda: f"user={bad_user}: closed reason=idle"
                   in open(c.a.gateway.err).read(), 5,
                   "the gateway to log the close as idle")

    # Observe the answering client until well past the idle timeout.
    left = IDLE_S + 2 - (time.monotonic() - t_good)
    if left > 0:
        assert good.collect(quiet=left / wsp.MULT, timeout=left) == []
    assert good.is_open(), f"ponging client closed: {good.closed}"
    c.publish(f"user:{good_user}", json.dumps({"still": "here"}))
    assert wsp.datas(c.fence([good])[0]) == [{"still": "here"}]
