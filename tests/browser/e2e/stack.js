// Starts and stops the processes of the browser end-to-end tests: one
// redis-server, wspush nodes (a bridge and a gateway each) sharing it, and
// nginx (deploy/nginx/wspush.conf) in front of the nodes. Everything on
// free loopback ports in one temp dir; every process is stopped by PID.
"use strict";

const { spawn, execFileSync } = require("node:child_process");
const fs = require("node:fs");
const net = require("node:net");
const os = require("node:os");
const path = require("node:path");

const REPO = path.resolve(__dirname, "../../..");

function sleep(ms) {
	return new Promise((r) => setTimeout(r, ms));
}

function freePort() {
	return new Promise((resolve, reject) => {
		const srv = net.createServer();
		srv.unref();
		srv.on("error", reject);
		srv.listen(0, "127.0.0.1", () => {
			const { port } = srv.address();
			srv.close(() => resolve(port));
		});
	});
}

// Polls check() (sync or async, truthy = done) every 100 ms for up to ms.
async function waitFor(what, ms, check, proc) {
	const end = Date.now() + ms;
	let last;
	while (Date.now() < end) {
		try {
			if (await check())
				return;
		} catch (e) {
			last = e;
		}
		if (proc && proc.exited)
			throw new Error(`${what}: ${proc.name} exited (${proc.exitInfo}) during startup\n${proc.tail()}`);
		await sleep(100);
	}
	throw new Error(`${what}: not ready after ${ms} ms${last ? ` (${last.message})` : ""}` +
		(proc ? `\n${proc.tail()}` : ""));
}

async function httpStatus(url) {
	const ctl = new AbortController();
	const t = setTimeout(() => ctl.abort(), 2000);
	try {
		const r = await fetch(url, { signal: ctl.signal });
		await r.arrayBuffer();
		return r.status;
	} catch (e) {
		return 0;
	} finally {
		clearTimeout(t);
	}
}

class Proc {
	constructor(name, cmd, args, logDir) {
		this.name = name;
		this.log = path.join(logDir, `${name}.log`);
		const fd = fs.openSync(this.log, "a");
		// Own process group: a Ctrl-C of the test runner does not reach
		// it; the test stops it (by PID) in order.
		this.child = spawn(cmd, args, { stdio: ["ignore", fd, fd], detached: true });
		fs.closeSync(fd);
		this.pid = this.child.pid;
		this.exited = false;
		this.exitInfo = "";
		this.exitPromise = new Promise((resolve) => {
			this.child.on("exit", (code, sig) => {
				this.exited = true;
				this.exitInfo = sig ? `signal ${sig}` : `code ${code}`;
				resolve();
			});
			this.child.on("error", (e) => {
				this.exited = true;
				this.exitInfo = e.message;
				resolve();
			});
		});
	}

	tail(n = 30) {
		try {
			const lines = fs.readFileSync(this.log, "utf8").trimEnd().split("\n");
			return `---- ${this.name} log (last ${n} lines) ----\n${lines.slice(-n).join("\n")}`;
		} catch (e) {
			return "";
		}
	}

	// SIGTERM, wait up to ms, then SIGKILL. Only this PID.
	async stop(ms = 10000) {
		if (this.exited)
			return;
		try {
			process.kill(this.pid, "SIGTERM");
		} catch (e) { /* gone */ }
		const t = sleep(ms).then(() => "timeout");
		if (await Promise.race([this.exitPromise.then(() => "exited"), t]) === "timeout") {
			try {
				process.kill(this.pid, "SIGKILL");
			} catch (e) { /* gone */ }
			await Promise.race([this.exitPromise, sleep(5000)]);
		}
	}
}

class Stack {
	constructor(buildDir) {
		this.buildDir = path.resolve(buildDir);
		this.bridgeBin = path.join(this.buildDir, "bridge/wspush-bridge");
		this.gatewayBin = path.join(this.buildDir, "gateway/wspush-gateway");
		for (const b of [this.bridgeBin, this.gatewayBin])
			if (!fs.existsSync(b))
				throw new Error(`${b} not found: build it first`);
		this.dir = fs.mkdtempSync(path.join(os.tmpdir(), "wspush-browser-"));
		this.procs = [];
		this.nodes = {};
	}

