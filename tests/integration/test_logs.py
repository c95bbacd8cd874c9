"""Logs: one line per event with `prog[worker]: level: text key=value...`,
the level from the config, and no message payload at info level (payloads
may carry personal data; tokens are covered by test_jwt)."""

import json
import re

import wsp

LINE = re.compile(r"^wspush-(gateway|bridge)(\[w\d+\])?: "
                  r"(debug|info|notice|warn|error|crit): \S")


def test_info_level_logs_have_no_payloads_and_one_format(h):
    c = wsp.Cluster(h, nodes=1, workers=2, conf={
        "node": {"log_level": "info"},
        "gateway": {"client_publish": "all"}})
    node = c.a
    u, ch = wsp.uid("lg"), wsp.uid("lgch")
    secret = wsp.uid("secret-payload")
    cl = node.connect(u)
    assert cl.request({"op": "subscribe", "channel": ch, "ref": 1})["op"] == \
        "subscribed"
    c.publish(f"user:{u}", json.dumps({"s": secret + "-redis"}))
    cl.send_json({"op": "send", "data": {"s": secret + "-send"}})
    cl.send_json({"op": "publish", "to": f"channel:{ch}",
             "data": {"s": secret + "-publish"}})
    cl.send("{not json " + secret + "-bad")
    frames = cl.collect(quiet=0.3, timeout=5)
    assert any(isinstance(f, dict) and f.get("op") == "error"
               for f in frames), frames
    wsp.wait_until(lambda: c.r.xlen(f"{wsp.PREFIX}:inbound") >= 1, 10,
                   "the send to reach the inbound stream")
    cl.close()
    for p in (node.bridge, node.gateway):
        p.stop()
        text = open(p.err).read()
        assert secret not in text, f"a payload reached {p.err}"
        lines = [ln for ln in text.splitlines() if ln.strip()]
        assert lines, p.err
        for ln in lines:
            if ln.startswith(("-----", "Suppressions", "  count", "      ")):
                continue  # LeakSanitizer's suppression summary
            assert LINE.match(ln), f"{p.err}: {ln!r}"
            assert ": debug: " not in ln, f"debug line at info: {ln!r}"
