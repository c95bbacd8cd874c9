// End-to-end: history recovery in the demo page (wspush.js in Debian's
// Chromium, playwright-core) against a real node with [history] on. The
// page's connection is cut by the server (a SIGHUP roll drains its worker
// with 1001), messages are published with FCALL wspush_publish meanwhile,
// and the page reconnects by itself: every message shows once, in id
// order, the missed ones marked "recovered".
//
//   WSPUSH_BUILD_DIR=build/asan node --test --test-concurrency=1 tests/browser/e2e/
"use strict";

const test = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const path = require("node:path");
const { Stack, chromium, CHROMIUM, launchBrowser, stopAll, waitFor } = require("./stack.js");

const BUILD = process.env.WSPUSH_BUILD_DIR;
const WAIT = 20000;

let stack;
let browser;
let ctx;
let skip = null;

function cmpId(a, b) {
	const [am, as] = a.split("-").map(BigInt);
	const [bm, bs] = b.split("-").map(BigInt);
	return am !== bm ? (am < bm ? -1 : 1) : as < bs ? -1 : as > bs ? 1 : 0;
}

test.before(async () => {
	if (!BUILD || !chromium || !fs.existsSync(CHROMIUM)) {
		skip = "needs WSPUSH_BUILD_DIR, playwright-core (npm ci) and /usr/bin/chromium";
		return;
	}
	stack = new Stack(BUILD);
	try {
		await stack.startRedis();
		await stack.startNode("node-h", { workers: 1, history: { size: 1000 } });
	} catch (e) {
		const logs = stack.logs ? stack.logs() : "";
		await stack.stop();
		stack = null;
		// A build that refuses [history] size is not wired yet.
		if (/not implemented by this build/.test(logs)) {
			skip = "this build refuses [history] size";
			return;
		}
		throw new Error(`${e.message}\n${logs}`);
	}
	browser = await launchBrowser();
	ctx = browser.ctx;
});

test.after(() => stopAll(browser, stack));

test("a cut connection recovers what was published meanwhile, once, in order", { timeout: 120000 }, async (t) => {
	if (skip) {
		t.skip(skip);
		return;
	}
	const n = stack.nodes["node-h"];
	const page = await ctx.newPage();
	const errors = [];
	page.on("pageerror", (e) => errors.push(e.message));
	await page.goto(`${n.url}/?user=carol&autoconnect=1&channels=hist`, { timeout: WAIT });
	await page.waitForSelector("#state[data-state=open]", { timeout: WAIT });
	await page.locator('#log li[data-channel="hist"]').first().waitFor({ timeout: WAIT });

	const pub = (i) => stack.redis("FCALL", "wspush_publish", "1", "wspush:channel:hist",
		JSON.stringify({ i })).trim();
	const ids = [pub(0)];
	await page.locator(`#log li.delivery[data-id="${ids[0]}"]`).waitFor({ timeout: WAIT });

	// The server cuts the connection: a rolling reload drains the worker.
	process.kill(n.gateway.pid, "SIGHUP");
	await waitFor("the page to lose its connection", WAIT, async () =>
		(await page.getAttribute("#state", "data-state")) !== "open");
	for (let i = 1; i <= 30; i++)
		ids.push(pub(i));
	await waitFor("the page to reconnect", WAIT, async () =>
		(await page.getAttribute("#state", "data-state")) === "open");
	for (let i = 31; i <= 40; i++)
		ids.push(pub(i));
	await page.locator(`#log li.delivery[data-id="${ids[ids.length - 1]}"]`).waitFor({ timeout: WAIT });

	const shown = await page.$$eval('#log li.delivery[data-to="channel:hist"]',
		(lis) => lis.map((li) => ({ id: li.getAttribute("data-id"), rec: li.getAttribute("data-recovered") })));
	assert.deepEqual(shown.map((s) => s.id), ids, "every message once, in publish order");
	for (let i = 1; i < shown.length; i++)
		assert.equal(cmpId(shown[i - 1].id, shown[i].id), -1);
	// Those published while it was away came back through the recovery.
	assert.ok(shown.slice(1, 31).some((s) => s.rec === "1"), "missed messages are marked recovered");
	assert.equal(await page.evaluate(() => window.wspushClient.duplicates), 0);
	await page.locator('#log li.recovery[data-to="channel:hist"]').first().waitFor({ timeout: WAIT });
	assert.deepEqual(errors, []);
	await page.close();
});
