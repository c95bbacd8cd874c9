// Unit tests of the history side of gateway/web/wspush.js: last ids per
// address, "since" on resubscribe / auth / ?since= after a reconnect, the
// "recovery" event, duplicates dropped, and history(). The fakes of
// fakes.js (fake WebSocket and clock through the client's options).
//   node --test tests/browser/unit/
"use strict";

const test = require("node:test");
const assert = require("node:assert/strict");
const path = require("node:path");

const WSPush = require(path.join(__dirname, "../../../gateway/web/wspush.js"));
const { FakeClock, makeFakeWS } = require("./fakes.js");

function b64url(s) {
	return Buffer.from(s).toString("base64").replace(/=+$/, "")
		.replace(/\+/g, "-").replace(/\//g, "_");
}

function jwt(sub) {
	return b64url('{"alg":"HS256"}') + "." + b64url(JSON.stringify({ sub, exp: 9e9 })) + ".sig";
}

function setup(client) {
	const clock = new FakeClock();
	const { FakeWS, sockets } = makeFakeWS();
	const c = WSPush.connect("ws://h/ws", { WebSocket: FakeWS, timers: clock, random: () => 0, ...client });
	const events = [];
	for (const ev of ["message", "recovery", "error"])
		c.on(ev, (a) => events.push([ev, a]));
	const ws = () => sockets[sockets.length - 1];
	// Drops the connection and lets the client reconnect (random 0: at once).
	const bounce = () => {
		ws().serverClose(1001);
		clock.advance(0);
		ws().open();
	};
	return { clock, sockets, c, events, ws, bounce };
}

const msg = (to, id, data) => ({ op: "msg", to, id, data: data === undefined ? id : data });

test("compareIds orders stream ids as numbers, not text", () => {
	const cmp = WSPush.compareIds;
	assert.equal(cmp("10-9", "9-10"), 1);
	assert.equal(cmp("1733212345678-0", "1733212345678-0"), 0);
	assert.equal(cmp("1733212345678", "1733212345678-0"), 0);
	assert.equal(cmp("1733212345678-1", "1733212345679-0"), -1);
	assert.equal(cmp("18446744073709551615-0", "18446744073709551614-99"), 1);
	assert.equal(cmp("007-1", "7-1"), 0);
	for (const bad of ["", "x", "1-", "-1", "1-2-3", " 1", null, 5])
		assert.equal(cmp(bad, "1"), null);
});

test("resubscribe after a reconnect carries since = the channel's last id", async () => {
	const { c, ws, bounce, events } = setup({ token: jwt("alice") });
	ws().open();
	ws().welcome();
	const p = c.subscribe("news");
	assert.equal(ws().last("subscribe").since, undefined, "nothing to recover yet");
	ws().recv({ op: "subscribed", channel: "news", ref: ws().last("subscribe").ref });
	await p;
	ws().recv(msg("channel:news", "100-0"));
	ws().recv(msg("channel:news", "100-1"));
	ws().recv({ op: "msg", to: "channel:news", data: "plain PUBLISH, no id" });
	assert.equal(c.lastId("channel:news"), "100-1");
	bounce();
	ws().welcome();
	const sub = ws().last("subscribe");
	assert.equal(sub.channel, "news");
	assert.equal(sub.since, "100-1");
	ws().recv({ op: "subscribed", channel: "news", ref: sub.ref, recovered: true });
	const rec = events.filter((e) => e[0] === "recovery");
	assert.deepEqual(rec.map((e) => e[1]), [{ to: "channel:news", since: "100-1", recovered: true }]);
	// Replayed then live: delivered in order, the last id follows.
	ws().recv(msg("channel:news", "101-0"));
	ws().recv(msg("channel:news", "102-0"));
	assert.equal(c.lastId("channel:news"), "102-0");
	const got = events.filter((e) => e[0] === "message").map((e) => e[1].data);
	assert.deepEqual(got, ["100-0", "100-1", "plain PUBLISH, no id", "101-0", "102-0"]);
	assert.equal(c.duplicates, 0);
});

test("recovered:false raises the recovery event and resolves subscribe()", async () => {
	const { c, ws, bounce, events } = setup({ token: jwt("alice"), lastIds: { "channel:news": "5-0" } });
	ws().open();
	ws().welcome();
	const p = c.subscribe("news");
	const sub = ws().last("subscribe");
	assert.equal(sub.since, "5-0", "options.lastIds seeds the first subscribe");
	ws().recv({ op: "subscribed", channel: "news", ref: sub.ref, recovered: false });
	const reply = await p;
	assert.equal(reply.recovered, false);
	const rec = events.filter((e) => e[0] === "recovery").map((e) => e[1]);
	assert.deepEqual(rec, [{ to: "channel:news", since: "5-0", recovered: false }]);
	// A server without history sends no "recovered": no event.
	bounce();
	ws().welcome();
	ws().recv({ op: "subscribed", channel: "news", ref: ws().last("subscribe").ref });
	assert.equal(events.filter((e) => e[0] === "recovery").length, 1);
});

test("duplicates (id not after the last one) are dropped and counted", () => {
	const { c, ws, events } = setup({ user: "bob" });
	ws().open();
	ws().welcome({ user: "bob" });
	for (const id of ["7-0", "7-1", "7-1", "6-9", "8-0", "10-0", "9-99"])
		ws().recv(msg("user:bob", id));
	// Each address has its own sequence.
	ws().recv(msg("all", "1-0"));
	const got = events.filter((e) => e[0] === "message").map((e) => e[1].id);
	assert.deepEqual(got, ["7-0", "7-1", "8-0", "10-0", "1-0"]);
	assert.equal(c.duplicates, 3);
	assert.deepEqual(c.lastIds, { "user:bob": "10-0", "all": "1-0" });
});

test("token mode: since on the first auth frame after a reconnect, recovery from welcome", () => {
	const { c, ws, bounce, events } = setup({ token: jwt("alice") });
	ws().open();
	assert.deepEqual(ws().sent[0], { op: "auth", token: jwt("alice") }, "no id known: no since");
	ws().welcome();
	ws().recv(msg("user:alice", "200-3"));
	bounce();
	assert.deepEqual(ws().sent[0], { op: "auth", token: jwt("alice"), since: "200-3" });
	ws().welcome({ recovered: true });
	const rec = events.filter((e) => e[0] === "recovery").map((e) => e[1]);
	assert.deepEqual(rec, [{ to: "user:alice", since: "200-3", recovered: true }]);
	// A token refresh in session is not a recovery.
	c.refreshToken(jwt("alice"));
	assert.equal(ws().last("auth").since, undefined);
});

test("token mode: another user's token never carries this user's id", () => {
	const { c, ws, bounce } = setup({ token: jwt("alice") });
	ws().open();
	ws().welcome();
	ws().recv(msg("user:alice", "200-3"));
	c.refreshToken(jwt("mallory"));
	bounce();
	assert.deepEqual(ws().sent[0], { op: "auth", token: jwt("mallory") });
	// An opaque token (no readable subject) carries no since either.
	const s = setup({ token: "opaque", lastIds: { "user:alice": "1-0" } });
	s.ws().open();
	assert.deepEqual(s.ws().sent[0], { op: "auth", token: "opaque" });
});

test("token mode: options.lastIds recovers on the very first connect", () => {
	const { ws } = setup({ token: jwt("alice"), lastIds: { "user:alice": "9-1", "bad": "x" } });
	ws().open();
	assert.deepEqual(ws().sent[0], { op: "auth", token: jwt("alice"), since: "9-1" });
});

test("user mode: ?since= on the reconnect URL", () => {
	const { ws, bounce, events, sockets } = setup({ user: "a b" });
	assert.equal(sockets[0].url, "ws://h/ws?user=a%20b");
	ws().open();
	ws().welcome({ user: "a b" });
	ws().recv(msg("user:a b", "300-0"));
	bounce();
	assert.equal(ws().url, "ws://h/ws?user=a%20b&since=300-0");
	ws().welcome({ user: "a b", recovered: false });
	const rec = events.filter((e) => e[0] === "recovery").map((e) => e[1]);
	assert.deepEqual(rec, [{ to: "user:a b", since: "300-0", recovered: false }]);
});

test("recover: false never sends since", async () => {
	const { c, ws, bounce } = setup({ user: "u", recover: false });
	ws().open();
	ws().welcome({ user: "u" });
	c.subscribe("news");
	ws().recv({ op: "subscribed", channel: "news", ref: ws().last("subscribe").ref });
	ws().recv(msg("user:u", "1-0"));
	ws().recv(msg("channel:news", "1-1"));
	bounce();
	assert.equal(ws().url, "ws://h/ws?user=u");
	ws().welcome({ user: "u" });
	assert.equal(ws().last("subscribe").since, undefined);
	assert.equal(c.lastId("channel:news"), "1-1", "ids are still tracked (duplicates)");
});

test("subscribe(channel, {since}) asks explicitly, also before the connection opens", async () => {
	const { c, ws } = setup({ user: "u" });
	const p = c.subscribe("feed", { since: "0" });
	ws().open();
	ws().welcome({ user: "u" });
	const sub = ws().last("subscribe");
	assert.equal(sub.since, "0");
	ws().recv({ op: "subscribed", channel: "feed", ref: sub.ref, recovered: true });
	assert.equal((await p).recovered, true);
	await assert.rejects(c.subscribe("x", { since: "yesterday" }), { code: "bad_request" });
});

test("history(): request, reply, last id advanced; errors reject", async () => {
	const { c, ws } = setup({ user: "u" });
	await assert.rejects(c.history("user:u"), { code: "not_connected" });
	ws().open();
	ws().welcome({ user: "u" });
	const p = c.history("user:u", { limit: 2 });
	const req = ws().last("history");
	assert.deepEqual({ ...req, ref: 0 }, { op: "history", to: "user:u", limit: 2, ref: 0 });
	ws().recv({ op: "history", to: "user:u", ref: req.ref, messages: [
		{ id: "40-0", data: { a: 1 } },
		{ id: "41-0", data_b64: "AP8=", from: "7" }] });
	const reply = await p;
	assert.equal(reply.messages.length, 2);
	assert.deepEqual([...reply.messages[1].bytes], [0, 255]);
	assert.equal(c.lastId("user:u"), "41-0");
	// A live message the history already had is not delivered again.
	let seen = 0;
	c.on("message", () => seen++);
	ws().recv(msg("user:u", "41-0"));
	ws().recv(msg("user:u", "42-0"));
	assert.equal(seen, 1);

	const q = c.history("user:other");
	ws().recv({ op: "error", code: "forbidden", msg: "not yours", ref: ws().last("history").ref });
	await assert.rejects(q, (e) => e.code === "forbidden" && /history of user:other/.test(e.message));
	await assert.rejects(c.history("user:u", { limit: 0 }), { code: "bad_request" });
	await assert.rejects(c.history("user:u", { limit: 1.5 }), { code: "bad_request" });
	await assert.rejects(c.history(""), { code: "bad_request" });
	// No limit: the server's default.
	c.history("all");
	assert.equal(ws().last("history").limit, undefined);
});
