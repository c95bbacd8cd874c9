"""WebSocket-level keepalive: with ping_interval_s=1 and idle_timeout_s=3 a
client that answers pings stays connected past the idle timeout, and one
that never answers is closed."""

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
    assert op == 0x1 and json.loads(payload)["op"] == "welcome", payload
    t_bad = time.monotonic()
    code = bad.wait_closed(timeout=IDLE_S + 5)
    closed_after = time.monotonic() - t_bad
    bad.close()
    assert bad.pings >= 1, "the server never pinged the silent client"
    assert closed_after >= PING_S, \
        f"closed after {closed_after:.1f}s, before any ping could go out"
    assert code in (None, 1000, 1001, 1006, 1008, 1011), code

    # Observe the answering client until well past the idle timeout.
    left = IDLE_S + 2 - (time.monotonic() - t_good)
    if left > 0:
        assert good.collect(quiet=left / wsp.MULT, timeout=left) == []
    assert good.is_open(), f"ponging client closed: {good.closed}"
    c.publish(f"user:{good_user}", json.dumps({"still": "here"}))
    assert wsp.datas(c.fence([good])[0]) == [{"still": "here"}]
