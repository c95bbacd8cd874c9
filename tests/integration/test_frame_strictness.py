"""RFC 6455 strictness after the upgrade, and no message held for ever:

- a client close with an invalid code (5000, 1005, 999) is answered with
  close 1002 (not echoed), one whose reason is not UTF-8 with 1007 (not a
  TCP drop), a good one is echoed; counted as closed_protocol;
- a text message that is not UTF-8, whole or fragmented, closes with 1007;
- a message left unfinished (65,000 bytes of a fragmented message, then
  only pongs) is closed with 1008 once idle_timeout_s has passed since it
  began, and counted as closed_msg_timeout;
- an unmasked client frame should close with 1002, but lws 4.1.6 does not
  tell its callbacks whether a frame was masked (gateway/NOTES.md): that
  test is an expected failure until lws does.
A raw client (wsp.RawWs), so it can break the rules.
"""

import struct
import time

import pytest

import wsp

IDLE_S = 3


def raw(node, tag, pong=False):
    """An upgraded raw client, its welcome read."""
    c = wsp.RawWs(node.port, f"/ws?user={wsp.uid(tag)}", pong=pong)
    assert c.recv_json()["op"] == "welcome"
    return c


@pytest.fixture
def node(h):
    return wsp.Cluster(h, nodes=1, workers=1, conf={"gateway": {
        "idle_timeout_s": IDLE_S, "ping_interval_s": 1}}).a


def closed_with(node, code_payload, tag):
    with raw(node, tag) as c:
        c.send_frame(wsp.OP_CLOSE, code_payload)
        return c.wait_closed()


def test_client_close_frames_are_checked(node):
    assert closed_with(node, struct.pack("!H", 5000), "c5000") == 1002
    assert closed_with(node, struct.pack("!H", 1005), "c1005") == 1002
    assert closed_with(node, struct.pack("!H", 999), "c999") == 1002
    assert closed_with(node, b"\x03", "c1byte") == 1002
    assert closed_with(node, struct.pack("!H", 1000) + b"\xff\xfe",
                       "cutf8") == 1007
    assert closed_with(node, struct.pack("!H", 4000) + b"ok \xc3\xbc",
                       "c4000") == 4000
    assert closed_with(node, struct.pack("!H", 1000), "c1000") == 1000
    # 5000, the 1-byte payload and the bad reason; lws itself rewrites
    # 1005 and 999 to 1002 before the gateway sees them.
    wsp.wait_until(lambda: wsp.worker_total(
        node.stats(), "closed_protocol") >= 3, 10,
        "bad close frames counted as closed_protocol")


def test_text_that_is_not_utf8_closes_with_1007(node):
    with raw(node, "utf8") as c:
        c.send_text(b'{"op":"ping","ref":"\xc3"}')
        assert c.wait_closed() == 1007
    # Split across fragments: each piece is bad alone, the whole is fine.
    with raw(node, "utf8frag") as c:
        c.send_frame(wsp.OP_TEXT, b'{"op":"ping","ref":"\xc3', fin=False)
        c.send_frame(wsp.OP_CONT, b'\xbc"}')
        assert c.recv_json() == {"op": "pong", "ref": "\u00fc"}
        c.send_frame(wsp.OP_TEXT, b"x" * 300 + b"\xc3", fin=False)
        c.send_frame(wsp.OP_CONT, b"(")
        assert c.wait_closed() == 1007


def test_an_unfinished_message_is_closed_after_idle_timeout(node):
    # The client stays alive: it answers every ping. Its message must not.
    with raw(node, "frag", pong=True) as c:
        t0 = time.monotonic()
        # 64,999 bytes of a text message that never ends.
        c.send_frame(wsp.OP_TEXT, b"[" + b"1," * 32499, fin=False)
        assert c.wait_closed(timeout=IDLE_S + 10) == 1008
        took = time.monotonic() - t0
        assert IDLE_S - 0.5 <= took <= wsp.T(IDLE_S + 3), took
        assert c.pings >= 1
    # A fragmented message that does finish in time is served.
    with raw(node, "frag-ok") as d:
        d.send_frame(wsp.OP_TEXT, b'{"op":"ping",', fin=False)
        d.send_frame(wsp.OP_CONT, b'"ref":7}')
        assert d.recv_json() == {"op": "pong", "ref": 7}
    wsp.wait_until(lambda: wsp.worker_total(
        node.stats(), "closed_msg_timeout") == 1, 10,
        "the unfinished message counted as closed_msg_timeout")


@pytest.mark.xfail(strict=True, reason="lws 4.1.6 does not expose the "
                   "mask bit of a received frame (gateway/NOTES.md)")
def test_an_unmasked_frame_closes_with_1002(node):
    with raw(node, "unmasked") as c:
        c.send_text(b'{"op":"ping","ref":1}', mask=False)
        assert c.wait_closed() == 1002
