// End-to-end: the demo page (gateway/web/index.html + wspush.js) in
// Debian's Chromium driven by playwright-core, against two real wspush
// nodes sharing one Redis, and nginx (deploy/nginx/wspush.conf) in front.
//
//   WSPUSH_BUILD_DIR=build/asan node --test --test-concurrency=1 tests/browser/e2e/
//
// Never downloads a browser: /usr/bin/chromium (apt-get install chromium).
// Screenshots go to $WSPUSH_BUILD_DIR/screenshots/.
"use strict";

const test = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const path = require("node:path");
const { Stack, chromium, CHROMIUM, launchBrowser, stopAll, waitFor } = require("./stack.js");

const BUILD = process.env.WSPUSH_BUILD_DIR;
const SHOTS = BUILD ? path.join(path.resolve(BUILD), "screenshots") : null;
const WAIT = 20000;

let stack;
let browser;
let ctx;
const pageErrors = [];

function requireSetup() {
	if (!BUILD)
		throw new Error("set WSPUSH_BUILD_DIR to the build directory (bridge/, gateway/ binaries)");
	if (!chromium)
		throw new Error("playwright-core is not installed: run `npm ci` in tests/browser");
	if (!fs.existsSync(CHROMIUM))
		throw new Error(`${CHROMIUM} not found: apt-get install chromium (never download a browser)`);
}

async function openDemo(base, user, label) {
	const page = await ctx.newPage();
	page.on("pageerror", (e) => pageErrors.push(`${label}: ${e.message}`));
	await page.goto(`${base}/?user=${encodeURIComponent(user)}&autoconnect=1`, { timeout: WAIT });
	await page.waitForSelector("#state[data-state=open]", { timeout: WAIT });
	return page;
}

const text = (page, sel) => page.textContent(sel);

// Runs body; a failure carries the stack's logs. Closes the pages either way.
async function withPages(t, pages, body) {
	try {
		await body();
	} catch (e) {
		t.diagnostic(stack.logs());
		throw e;
	} finally {
		for (const page of pages)
			await page.close();
	}
}

async function join(page, channel) {
	const before = await page.locator(`#log li[data-channel="${channel}"]`).count();
	await page.fill("#channel", channel);
	await page.click("#join");
	await waitFor(`subscribed ${channel}`, WAIT, async () =>
		(await page.locator(`#log li[data-channel="${channel}"]`).count()) > before);
}

async function waitDelivery(page, { to, from, contains }) {
	let sel = "#log li.delivery";
	if (to)
		sel += `[data-to="${to}"]`;
	if (from)
		sel += `[data-from="${from}"]`;
	const loc = page.locator(sel, { hasText: contains });
	await loc.first().waitFor({ timeout: WAIT });
	return loc.first().textContent();
}

async function shot(page, name) {
	fs.mkdirSync(SHOTS, { recursive: true });
	await page.screenshot({ path: path.join(SHOTS, name), fullPage: true });
}

test.before(async () => {
	requireSetup();
	stack = new Stack(BUILD);
	try {
		await stack.startRedis();
		await stack.startNode("node-a");
		await stack.startNode("node-b");
	} catch (e) {
		const logs = stack.logs();
		await stack.stop();
		throw new Error(`${e.message}\n${logs}`);
	}
	browser = await launchBrowser();
	ctx = browser.ctx;
});

test.after(() => stopAll(browser, stack));

