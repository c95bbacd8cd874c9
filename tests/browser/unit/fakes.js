// Fakes for the unit tests of gateway/web/wspush.js, injected through the
// client's options: a clock (timers, now) that only moves when a test
// advances it, and a WebSocket class whose server side the test plays.
"use strict";

class FakeClock {
	constructor() {
		this.t = 1000;
		this.seq = 0;
		this.timers = new Map(); // id -> {at, fn, seq}
		this.setTimeout = (fn, ms) => {
			const id = ++this.seq;
			this.timers.set(id, { at: this.t + Math.max(0, ms | 0), fn, seq: id });
			return id;
		};
		this.clearTimeout = (id) => { this.timers.delete(id); };
		this.now = () => this.t;
	}
	// Runs every timer due up to now + ms, in order.
	advance(ms) {
		const end = this.t + ms;
		for (let guard = 0; guard < 100000; guard++) {
			let next = null;
			for (const [id, tm] of this.timers)
				if (tm.at <= end && (!next || tm.at < next.at ||
				    (tm.at === next.at && tm.seq < next.seq)))
					next = { id, ...tm };
			if (!next)
				break;
			this.timers.delete(next.id);
			this.t = next.at;
			next.fn();
		}
		this.t = end;
	}
	// Delay of the one pending timer scheduled for the backoff (the earliest).
	pending() {
		return [...this.timers.values()].map((tm) => tm.at - this.t).sort((a, b) => a - b);
	}
}

function makeFakeWS() {
	const sockets = [];
	class FakeWS {
		constructor(url, protocols) {
			this.url = url;
			this.protocols = protocols;
			this.readyState = 0;
			this.sent = [];
			this.closedByClient = null;
			sockets.push(this);
		}
		send(s) {
			if (this.readyState !== 1)
				throw new Error("InvalidStateError: not open");
			this.sent.push(JSON.parse(s));
		}
		close(code, reason) {
			this.closedByClient = { code, reason };
			this.readyState = 2;
		}
		// test helpers: the server side
		open() { this.readyState = 1; this.onopen && this.onopen({}); }
		recv(obj) {
			this.onmessage && this.onmessage({ data: typeof obj === "string" ? obj : JSON.stringify(obj) });
		}
		welcome(extra) {
			this.recv({ op: "welcome", user: "alice", node: "node-a", worker: 1, conn: "c1", ...extra });
		}
		serverClose(code, reason) {
			this.readyState = 3;
			this.onclose && this.onclose({ code, reason: reason || "", wasClean: code !== 1006 });
		}
		fail() { // connection refused
			this.readyState = 3;
			this.onerror && this.onerror({});
			this.onclose && this.onclose({ code: 1006, reason: "", wasClean: false });
		}
		last(op) { return [...this.sent].reverse().find((f) => f.op === op); }
		ops() { return this.sent.map((f) => f.op); }
	}
	return { FakeWS, sockets };
}

module.exports = { FakeClock, makeFakeWS };
