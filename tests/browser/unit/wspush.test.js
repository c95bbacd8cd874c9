// Unit tests of gateway/web/wspush.js: reconnect, backoff, resubscribe,
// auth, ping, ref matching. Node's built-in runner, no npm packages:
//   node --test tests/browser/unit/
// A fake WebSocket class and a fake clock are injected through the
// client's options (WebSocket, timers, random).
"use strict";

const test = require("node:test");
const assert = require("node:assert/strict");
const path = require("node:path");
const url = require("node:url");

const WSPush = require(path.join(__dirname, "../../../gateway/web/wspush.js"));
const { FakeClock, makeFakeWS } = require("./fakes.js");

function setup(opts = {}) {
	const clock = new FakeClock();
	const { FakeWS, sockets } = makeFakeWS();
	let r = opts.randomValue !== undefined ? opts.randomValue : 0.5;
	const client = WSPush.connect(opts.url || "ws://h/ws", {
		WebSocket: FakeWS,
		timers: clock,
		random: () => (typeof r === "function" ? r() : r),
		...opts.client,
	});
	const events = [];
	for (const ev of ["open", "close", "error", "state", "reconnecting", "auth_required", "message", "subscribed"])
		client.on(ev, (a) => events.push([ev, a]));
	return { clock, sockets, client, events, setRandom: (v) => { r = v; }, ws: () => sockets[sockets.length - 1] };
}

// ---------------------------------------------------------------- tests

test("backoffDelay: full jitter over a capped exponential window", () => {
	const d = WSPush.backoffDelay;
	assert.equal(d(0, 500, 30000, () => 0.999999), 499);
	assert.equal(d(1, 500, 30000, () => 0.5), 500);
	assert.equal(d(3, 500, 30000, () => 1 - 1e-9), 3999);
	assert.equal(d(6, 500, 30000, () => 0.5), 15000);
	assert.equal(d(7, 500, 30000, () => 0.999), 29970); // 64000 capped at 30000
	assert.equal(d(1000, 500, 30000, () => 0.5), 15000); // no overflow
	assert.equal(d(5, 500, 30000, () => 0), 0);
});

test("token goes in the first frame, never in the URL; welcome opens", () => {
	const { client, sockets, events } = setup({ client: { token: "T1" } });
	assert.equal(sockets.length, 1);
	assert.equal(sockets[0].url, "ws://h/ws");
	assert.equal(client.state, "connecting");
	sockets[0].open();
	assert.deepEqual(sockets[0].sent[0], { op: "auth", token: "T1" });
	sockets[0].welcome();
	assert.equal(client.state, "open");
	const open = events.find((e) => e[0] === "open");
	assert.equal(open[1].node, "node-a");
	assert.equal(open[1].reconnected, false);
});

test("user mode appends ?user= (escaped), keeps an existing query", () => {
	let s = setup({ client: { user: "a+b@x y" } });
	assert.equal(s.sockets[0].url, "ws://h/ws?user=a%2Bb%40x%20y");
	s.sockets[0].open();
	assert.equal(s.sockets[0].sent.length, 0); // no auth frame
	s = setup({ url: "ws://h/ws?x=1", client: { user: "bob" } });
	assert.equal(s.sockets[0].url, "ws://h/ws?x=1&user=bob");
});

test("reconnects with growing jittered delays, capped, reset after welcome", () => {
	const { clock, sockets, client, events } = setup({ randomValue: 0.999, client: { user: "a" } });
	sockets[0].open();
	sockets[0].welcome();
	const expectWindows = [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000];
	for (let i = 0; i < expectWindows.length; i++) {
		const n = sockets.length;
		sockets[n - 1].fail();
		assert.equal(client.state, "reconnecting");
		const rec = events.filter((e) => e[0] === "reconnecting").pop()[1];
		assert.equal(rec.attempt, i + 1);
		assert.equal(rec.delayMs, Math.floor(0.999 * expectWindows[i]));
		clock.advance(rec.delayMs - 1);
		assert.equal(sockets.length, n, "no reconnect before the delay");
		clock.advance(1);
		assert.equal(sockets.length, n + 1, "reconnect after the delay");
	}
	// a successful connection resets the backoff
	const last = sockets[sockets.length - 1];
	last.open();
	last.welcome();
	assert.equal(client.reconnects, 1);
	last.serverClose(1001, "going away");
	const rec = events.filter((e) => e[0] === "reconnecting").pop()[1];
	assert.equal(rec.attempt, 1);
	assert.equal(rec.delayMs, 499);
	assert.equal(rec.code, 1001);
});