test("two nodes, one Redis: user to user with from, channel publish to both", { timeout: 120000 }, async (t) => {
	const a = stack.nodes["node-a"];
	const b = stack.nodes["node-b"];
	const alice = await openDemo(a.url, "alice", "alice");
	const bob = await openDemo(b.url, "bob", "bob");
	await withPages(t, [alice, bob], async () => {
		assert.equal(await text(alice, "#node"), "node-a");
		assert.equal(await text(bob, "#node"), "node-b");
		assert.match(await text(alice, "#worker"), /^\d+$/);

		// The ES module build works in a real browser, served by the gateway.
		const mjs = await alice.evaluate(async () => {
			const m = await import("/wspush.mjs");
			return typeof m.connect === "function" && typeof m.default.connect === "function";
		});
		assert.equal(mjs, true, "/wspush.mjs exports connect");

		// alice -> bob across nodes; bob sees from: alice.
		await alice.fill("#to", "user:bob");
		await alice.fill("#data", '{"text":"hi bob"}');
		await alice.click("#send");
		const got = await waitDelivery(bob, { to: "user:bob", from: "alice", contains: "hi bob" });
		assert.match(got, /from: alice/);
		await alice.locator("#log li.sent", { hasText: "published to user:bob" }).first().waitFor({ timeout: WAIT });

		// A refused publish shows the server's error on the page.
		await alice.fill("#to", "nowhere:x");
		await alice.click("#send");
		const err = await alice.locator("#log li.error", { hasText: "publish to nowhere:x" }).first();
		await err.waitFor({ timeout: WAIT });
		assert.match(await err.getAttribute("data-code"), /^[a-z_]+$/);

		// Both join room1; a plain Redis PUBLISH reaches both pages.
		await join(alice, "room1");
		await join(bob, "room1");
		const receivers = stack.redis("PUBLISH", "wspush:channel:room1", '{"news":"for room1"}').trim();
		assert.equal(receivers, "2", "both bridges subscribed to wspush:channel:room1");
		await waitDelivery(alice, { to: "channel:room1", contains: "for room1" });
		await waitDelivery(bob, { to: "channel:room1", contains: "for room1" });

		await shot(alice, "alice.png");
		await shot(bob, "bob.png");
		assert.deepEqual(pageErrors, []);
	});
});

test("through nginx: stopping bob's node, the page reconnects to the other, resubscribes, receives", { timeout: 180000 }, async (t) => {
	let base;
	try {
		base = await stack.startNginx(["node-a", "node-b"]);
	} catch (e) {
		t.diagnostic(stack.logs());
		throw e;
	}
	const alice = await openDemo(base, "alice", "alice/nginx");
	const bob = await openDemo(base, "bob", "bob/nginx");
	await withPages(t, [alice, bob], async () => {
		await join(alice, "room1");
		await join(bob, "room1");
		await stack.redis("PUBLISH", "wspush:channel:room1", '{"n":"before"}');
		await waitDelivery(bob, { to: "channel:room1", contains: "before" });

		const first = await text(bob, "#node");
		assert.ok(stack.nodes[first], `bob is on a known node (${first})`);
		const other = first === "node-a" ? "node-b" : "node-a";
		await bob.evaluate(() => { window.__wspushNoReload = 42; });
		const subsBefore = await bob.locator('#log li[data-channel="room1"]').count();

		await stack.stopNode(first);

		// Reconnected (no reload) to the other node, room1 subscribed again.
		await waitFor("bob reconnects to the other node", 45000, async () =>
			(await text(bob, "#node")) === other &&
			(await bob.getAttribute("#state", "data-state")) === "open");
		await waitFor("room1 resubscribed", WAIT, async () =>
			(await bob.locator('#log li[data-channel="room1"]').count()) > subsBefore);
		assert.equal(await bob.evaluate(() => window.__wspushNoReload), 42, "the page was not reloaded");
		assert.ok(await bob.locator("#log li.reconnect").count() >= 1, "the log shows the reconnect");
		assert.ok(Number(await text(bob, "#reconnects")) >= 1);

		stack.redis("PUBLISH", "wspush:channel:room1", '{"n":"after failover"}');
		await waitDelivery(bob, { to: "channel:room1", contains: "after failover" });
		stack.redis("PUBLISH", "wspush:user:bob", '{"direct":"after failover"}');
		await waitDelivery(bob, { to: "user:bob", contains: "after failover" });
		await shot(bob, "bob-after-failover.png");
		await shot(alice, "alice-nginx.png");

		// nginx logged the handshake without the query string (?user=bob).
		const log = stack.accessLog();
		assert.match(log, /GET \/ws /);
		assert.doesNotMatch(log, /user=/);
		assert.deepEqual(pageErrors, []);
	});
});