	_start(name, cmd, args) {
		const p = new Proc(name, cmd, args, this.dir);
		this.procs.push(p);
		return p;
	}

	async startRedis() {
		this.redisPort = await freePort();
		const dir = path.join(this.dir, "redis");
		fs.mkdirSync(dir);
		const p = this._start("redis", "redis-server", ["--bind", "127.0.0.1", "--port", String(this.redisPort),
			"--dir", dir, "--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", ""]);
		await waitFor("redis", 10000, () => this.redis("PING").trim() === "PONG", p);
		this.redisProc = p;
	}

	redis(...args) {
		return execFileSync("redis-cli", ["-h", "127.0.0.1", "-p", String(this.redisPort), ...args],
			{ encoding: "utf8", timeout: 5000, stdio: ["ignore", "pipe", "pipe"] });
	}

	// One node: its own runtime dir and config, a bridge and a gateway.
	async startNode(id, opts = {}) {
		const dir = path.join(this.dir, id);
		const run = path.join(dir, "run");
		fs.mkdirSync(run, { recursive: true, mode: 0o750 });
		const port = await freePort();
		const metrics = await freePort();
		const conf = path.join(dir, "wspush.conf");
		fs.writeFileSync(conf, [
			"[node]",
			`id = ${id}`,
			`runtime_dir = ${run}`,
			"log_level = info",
			"[redis]",
			`url = redis://127.0.0.1:${this.redisPort}`,
			"prefix = wspush",
			"[gateway]",
			`listen = 127.0.0.1:${port}`,
			`workers = ${opts.workers || process.env.WSPUSH_BROWSER_WORKERS || 1}`,
			"demo_page = on",
			"client_publish = all",
			"drain_timeout_s = 2",
			"[auth]",
			"mode = none",
			"[bridge]",
			`metrics_listen = 127.0.0.1:${metrics}`,
			// opts.history: [history] keys, e.g. { size: 1000 }
			...(opts.history ? ["[history]",
				...Object.entries(opts.history).map(([k, v]) => `${k} = ${v}`)] : []),
			"",
		].join("\n"));
		const bridge = this._start(`${id}-bridge`, this.bridgeBin, ["-c", conf]);
		await waitFor(`${id} bridge`, 15000, () =>
			fs.existsSync(path.join(run, "bus1.ipc")) && fs.existsSync(path.join(run, "up.ipc")), bridge);
		const gateway = this._start(`${id}-gateway`, this.gatewayBin, ["-c", conf]);
		await waitFor(`${id} gateway`, 30000,
			async () => (await httpStatus(`http://127.0.0.1:${port}/healthz`)) === 200, gateway);
		const node = { id, port, conf, bridge, gateway, url: `http://127.0.0.1:${port}` };
		this.nodes[id] = node;
		return node;
	}

	async stopNode(id) {
		const n = this.nodes[id];
		await n.gateway.stop(15000);
		await n.bridge.stop(10000);
	}