test("full jitter: random() = 0 reconnects at once", () => {
	const { clock, sockets } = setup({ randomValue: 0, client: { user: "a" } });
	sockets[0].fail();
	clock.advance(0);
	assert.equal(sockets.length, 2);
});

test("no reconnect after 4001/4003; auth_required; refreshToken reconnects", () => {
	for (const code of [4001, 4003]) {
		const { clock, sockets, client, events } = setup({ client: { token: "old" } });
		sockets[0].open();
		sockets[0].welcome();
		sockets[0].serverClose(code, "token expired");
		assert.equal(client.state, "auth_required");
		const ar = events.find((e) => e[0] === "auth_required");
		assert.equal(ar[1].code, code);
		const cl = events.filter((e) => e[0] === "close").pop();
		assert.equal(cl[1].willReconnect, false);
		clock.advance(10 * 60 * 1000);
		assert.equal(sockets.length, 1, "no automatic reconnect");
		client.refreshToken("new");
		assert.equal(sockets.length, 2);
		sockets[1].open();
		assert.deepEqual(sockets[1].sent[0], { op: "auth", token: "new" });
	}
});

test("refreshToken while open sends an auth frame on the live socket", () => {
	const { sockets, client } = setup({ client: { token: "t1" } });
	sockets[0].open();
	sockets[0].welcome();
	client.refreshToken("t2");
	assert.deepEqual(sockets[0].last("auth"), { op: "auth", token: "t2" });
	assert.equal(sockets.length, 1);
});

test("subscribe resolves by ref; every channel is resubscribed after a reconnect", async () => {
	const { clock, sockets, client, events } = setup({ client: { user: "bob" } });
	sockets[0].open();
	sockets[0].welcome();
	const p1 = client.subscribe("room1");
	const p2 = client.subscribe("room2");
	const s1 = sockets[0].sent[0];
	const s2 = sockets[0].sent[1];
	assert.equal(s1.op, "subscribe");
	assert.equal(s1.channel, "room1");
	assert.notEqual(s1.ref, s2.ref);
	// replies out of order still match by ref
	sockets[0].recv({ op: "subscribed", channel: "room2", ref: s2.ref });
	sockets[0].recv({ op: "subscribed", channel: "room1", ref: s1.ref });
	assert.equal((await p1).channel, "room1");
	assert.equal((await p2).channel, "room2");
	const pu = client.unsubscribe("room2");
	const un = sockets[0].last("unsubscribe");
	sockets[0].recv({ op: "unsubscribed", channel: "room2", ref: un.ref });
	assert.equal((await pu).channel, "room2");

	sockets[0].serverClose(1006);
	clock.advance(1000);
	assert.equal(sockets.length, 2);
	sockets[1].open();
	assert.equal(sockets[1].sent.length, 0, "nothing before welcome");
	sockets[1].welcome({ node: "node-b" });
	const subs = sockets[1].sent.filter((f) => f.op === "subscribe").map((f) => f.channel);
	assert.deepEqual(subs, ["room1"]);
	const open = events.filter((e) => e[0] === "open").pop()[1];
	assert.equal(open.reconnected, true);
	assert.equal(open.node, "node-b");
	assert.deepEqual(client.channels, ["room1"]);
});

test("subscribe before the connection opens is sent after welcome and resolves", async () => {
	const { sockets, client } = setup({ client: { user: "bob" } });
	const p = client.subscribe("news");
	sockets[0].open();
	assert.equal(sockets[0].sent.length, 0);
	sockets[0].welcome();
	const s = sockets[0].last("subscribe");
	assert.equal(s.channel, "news");
	sockets[0].recv({ op: "subscribed", channel: "news", ref: s.ref });
	assert.equal((await p).channel, "news");
});

test("a subscribe in flight when the link drops completes after the reconnect", async () => {
	const { clock, sockets, client } = setup({ client: { user: "bob" } });
	sockets[0].open();
	sockets[0].welcome();
	const p = client.subscribe("room9");
	sockets[0].serverClose(1001);
	clock.advance(1000);
	sockets[1].open();
	sockets[1].welcome();
	const s = sockets[1].last("subscribe");
	assert.equal(s.channel, "room9");
	sockets[1].recv({ op: "subscribed", channel: "room9", ref: s.ref });
	assert.equal((await p).ref, s.ref);
});

