"""Subscription churn does not go straight to Redis: 100 clients that
toggle subscriptions to a few channels each (within their rate limit)
cost Redis almost no SUBSCRIBE/UNSUBSCRIBE commands, because a channel
whose last local subscriber left stays subscribed for a grace period
and changes are batched. The test prints the commands per client request
(INFO commandstats) and bounds them; every channel is still unsubscribed
once the clients are gone."""

import asyncio
import json
import time

import websockets

import wsp

CLIENTS = 100
CHANNELS = 3        # per client, its own
RATE = 10           # requests per second per client (limit: 50)
SECONDS = 4
# With churn absorbed: the first SUBSCRIBE of each channel, batched, and
# nothing per toggle. The defect: about one command per request.
MAX_PER_REQUEST = 0.05


def sub_unsub_calls(r):
    st = r.info("commandstats")
    return sum(st.get(f"cmdstat_{c}", {}).get("calls", 0)
               for c in ("subscribe", "unsubscribe"))


async def client(url, chans, requests, deadline):
    async with websockets.connect(url, open_timeout=wsp.T(10),
                                  ping_interval=None) as ws:
        welcome = json.loads(await asyncio.wait_for(ws.recv(), wsp.T(10)))
        assert welcome["op"] == "welcome", welcome
        ref = 0
        n = 0
        start = time.monotonic()
        for rnd in range(SECONDS * RATE // (2 * len(chans))):
            for ch in chans:
                for op in ("subscribe", "unsubscribe"):
                    ref += 1
                    await ws.send(json.dumps(
                        {"op": op, "channel": ch, "ref": ref}))
                    while True:
                        left = deadline - time.monotonic()
                        got = json.loads(await asyncio.wait_for(
                            ws.recv(), max(left, 0.1)))
                        if got.get("ref") == ref:
                            break
                    assert got["op"] == op + "d", got
                    n += 1
                    # Paced: at most RATE requests a second.
                    wait = start + n / RATE - time.monotonic()
                    if wait > 0:
                        await asyncio.sleep(wait)
        requests.append(n)


async def churn(node, names):
    requests = []
    deadline = time.monotonic() + wsp.T(SECONDS * 6 + 20)
    await asyncio.gather(*(client(node.url(wsp.uid("churn")), chans,
                                  requests, deadline)
                           for chans in names))
    return sum(requests)


def test_subscription_churn_does_not_reach_redis(h):
    redis = wsp.RedisServer(h).start()
    node = wsp.Node(h, "a", redis, workers=2).start()
    r = redis.client()
    names = [[wsp.uid(f"ch{i}") for i in range(CHANNELS)]
             for _ in range(CLIENTS)]
    r.config_resetstat()
    t0 = time.monotonic()
    requests = asyncio.run(churn(node, names))
    took = time.monotonic() - t0
    calls = sub_unsub_calls(r)
    per = calls / requests
    print(f"\nchurn: {CLIENTS} clients, {requests} requests in {took:.1f}s,"
          f" Redis SUBSCRIBE+UNSUBSCRIBE calls {calls}"
          f" ({per:.4f} per client request)")
    assert requests == CLIENTS * (SECONDS * RATE // (2 * CHANNELS)) \
        * 2 * CHANNELS
    assert per <= MAX_PER_REQUEST, (calls, requests)

    # The clients are gone: every channel is unsubscribed after the grace.
    every = [f"{wsp.PREFIX}:channel:{c}" for chans in names for c in chans]
    wsp.wait_until(lambda: sum(n for _, n in r.pubsub_numsub(*every)) == 0,
                   15, "every churned channel unsubscribed",
                   check=node.check_running)