	// nginx with deploy/nginx/wspush.conf; only the listen line, the two
	// upstream servers and the log path are substituted.
	async startNginx(nodeIds) {
		const nginx = fs.existsSync("/usr/sbin/nginx") ? "/usr/sbin/nginx" : "nginx";
		const dir = path.join(this.dir, "nginx");
		fs.mkdirSync(path.join(dir, "logs"), { recursive: true });
		// Workers may run as nobody when the test runs as root.
		fs.chmodSync(this.dir, 0o755);
		fs.chmodSync(dir, 0o777);
		this.nginxPort = await freePort();
		let snippet = fs.readFileSync(path.join(REPO, "deploy/nginx/wspush.conf"), "utf8");
		const servers = nodeIds.map((id) => `server 127.0.0.1:${this.nodes[id].port};`).join("\n\t");
		const before = snippet;
		snippet = snippet
			.replace(/^\s*listen 80;$/m, `\tlisten 127.0.0.1:${this.nginxPort};`)
			.replace(/^(\s*)server 127\.0\.0\.1:8080;\n\s*server 127\.0\.0\.1:8081;$/m, `$1${servers}`)
			.replace(/access_log \/var\/log\/nginx\/wspush\.access\.log/, `access_log ${dir}/logs/wspush.access.log`);
		if (snippet === before || !snippet.includes(`listen 127.0.0.1:${this.nginxPort};`) ||
		    !snippet.includes(servers) || snippet.includes("/var/log/"))
			throw new Error("deploy/nginx/wspush.conf: could not substitute listen/upstream/access_log");
		fs.writeFileSync(path.join(dir, "wspush.conf"), snippet);
		fs.writeFileSync(path.join(dir, "nginx.conf"), `
daemon off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/logs/error.log info;
events { worker_connections 1024; }
http {
	client_body_temp_path ${dir}/client_body;
	proxy_temp_path ${dir}/proxy;
	fastcgi_temp_path ${dir}/fastcgi;
	uwsgi_temp_path ${dir}/uwsgi;
	scgi_temp_path ${dir}/scgi;
	include ${dir}/wspush.conf;
}
`);
		execFileSync(nginx, ["-t", "-q", "-p", dir, "-c", path.join(dir, "nginx.conf"), "-e", path.join(dir, "logs/error.log")],
			{ stdio: ["ignore", "pipe", "pipe"], timeout: 10000 });
		const p = this._start("nginx", nginx, ["-p", dir, "-c", path.join(dir, "nginx.conf"), "-e", path.join(dir, "logs/error.log")]);
		await waitFor("nginx", 10000, async () => (await httpStatus(`http://127.0.0.1:${this.nginxPort}/healthz`)) === 200, p);
		this.nginxProc = p;
		this.nginxDir = dir;
		return `http://127.0.0.1:${this.nginxPort}`;
	}

	accessLog() {
		try {
			return fs.readFileSync(path.join(this.nginxDir, "logs/wspush.access.log"), "utf8");
		} catch (e) {
			return "";
		}
	}

	logs() {
		return this.procs.map((p) => p.tail(40)).join("\n");
	}

	// Stops everything in reverse start order, then removes the temp dir.
	async stop({ keep = false } = {}) {
		for (const p of [...this.procs].reverse())
			await p.stop(p.name.endsWith("gateway") ? 15000 : 10000);
		if (!keep)
			fs.rmSync(this.dir, { recursive: true, force: true });
	}
}

// playwright-core's driver (null until `npm ci`) and the browser it drives:
// Debian's Chromium, never a downloaded one.
let chromium;
try {
	({ chromium } = require("playwright-core"));
} catch (e) {
	chromium = null;
}
const CHROMIUM = process.env.WSPUSH_CHROMIUM || "/usr/bin/chromium";

// CHROMIUM, headless, in a fresh profile directory: { ctx, close() },
// close() removing the profile too.
async function launchBrowser() {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wspush-chromium-"));
	const rm = () => fs.rmSync(dir, { recursive: true, force: true });
	let ctx;
	try {
		ctx = await chromium.launchPersistentContext(dir, {
			executablePath: CHROMIUM,
			headless: true,
			args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
				"--disable-component-update", "--disable-sync", "--disable-quic", "--no-first-run"],
			viewport: { width: 1100, height: 760 },
		});
	} catch (e) {
		rm();
		throw e;
	}
	return {
		ctx,
		async close() {
			await ctx.close().catch(() => {});
			rm();
		},
	};
}

// The end of an e2e file: the browser closed, then the stack stopped (its
// directory kept when WSPUSH_KEEP_TMP is set). Either may be unset.
async function stopAll(browser, stack) {
	if (browser)
		await browser.close();
	if (stack)
		await stack.stop({ keep: !!process.env.WSPUSH_KEEP_TMP });
}

module.exports = { Stack, freePort, waitFor, sleep, httpStatus, chromium, CHROMIUM, launchBrowser, stopAll };