test("forbidden subscribe rejects with a clear error and is not retried", async () => {
	const { clock, sockets, client } = setup({ client: { token: "t" } });
	sockets[0].open();
	sockets[0].welcome();
	const p = client.subscribe("secret");
	const s = sockets[0].last("subscribe");
	sockets[0].recv({ op: "error", code: "forbidden", msg: "not in subs", ref: s.ref });
	await assert.rejects(p, (e) => {
		assert.equal(e.code, "forbidden");
		assert.equal(e.channel, "secret");
		assert.match(e.message, /forbidden: this connection may not subscribe to channel secret/);
		assert.match(e.message, /not in subs/);
		return true;
	});
	assert.deepEqual(client.channels, []);
	sockets[0].serverClose(1006);
	clock.advance(1000);
	sockets[1].open();
	sockets[1].welcome();
	assert.equal(sockets[1].sent.filter((f) => f.op === "subscribe").length, 0);
});

test("publish/send with ack ok: resolve on ok, reject on error, by ref", async () => {
	const { sockets, client } = setup({ client: { user: "alice" } });
	sockets[0].open();
	sockets[0].welcome();
	const p1 = client.publish("user:bob", { hi: 1 });
	const p2 = client.publish("user:carol", "x");
	const p3 = client.send({ order: 1 });
	const [f1, f2, f3] = sockets[0].sent;
	assert.deepEqual({ op: f1.op, to: f1.to, data: f1.data }, { op: "publish", to: "user:bob", data: { hi: 1 } });
	assert.equal(f3.op, "send");
	sockets[0].recv({ op: "error", code: "forbidden", msg: "client_publish = channels", ref: f2.ref });
	sockets[0].recv({ op: "ok", ref: f1.ref });
	sockets[0].recv({ op: "ok", ref: f3.ref });
	assert.equal((await p1).ref, f1.ref);
	assert.equal((await p3).ref, f3.ref);
	await assert.rejects(p2, (e) => e.code === "forbidden" && e.to === "user:carol" &&
		/forbidden: this connection may not publish to user:carol/.test(e.message));
});

test("publish with ack sent resolves at once; a later error is an error event", async () => {
	const { sockets, client, events } = setup({ client: { user: "alice", ack: "sent" } });
	sockets[0].open();
	sockets[0].welcome();
	const r = await client.publish("user:bob", 1);
	assert.equal(r.op, "sent");
	sockets[0].recv({ op: "error", code: "forbidden", ref: r.ref });
	const err = events.filter((e) => e[0] === "error").pop()[1];
	assert.equal(err.code, "forbidden");
	assert.equal(err.op, "publish");
	assert.equal(err.ref, r.ref);
});

test("publish while disconnected is queued and sent after welcome; rejected in flight on a drop", async () => {
	const { clock, sockets, client } = setup({ client: { user: "alice" } });
	const p = client.publish("channel:room1", "queued");
	sockets[0].open();
	sockets[0].welcome();
	const f = sockets[0].last("publish");
	assert.equal(f.data, "queued");
	sockets[0].recv({ op: "ok", ref: f.ref });
	await p;
	const lost = client.send("in flight");
	sockets[0].serverClose(1006);
	await assert.rejects(lost, (e) => e.code === "disconnected");
	clock.advance(1000);
});

test("requests without a reply time out", async () => {
	const { clock, sockets, client } = setup({ client: { user: "a", requestTimeoutMs: 5000 } });
	sockets[0].open();
	sockets[0].welcome();
	const p = client.publish("user:b", 1);
	clock.advance(5000);
	await assert.rejects(p, (e) => e.code === "timeout");
});

test("idle: app-level ping after 20 s without traffic; missed pong reconnects", () => {
	const { clock, sockets, client } = setup({ client: { user: "a" } });
	sockets[0].open();
	sockets[0].welcome();
	clock.advance(19999);
	assert.equal(sockets[0].sent.length, 0);
	clock.advance(1);
	const ping = sockets[0].last("ping");
	assert.ok(ping && typeof ping.ref === "number");
	sockets[0].recv({ op: "pong", ref: ping.ref });
	// traffic postpones the next ping
	clock.advance(15000);
	sockets[0].recv({ op: "msg", to: "user:a", data: 1 });
	clock.advance(15000);
	assert.equal(sockets[0].sent.filter((f) => f.op === "ping").length, 1);
	clock.advance(5000);
	assert.equal(sockets[0].sent.filter((f) => f.op === "ping").length, 2);
	// no answer at all: the link is declared dead after pongTimeoutMs
	clock.advance(9999);
	assert.equal(client.state, "open");
	clock.advance(1);
	assert.equal(client.state, "reconnecting");
	assert.ok(sockets[0].closedByClient);
});

test("open timeout: no welcome in time reconnects", () => {
	const { clock, sockets, client } = setup({ client: { user: "a", openTimeoutMs: 3000 } });
	sockets[0].open();
	clock.advance(3000);
	assert.equal(client.state, "reconnecting");
});

test("close() stops everything; no reconnect; pending rejected", async () => {
	const { clock, sockets, client, events } = setup({ client: { user: "a" } });
	sockets[0].open();
	sockets[0].welcome();
	const p = client.publish("user:b", 1);
	client.close();
	await assert.rejects(p, (e) => e.code === "closed");
	assert.equal(client.state, "closed");
	assert.equal(sockets[0].closedByClient.code, 1000);
	sockets[0].onclose({ code: 1000, reason: "", wasClean: true });
	clock.advance(120000);
	assert.equal(sockets.length, 1);
	assert.equal(clock.timers.size, 0, "no timers left");
	assert.equal(events.filter((e) => e[0] === "close").pop()[1].willReconnect, false);
	await assert.rejects(client.publish("user:b", 1), (e) => e.code === "closed");
});

test("maxAttempts gives up", () => {
	const { clock, sockets, client } = setup({ randomValue: 0, client: { user: "a", maxAttempts: 3 } });
	for (let i = 0; i < 10 && client.state !== "closed"; i++) {
		sockets[sockets.length - 1].fail();
		clock.advance(0);
	}
	assert.equal(client.state, "closed");
	assert.equal(sockets.length, 4);
});

test("messages: data, from, data_b64 decoded, raw delivery, unknown ops ignored", () => {
	const { sockets, events } = setup({ client: { user: "bob" } });
	sockets[0].open();
	sockets[0].welcome();
	sockets[0].recv({ op: "msg", to: "user:bob", from: "alice", data: { hi: 1 }, extra: true });
	sockets[0].recv({ op: "msg", to: "all", data_b64: Buffer.from([0xff, 0, 1]).toString("base64") });
	sockets[0].recv({ op: "future_thing", x: 1 });
	sockets[0].recv("plain text payload");
	const msgs = events.filter((e) => e[0] === "message").map((e) => e[1]);
	assert.equal(msgs.length, 3);
	assert.equal(msgs[0].from, "alice");
	assert.deepEqual(msgs[0].data, { hi: 1 });
	assert.deepEqual([...msgs[1].bytes], [0xff, 0, 1]);
	assert.equal(msgs[2].raw, true);
	assert.equal(msgs[2].data, "plain text payload");
});

test("states are reported in order; off() removes a handler", () => {
	const { sockets, client } = setup({ client: { user: "a" } });
	const states = [];
	const fn = (s) => states.push(s);
	client.on("state", fn);
	sockets[0].open();
	sockets[0].welcome();
	sockets[0].serverClose(1001);
	client.off("state", fn);
	client.close();
	assert.deepEqual(states, ["open", "reconnecting"]);
	assert.throws(() => client.on("nope", () => {}), /unknown event/);
});

test("a throwing event handler does not break the client", () => {
	const { sockets, client } = setup({ client: { user: "a" } });
	const orig = console.error;
	console.error = () => {};
	try {
		client.on("open", () => { throw new Error("app bug"); });
		sockets[0].open();
		sockets[0].welcome();
		assert.equal(client.state, "open");
	} finally {
		console.error = orig;
	}
});

test("wspush.mjs re-exports the same API", async () => {
	const mod = await import(url.pathToFileURL(path.join(__dirname, "../../../gateway/web/wspush.mjs")).href);
	assert.equal(typeof mod.default.connect, "function");
	assert.equal(typeof mod.connect, "function");
	assert.equal(mod.backoffDelay(2, 500, 30000, () => 0.5), 1000);
});
