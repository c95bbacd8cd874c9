/*
 * wspush.js - the browser (and Node) client of wspush.
 *
 * A plain script, no build step, no dependencies. Loaded with
 *   <script src="/wspush.js"></script>            -> window.WSPush
 *   import WSPush from "/wspush.mjs";              -> the same object
 *   const WSPush = require("./wspush.js");         -> Node (CommonJS)
 * It always defines globalThis.WSPush as well (that is how wspush.mjs
 * re-exports it without a bundler).
 *
 *   const c = WSPush.connect("wss://push.example.com/ws", { token: jwt });
 *   c.on("open", (welcome) => console.log("connected to", welcome.node));
 *   c.on("message", (m) => console.log(m.to, m.from, m.data));
 *   c.on("auth_required", async () => c.refreshToken(await fetchToken()));
 *   await c.subscribe("news");               // resolves on "subscribed"
 *   await c.publish("user:7", { hi: 1 });    // rejects with err.code "forbidden"
 *   await c.send({ order: 1001 });           // to the backend stream
 *   c.close();
 *
 * Protocol: the README's "Client protocol" (JSON text frames). The token
 * is sent as the first frame {"op":"auth","token":...}, never in the URL.
 * Reconnects use capped exponential backoff with full jitter
 * (delay = random() * min(cap, base * 2^attempt)), except after close codes
 * 4001/4003, which need a new token (event "auth_required", then
 * refreshToken()). Every subscribed channel is subscribed again after a
 * reconnect. See README.md ("JavaScript client") for every option.
 *
 * History (servers with [history] size > 0): the client remembers the last
 * message id per channel and for the user's own address, and after a
 * reconnect asks for what it missed: "since" on each resubscribe, on the
 * first "auth" frame (token mode) or ?since= in the URL (user mode). The
 * server answers with "recovered": true (nothing is missing) or false
 * (some messages are gone: reload your state); either way the client emits
 * "recovery" {to, since, recovered}. Messages are never delivered twice:
 * one whose id is not after the last one of its address is dropped and
 * counted in client.duplicates. c.history("user:42", {limit}) reads what
 * is stored. Old servers ignore "since" and send no "recovered".
 */
(function (root, factory) {
	"use strict";
	var api = factory();
	if (typeof module === "object" && module && module.exports)
		module.exports = api;
	if (root)
		root.WSPush = api;
})(typeof globalThis !== "undefined" ? globalThis
	: typeof self !== "undefined" ? self : this, function () {
	"use strict";

	var VERSION = "1.0.0";

	/* Close codes after which reconnecting without a new token is pointless. */
	var AUTH_CLOSE_CODES = { 4001: "unauthorized", 4003: "forbidden" };

	var DEFAULTS = {
		token: null,          /* JWT, sent as the first frame */
		user: null,           /* auth.mode = none: appended as ?user= */
		reconnect: true,      /* reconnect after unexpected closes */
		backoffBaseMs: 500,   /* first retry waits random() * 500 ms */
		backoffCapMs: 30000,  /* ... doubling up to random() * 30 s */
		maxAttempts: Infinity, /* give up (state "closed") after this many */
		openTimeoutMs: 15000, /* socket open + welcome must take less */
		pingIntervalMs: 20000, /* app-level ping after this long without traffic */
		pongTimeoutMs: 10000, /* no reply to that ping: the link is dead */
		requestTimeoutMs: 15000, /* subscribe/unsubscribe/publish/send replies */
		/*
		 * How publish()/send() resolve:
		 *  "ok"   the server answers {"op":"ok","ref":N} on success (wspush
		 *         does): resolve on it, reject on {"op":"error","ref":N};
		 *  "sent" the server only answers errors: resolve once the frame is
		 *         handed to the socket; a later error with that ref is
		 *         emitted as an "error" event (err.ref, err.op set).
		 */
		ack: "ok",
		queueWhileDisconnected: true, /* publish/send wait for the next open */
		maxQueued: 1000,
		protocols: undefined, /* WebSocket subprotocols */
		WebSocket: null,      /* constructor; default globalThis.WebSocket */
		random: null,         /* () => [0,1); default Math.random */
		timers: null,         /* { setTimeout, clearTimeout, now } for tests */
		/* History: ask for missed messages after a reconnect ("since"). */
		recover: true,
		/* Last ids to start from, e.g. kept in localStorage across page
		 * loads: { "user:42": "1733212345678-0", "channel:news": ... }. */
		lastIds: null,
		debug: false
	};

	var EVENTS = ["open", "message", "close", "error", "state",
		"reconnecting", "auth_required", "subscribed", "unsubscribed",
		"pong", "frame", "recovery"];

	/* An error the server reported (code "forbidden", ...) or a local one. */
	function WSPushError(code, message, extra) {
		var e = new Error(message || code);
		e.name = "WSPushError";
		e.code = code;
		if (extra)
			for (var k in extra)
				if (Object.prototype.hasOwnProperty.call(extra, k) &&
				    extra[k] !== undefined)
					e[k] = extra[k];
		return e;
	}

	function describeOp(frame) {
		if (!frame)
			return "request";
		switch (frame.op) {
		case "subscribe": return "subscribe to channel " + frame.channel;
		case "unsubscribe": return "unsubscribe from channel " + frame.channel;
		case "publish": return "publish to " + frame.to;
		case "send": return "send to the backend";
		case "history": return "read the history of " + frame.to;
		case "auth": return "authentication";
		default: return frame.op;
		}
	}

	function serverError(reply, frame) {
		var code = typeof reply.code === "string" ? reply.code : "error";
		var what = describeOp(frame);
		var text = code === "forbidden"
			? "forbidden: this connection may not " + what
			: code + ": " + what + " failed";
		if (typeof reply.msg === "string" && reply.msg)
			text += " (" + reply.msg + ")";
		return WSPushError(code, text, {
			ref: reply.ref, op: frame ? frame.op : undefined,
			channel: frame ? frame.channel : undefined,
			to: frame ? frame.to : undefined,
			serverMessage: reply.msg, reply: reply
		});
	}

	/* Adds name=<value> to the query string (user=, since=). */
	function withParam(url, name, value) {
		var hash = "";
		var i = url.indexOf("#");
		if (i >= 0) {
			hash = url.slice(i);
			url = url.slice(0, i);
		}
		return url + (url.indexOf("?") >= 0 ? "&" : "?") + name + "=" +
			encodeURIComponent(value) + hash;
	}

	function withUser(url, user) {
		return withParam(url, "user", user);
	}

	/*
	 * Message ids are Redis stream ids, "<ms>-<seq>" (two 64-bit numbers,
	 * so compared as digit strings, not as JS numbers). Returns <0, 0, >0;
	 * null if either is not an id.
	 */
	var ID_RE = /^(\d{1,20})(?:-(\d{1,20}))?$/;
	function cmpDigits(a, b) {
		a = a.replace(/^0+(?=\d)/, "");
		b = b.replace(/^0+(?=\d)/, "");
		if (a.length !== b.length)
			return a.length < b.length ? -1 : 1;
		return a < b ? -1 : a > b ? 1 : 0;
	}
	function compareIds(a, b) {
		var x = typeof a === "string" ? ID_RE.exec(a) : null;
		var y = typeof b === "string" ? ID_RE.exec(b) : null;
		if (!x || !y)
			return null;
		return cmpDigits(x[1], y[1]) || cmpDigits(x[2] || "0", y[2] || "0");
	}

	/* The "sub" claim of a JWT, without checking it (the server does):
	 * a remembered user id must only be sent for the same user. */
	function tokenSubject(token) {
		try {
			var part = String(token).split(".")[1];
			part = part.replace(/-/g, "+").replace(/_/g, "/");
			while (part.length % 4)
				part += "=";
			var json = typeof atob === "function" ? atob(part)
				: Buffer.from(part, "base64").toString("binary");
			var sub = JSON.parse(decodeURIComponent(escape(json))).sub;
			return typeof sub === "string" ? sub : null;
		} catch (e) {
			return null;
		}
	}

	function decodeBase64(s) {
		if (typeof atob === "function") {
			var bin = atob(s);
			var out = new Uint8Array(bin.length);
			for (var i = 0; i < bin.length; i++)
				out[i] = bin.charCodeAt(i);
			return out;
		}
		/* global Buffer: Node without atob */
		return new Uint8Array(Buffer.from(s, "base64"));
	}

	/*
	 * Backoff delay for the given attempt (0-based): full jitter over an
	 * exponentially growing, capped window.
	 */
	function backoffDelay(attempt, baseMs, capMs, random) {
		var exp = Math.min(attempt, 30);
		var window = Math.min(capMs, baseMs * Math.pow(2, exp));
		return Math.floor(random() * window);
	}

	function Client(url, options) {
		var o = {};
		var k;
		for (k in DEFAULTS)
			o[k] = DEFAULTS[k];
		if (typeof options === "string")
			options = { token: options };
		for (k in options || {})
			if (Object.prototype.hasOwnProperty.call(options, k) &&
			    options[k] !== undefined)
				o[k] = options[k];
		if (o.ack !== "ok" && o.ack !== "sent")
			throw new TypeError('WSPush: option ack must be "ok" or "sent"');
		this.url = url;
		this.options = o;
		this.WebSocket = o.WebSocket || (typeof WebSocket !== "undefined"
			? WebSocket : null);
		if (!this.WebSocket)
			throw new TypeError("WSPush: no WebSocket implementation " +
				"(pass options.WebSocket)");
		var t = o.timers || {};
		this._setTimeout = t.setTimeout || function (f, ms) {
			return setTimeout(f, ms);
		};
		this._clearTimeout = t.clearTimeout || function (h) {
			clearTimeout(h);
		};
		this._now = t.now || function () { return Date.now(); };
		this._random = o.random || Math.random;
		this._token = o.token || null;
		this._handlers = {};
		this._ws = null;
		this._state = "idle";
		this._attempt = 0;       /* consecutive failed (re)connects */
		this._reconnects = 0;    /* completed reconnects, for the app */
		this._everOpened = false;
		this._ref = 0;
		this._pending = {};      /* ref -> {frame, resolve, reject, timer} */
		this._lateErrors = {};   /* ack "sent": ref -> frame */
		this._channels = {};     /* wanted channels: name -> true */
		this._outbox = [];       /* frames waiting for the next open */
		this._timer = null;      /* backoff / open timeout */
		this._pingTimer = null;
		this._pongTimer = null;
		this._pingRef = null;
		this._lastRx = 0;
		this.welcome = null;
		/* History: address -> last message id; the user id it applies to. */
		this._lastIds = {};
		this._duplicates = 0;
		this._recovering = {}; /* address -> since, until the server answers */
		if (o.lastIds)
			for (k in o.lastIds)
				if (Object.prototype.hasOwnProperty.call(o.lastIds, k) &&
				    compareIds(o.lastIds[k], "0") !== null)
					this._lastIds[k] = o.lastIds[k];
		this._onOnline = null;
		if (typeof addEventListener === "function" &&
		    typeof window !== "undefined") {
			var self = this;
			/* Back online: do not wait out the rest of a long backoff. */
			this._onOnline = function () {
				if (self._state === "reconnecting")
					self._reconnectNow();
			};
			addEventListener("online", this._onOnline);
		}
		this._open();
	}

	Client.prototype = {
		constructor: Client,

		/* "connecting" | "open" | "reconnecting" | "auth_required" | "closed" */
		get state() { return this._state; },
		get channels() { return Object.keys(this._channels); },
		get reconnects() { return this._reconnects; },
		/* Messages dropped because their id was not after the last one. */
		get duplicates() { return this._duplicates; },
		/* A copy of address -> last id (to keep across page loads). */
		get lastIds() {
			var out = {};
			for (var a in this._lastIds)
				out[a] = this._lastIds[a];
			return out;
		},
		lastId: function (address) {
			return Object.prototype.hasOwnProperty.call(this._lastIds, address)
				? this._lastIds[address] : null;
		},

		on: function (name, fn) {
			if (EVENTS.indexOf(name) < 0)
				throw new TypeError("WSPush: unknown event " + name);
			(this._handlers[name] = this._handlers[name] || []).push(fn);
			return this;
		},

		off: function (name, fn) {
			var list = this._handlers[name];
			if (!list)
				return this;
			if (!fn) {
				delete this._handlers[name];
				return this;
			}
			var i = list.indexOf(fn);
			if (i >= 0)
				list.splice(i, 1);
			return this;
		},

		_emit: function (name, arg, arg2) {
			var list = this._handlers[name];
			if (this.options.debug && typeof console !== "undefined")
				console.debug("wspush:", name, arg);
			if (!list || !list.length) {
				if (name === "error" && this.options.debug &&
				    typeof console !== "undefined")
					console.error(arg);
				return;
			}
			list = list.slice();
			for (var i = 0; i < list.length; i++) {
				try {
					list[i].call(this, arg, arg2);
				} catch (e) {
					/* An app handler must not break the client. */
					if (typeof console !== "undefined")
						console.error("wspush: " + name + " handler threw", e);
				}
			}
		},

		_setState: function (s) {
			if (s === this._state)
				return;
			var prev = this._state;
			this._state = s;
			this._emit("state", s, prev);
		},

		/* ------------------------------------------------------------ */
		/* connection lifecycle                                          */

		_open: function () {
			var self = this;
			var url = this.options.user != null
				? withUser(this.url, this.options.user) : this.url;
			var us = this._userSince();
			if (this.options.user != null && us !== null) {
				url = withParam(url, "since", us.since);
				this._recovering["user:" + us.user] = us.since;
			}
			this._clearTimer();
			this._setState("connecting");
			var ws;
			try {
				ws = this.options.protocols !== undefined
					? new this.WebSocket(url, this.options.protocols)
					: new this.WebSocket(url);
			} catch (e) {
				/* Bad URL and the like: report, retry as for a failed connect. */
				this._emit("error", WSPushError("connect_failed",
					"WSPush: cannot open " + this.url + ": " +
					(e && e.message ? e.message : e), { cause: e }));
				this._ws = null;
				this._afterClose(1006, "connect failed", false);
				return;
			}
			this._ws = ws;
			try {
				ws.binaryType = "arraybuffer";
			} catch (e) { /* not every implementation allows it */ }
			ws.onopen = function () {
				if (self._ws !== ws)
					return;
				self._lastRx = self._now();
				if (self._token) {
					var auth = { op: "auth", token: self._token };
					var us = self._userSince();
					if (us !== null) {
						auth.since = us.since;
						self._recovering["user:" + us.user] = us.since;
					}
					self._rawSend(auth);
				}
			};
			ws.onmessage = function (ev) {
				if (self._ws !== ws)
					return;
				self._onFrame(ev.data);
			};
			ws.onerror = function () {
				if (self._ws !== ws)
					return;
				/* Details come with the close event that follows. */
				self._emit("error", WSPushError("socket_error",
					"WSPush: WebSocket error on " + self.url));
			};
			ws.onclose = function (ev) {
				if (self._ws !== ws)
					return;
				self._ws = null;
				self._afterClose(ev.code, ev.reason || "", ev.wasClean);
			};
			this._timer = this._setTimeout(function () {
				self._timer = null;
				if (self._ws === ws && self._state === "connecting")
					self._abort(ws, "open timeout");
			}, this.options.openTimeoutMs);
		},

		/*
		 * Gives up on a socket at once (open timeout, missed pong): a dead
		 * peer can keep a closing handshake pending for minutes.
		 */
		_abort: function (ws, reason) {
			ws.onopen = ws.onmessage = ws.onerror = ws.onclose = null;
			try {
				ws.close(4000, reason);
			} catch (e) { /* already closing */ }
			if (this._ws === ws)
				this._ws = null;
			this._afterClose(1006, reason, false);
		},

		_afterClose: function (code, reason, wasClean) {
			this._stopPing();
			this._clearTimer();
			/* A lost connection holds no subscription: unsubscribe is done. */
			var refs = Object.keys(this._pending);
			for (var i = 0; i < refs.length; i++) {
				var u = this._pending[refs[i]];
				if (u.frame.op !== "unsubscribe")
					continue;
				delete this._pending[refs[i]];
				if (u.timer !== null)
					this._clearTimeout(u.timer);
				u.resolve({ op: "unsubscribed", channel: u.frame.channel,
					ref: u.ref, local: true });
			}
			/* Replies to requests in flight will never come. Subscriptions
			 * stay pending and are sent again after the reconnect. */
			this._failPending(function (p) {
				return p.frame.op !== "subscribe";
			}, "disconnected", "connection closed before the server replied");
			this._lateErrors = {};

			if (this._state === "closed") {
				this._emit("close", { code: code, reason: reason,
					wasClean: !!wasClean, willReconnect: false });
				return;
			}
			if (AUTH_CLOSE_CODES[code]) {
				this._emit("close", { code: code, reason: reason,
					wasClean: !!wasClean, willReconnect: false });
				this._token = null;
				this._setState("auth_required");
				this._emit("auth_required", { code: code, reason: reason,
					why: AUTH_CLOSE_CODES[code] });
				return;
			}
			if (!this.options.reconnect ||
			    this._attempt >= this.options.maxAttempts) {
				this._emit("close", { code: code, reason: reason,
					wasClean: !!wasClean, willReconnect: false });
				this._shutdown("gave up reconnecting");
				return;
			}
			var delay = backoffDelay(this._attempt,
				this.options.backoffBaseMs, this.options.backoffCapMs,
				this._random);
			this._attempt++;
			this._emit("close", { code: code, reason: reason,
				wasClean: !!wasClean, willReconnect: true });
			this._setState("reconnecting");
			this._emit("reconnecting", { attempt: this._attempt,
				delayMs: delay, code: code, reason: reason });
			var self = this;
			this._timer = this._setTimeout(function () {
				self._timer = null;
				if (self._state === "reconnecting")
					self._open();
			}, delay);
		},

		_reconnectNow: function () {
			this._clearTimer();
			this._open();
		},

		_clearTimer: function () {
			if (this._timer !== null) {
				this._clearTimeout(this._timer);
				this._timer = null;
			}
		},

		/* Closes for good: no reconnect. Pending requests are rejected. */
		close: function (code, reason) {
			if (this._state === "closed")
				return;
			this._setState("closed");
			this._clearTimer();
			this._stopPing();
			var ws = this._ws;
			this._ws = null;
			if (this._onOnline && typeof removeEventListener === "function")
				removeEventListener("online", this._onOnline);
			this._shutdown("client closed");
			if (ws) {
				ws.onopen = ws.onmessage = ws.onerror = null;
				var self = this;
				ws.onclose = function (ev) {
					self._emit("close", { code: ev.code, reason: ev.reason || "",
						wasClean: ev.wasClean, willReconnect: false });
				};
				try {
					ws.close(code || 1000, reason || "");
				} catch (e) {
					ws.close();
				}
			}
		},

		_shutdown: function (why) {
			this._setState("closed");
			this._failPending(null, "closed", why);
			var outbox = this._outbox;
			this._outbox = [];
			for (var i = 0; i < outbox.length; i++)
				outbox[i].reject(WSPushError("closed", "WSPush: " + why +
					"; " + describeOp(outbox[i].frame) + " not sent"));
		},

		/*
		 * {user, since} for the user's own address when recovery applies:
		 * the user is options.user, or the token's subject (so a new token
		 * for another user never carries this user's id), and a last id of
		 * "user:<it>" is known (seen, or given in options.lastIds).
		 */
		_userSince: function () {
			if (!this.options.recover)
				return null;
			var user = this.options.user != null ? String(this.options.user)
				: tokenSubject(this._token);
			if (user === null)
				return null;
			var since = this.lastId("user:" + user);
			return since === null ? null : { user: user, since: since };
		},

		/* Remembers id as the last of address; false if it is not after the
		 * last one (a duplicate, or a replay overlapping live delivery). */
		_advance: function (address, id) {
			var last = this.lastId(address);
			if (last !== null) {
				var c = compareIds(id, last);
				if (c !== null && c <= 0)
					return false;
			}
			this._lastIds[address] = id;
			return true;
		},

		/* A "recovered" answer (welcome or subscribed) for address. */
		_onRecovered: function (address, recovered) {
			var since = Object.prototype.hasOwnProperty.call(this._recovering,
				address) ? this._recovering[address] : null;
			delete this._recovering[address];
			if (typeof recovered !== "boolean")
				return; /* a server without history */
			this._emit("recovery", { to: address, since: since,
				recovered: recovered });
		},

		/* Sets a new token. Reconnects at once if the old one was refused. */
		refreshToken: function (token) {
			this._token = token || null;
			if (this._state === "auth_required") {
				this._attempt = 0;
				this._open();
			} else if (this._ws && this._token &&
			    (this._state === "open" || this._state === "connecting")) {
				/* In session: extends it (the server checks the new exp). */
				if (this._state === "open" || this._ws.readyState === 1)
					this._rawSend({ op: "auth", token: this._token });
			}
			/* reconnecting: the next attempt uses the new token. */
		},

		/* Reconnects now (e.g. after auth_required in auth.mode none). */
		reconnect: function () {
			if (this._state === "closed")
				return;
			var ws = this._ws;
			this._attempt = 0;
			if (ws) {
				this._ws = null;
				ws.onopen = ws.onmessage = ws.onerror = ws.onclose = null;
				this._stopPing();
				try { ws.close(1000, "reconnect"); } catch (e) { /* ignore */ }
			}
			this._reconnectNow();
		},

		/* ------------------------------------------------------------ */
		/* frames                                                        */

		_rawSend: function (obj) {
			if (!this._ws)
				return false;
			try {
				this._ws.send(JSON.stringify(obj));
				return true;
			} catch (e) {
				this._emit("error", WSPushError("send_failed",
					"WSPush: send failed: " + (e && e.message ? e.message : e)));
				return false;
			}
		},

		_onFrame: function (raw) {
			this._lastRx = this._now();
			if (this._pongTimer !== null) {
				/* Any traffic proves the link; the pong is not required. */
				this._clearTimeout(this._pongTimer);
				this._pongTimer = null;
			}
			if (typeof raw !== "string") {
				/* delivery = raw with a binary payload */
				this._emit("message", { op: "msg", raw: true, data: raw });
				return;
			}
			if (raw === "pong")
				return; /* answer to a bare "ping" */
			var f;
			try {
				f = JSON.parse(raw);
			} catch (e) {
				f = null;
			}
			if (!f || typeof f !== "object" || Array.isArray(f) ||
			    typeof f.op !== "string") {
				/* delivery = raw: a payload as published */
				this._emit("message", { op: "msg", raw: true,
					data: f !== null ? f : raw, text: raw });
				return;
			}
			this._emit("frame", f);
			switch (f.op) {
			case "welcome":
				this._onWelcome(f);
				break;
			case "msg":
				if (typeof f.data_b64 === "string" && f.data === undefined) {
					try {
						f.bytes = decodeBase64(f.data_b64);
					} catch (e) { /* leave data_b64 to the app */ }
				}
				if (typeof f.id === "string" && typeof f.to === "string" &&
				    compareIds(f.id, "0") !== null &&
				    !this._advance(f.to, f.id)) {
					this._duplicates++;
					break;
				}
				this._emit("message", f);
				break;
			case "subscribed":
			case "unsubscribed":
				if (f.op === "subscribed" && typeof f.channel === "string")
					this._onRecovered("channel:" + f.channel, f.recovered);
				this._settle(f, true);
				this._emit(f.op, { channel: f.channel, ref: f.ref,
					recovered: f.recovered });
				break;
			case "history":
				this._onHistory(f);
				break;
			case "ok":
				if (f.ref !== undefined)
					delete this._lateErrors[f.ref];
				this._settle(f, true);
				break;
			case "pong":
				if (f.ref !== undefined && f.ref === this._pingRef)
					this._pingRef = null;
				else
					this._settle(f, true);
				this._emit("pong", f);
				break;
			case "error":
				this._onError(f);
				break;
			default:
				/* Unknown ops are ignored (forward compatibility). */
				break;
			}
		},

		_onWelcome: function (f) {
			var reconnected = this._everOpened;
			if (typeof f.user === "string") {
				this._onRecovered("user:" + f.user, f.recovered);
			}
			this._clearTimer();
			this.welcome = f;
			this._attempt = 0;
			this._everOpened = true;
			if (reconnected)
				this._reconnects++;
			this._setState("open");
			this._startPing();
			f.reconnected = reconnected;
			this._emit("open", f);
			/* Subscriptions first, so queued publishes follow them. */
			var chans = Object.keys(this._channels);
			for (var i = 0; i < chans.length; i++)
				this._sendSubscribe(chans[i]);
			var outbox = this._outbox;
			this._outbox = [];
			for (var j = 0; j < outbox.length; j++)
				this._dispatch(outbox[j]);
		},

		_onError: function (f) {
			var p = f.ref !== undefined ? this._pending[f.ref] : undefined;
			if (p) {
				delete this._pending[f.ref];
				if (p.timer !== null)
					this._clearTimeout(p.timer);
				var err = serverError(f, p.frame);
				if (p.frame.op === "subscribe" &&
				    this._channels[p.frame.channel] === p.ref)
					delete this._channels[p.frame.channel];
				if (p.reject)
					p.reject(err);
				else
					this._emit("error", err);
				return;
			}
			var late = f.ref !== undefined ? this._lateErrors[f.ref] : undefined;
			if (late)
				delete this._lateErrors[f.ref];
			this._emit("error", serverError(f, late || null));
		},

		/* Resolves or rejects the request a reply refers to. */
		_settle: function (f, ok) {
			if (f.ref === undefined)
				return;
			var p = this._pending[f.ref];
			if (!p)
				return;
			delete this._pending[f.ref];
			if (p.timer !== null)
				this._clearTimeout(p.timer);
			if (p.resolve)
				p.resolve(f);
		},

		_failPending: function (filter, code, why) {
			var refs = Object.keys(this._pending);
			for (var i = 0; i < refs.length; i++) {
				var p = this._pending[refs[i]];
				if (filter && !filter(p))
					continue;
				delete this._pending[refs[i]];
				if (p.timer !== null)
					this._clearTimeout(p.timer);
				if (p.reject)
					p.reject(WSPushError(code, "WSPush: " + why + " (" +
						describeOp(p.frame) + ")", { op: p.frame.op,
						channel: p.frame.channel, to: p.frame.to }));
			}
			/* Subscriptions in flight are sent again on the next open. */
			if (!filter)
				return;
			refs = Object.keys(this._pending);
			for (var j = 0; j < refs.length; j++) {
				var q = this._pending[refs[j]];
				if (q.timer !== null) {
					this._clearTimeout(q.timer);
					q.timer = null;
				}
				q.stale = true;
			}
		},

		/* Sends frame with a fresh ref and tracks the reply. */
		_request: function (frame, resolve, reject, waitReply) {
			var ref = ++this._ref;
			frame.ref = ref;
			var p = { ref: ref, frame: frame, resolve: resolve, reject: reject,
				timer: null };
			if (waitReply) {
				this._pending[ref] = p;
				var self = this;
				p.timer = this._setTimeout(function () {
					if (self._pending[ref] !== p)
						return;
					delete self._pending[ref];
					p.reject(WSPushError("timeout", "WSPush: no reply to " +
						describeOp(frame) + " within " +
						self.options.requestTimeoutMs + " ms",
						{ op: frame.op, ref: ref }));
				}, this.options.requestTimeoutMs);
			}
			if (!this._rawSend(frame)) {
				if (waitReply)
					delete this._pending[ref];
				if (p.timer !== null)
					this._clearTimeout(p.timer);
				reject(WSPushError("send_failed", "WSPush: could not send " +
					describeOp(frame)));
				return null;
			}
			return p;
		},

		/* ------------------------------------------------------------ */
		/* channels                                                      */

		/* The history reply: its messages also advance the last id. */
		_onHistory: function (f) {
			var p = f.ref !== undefined ? this._pending[f.ref] : undefined;
			var to = typeof f.to === "string" ? f.to
				: p ? p.frame.to : null;
			var msgs = Array.isArray(f.messages) ? f.messages : [];
			for (var i = 0; i < msgs.length; i++) {
				var m = msgs[i];
				if (m && typeof m.data_b64 === "string" && m.data === undefined) {
					try {
						m.bytes = decodeBase64(m.data_b64);
					} catch (e) { /* leave data_b64 to the app */ }
				}
			}
			if (to !== null && msgs.length &&
			    typeof msgs[msgs.length - 1].id === "string")
				this._advance(to, msgs[msgs.length - 1].id);
			this._settle(f, true);
		},

		/* Adds since to a subscribe frame when recovery applies. */
		_subscribeFrame: function (channel, since) {
			var frame = { op: "subscribe", channel: channel };
			if (since === undefined || since === null)
				since = this.options.recover
					? this.lastId("channel:" + channel) : null;
			if (since !== null && compareIds(since, "0") !== null) {
				frame.since = since;
				this._recovering["channel:" + channel] = since;
			}
			return frame;
		},

		_sendSubscribe: function (channel) {
			/* Reuse a subscribe() promise still waiting from before the drop. */
			var refs = Object.keys(this._pending);
			var waiters = [];
			for (var i = 0; i < refs.length; i++) {
				var old = this._pending[refs[i]];
				if (old.stale && old.frame.op === "subscribe" &&
				    old.frame.channel === channel) {
					delete this._pending[refs[i]];
					waiters.push(old);
				}
			}
			var self = this;
			var since = null;
			for (var w = 0; w < waiters.length; w++)
				if (waiters[w].since != null)
					since = waiters[w].since;
			var p = this._request(this._subscribeFrame(channel, since),
				function (reply) {
					for (var k = 0; k < waiters.length; k++)
						waiters[k].resolve(reply);
				},
				function (err) {
					for (var k = 0; k < waiters.length; k++)
						waiters[k].reject(err);
					if (!waiters.length && err.code !== "disconnected" &&
					    err.code !== "closed")
						self._emit("error", err);
				}, true);
			if (p)
				this._channels[channel] = p.ref;
		},

		/*
		 * Subscribes to a channel; kept across reconnects until unsubscribe().
		 * Resolves with the server's "subscribed" reply (its "recovered" says
		 * whether the recovery was complete). options.since: recover from
		 * this id (default: the last id seen on the channel, if any).
		 */
		subscribe: function (channel, options) {
			var self = this;
			var since = options && options.since != null
				? String(options.since) : null;
			return new Promise(function (resolve, reject) {
				if (since !== null && compareIds(since, "0") === null) {
					reject(WSPushError("bad_request",
						"WSPush: since must be a message id"));
					return;
				}
				if (typeof channel !== "string" || !channel) {
					reject(WSPushError("bad_request",
						"WSPush: subscribe needs a channel name"));
					return;
				}
				if (self._state === "closed") {
					reject(WSPushError("closed", "WSPush: client is closed"));
					return;
				}
				if (self._state !== "open") {
					/* Sent (and the promise settled) after the next welcome. */
					self._channels[channel] = true;
					var ref = ++self._ref;
					self._pending[ref] = { ref: ref, stale: true, timer: null,
						frame: { op: "subscribe", channel: channel },
						since: since, resolve: resolve, reject: reject };
					return;
				}
				var p = self._request(self._subscribeFrame(channel, since),
					resolve, function (err) {
						reject(err);
					}, true);
				if (p)
					self._channels[channel] = p.ref;
			});
		},

		/* Unsubscribes; resolves with the "unsubscribed" reply (or at once
		 * when not connected: there is nothing to undo on the server). */
		unsubscribe: function (channel) {
			var self = this;
			return new Promise(function (resolve, reject) {
				var wanted = Object.prototype.hasOwnProperty.call(self._channels,
					channel);
				delete self._channels[channel];
				/* Forget subscribe() calls still waiting for a connection. */
				var refs = Object.keys(self._pending);
				for (var i = 0; i < refs.length; i++) {
					var p = self._pending[refs[i]];
					if (p.stale && p.frame.op === "subscribe" &&
					    p.frame.channel === channel) {
						delete self._pending[refs[i]];
						p.reject(WSPushError("unsubscribed", "WSPush: " +
							"unsubscribed from " + channel + " before the " +
							"subscription was made", { channel: channel }));
					}
				}
				if (self._state !== "open") {
					resolve({ op: "unsubscribed", channel: channel,
						local: true, wasSubscribed: wanted });
					return;
				}
				self._request({ op: "unsubscribe", channel: channel },
					resolve, reject, true);
			});
		},

		/* ------------------------------------------------------------ */
		/* publish / send                                                */

		_dispatch: function (item) {
			var ackOk = this.options.ack === "ok";
			var p = this._request(item.frame, item.resolve, item.reject, ackOk);
			if (!p || ackOk)
				return;
			/* ack "sent": resolved now; a later error is an "error" event. */
			this._lateErrors[p.ref] = item.frame;
			var refs = Object.keys(this._lateErrors);
			if (refs.length > 1000)
				delete this._lateErrors[refs[0]];
			item.resolve({ op: "sent", ref: p.ref });
		},

		_enqueue: function (frame) {
			var self = this;
			return new Promise(function (resolve, reject) {
				var item = { frame: frame, resolve: resolve, reject: reject };
				if (self._state === "open") {
					self._dispatch(item);
					return;
				}
				if (self._state === "closed") {
					reject(WSPushError("closed", "WSPush: client is closed; " +
						describeOp(frame) + " not sent"));
					return;
				}
				if (!self.options.queueWhileDisconnected) {
					reject(WSPushError("not_connected", "WSPush: not " +
						"connected; " + describeOp(frame) + " not sent"));
					return;
				}
				if (self._outbox.length >= self.options.maxQueued) {
					reject(WSPushError("queue_full", "WSPush: " +
						self._outbox.length + " messages already wait for " +
						"the connection; " + describeOp(frame) + " not sent"));
					return;
				}
				self._outbox.push(item);
			});
		},

		/* Publishes to "user:<id>" or "channel:<name>" (if the server allows). */
		publish: function (to, data) {
			if (typeof to !== "string" || !to)
				return Promise.reject(WSPushError("bad_request",
					"WSPush: publish needs an address (user:<id> or " +
					"channel:<name>)"));
			return this._enqueue({ op: "publish", to: to,
				data: data === undefined ? null : data });
		},

		/* Sends to the backend (the <prefix>:inbound stream). */
		send: function (data) {
			return this._enqueue({ op: "send",
				data: data === undefined ? null : data });
		},

		/*
		 * Reads the stored history of an address (server [history] on):
		 * resolves with the reply {op: "history", to, messages: [{id, data,
		 * from?}, ...]} (oldest first). options.limit: how many (the
		 * server's default is 50, capped by its max_recover). The newest
		 * id becomes the address's last id, so a later reconnect recovers
		 * from there.
		 */
		history: function (to, options) {
			var self = this;
			var limit = options && options.limit;
			return new Promise(function (resolve, reject) {
				if (typeof to !== "string" || !to) {
					reject(WSPushError("bad_request", "WSPush: history needs " +
						"an address (user:<id>, channel:<name> or all)"));
					return;
				}
				if (limit !== undefined && !(limit >= 1 &&
				    Math.floor(limit) === limit)) {
					reject(WSPushError("bad_request",
						"WSPush: history limit must be a positive integer"));
					return;
				}
				if (self._state !== "open") {
					reject(WSPushError("not_connected", "WSPush: not connected"));
					return;
				}
				var frame = { op: "history", to: to };
				if (limit !== undefined)
					frame.limit = limit;
				self._request(frame, resolve, reject, true);
			});
		},

		/* Application-level ping; resolves with the pong. */
		ping: function () {
			var self = this;
			return new Promise(function (resolve, reject) {
				if (self._state !== "open") {
					reject(WSPushError("not_connected", "WSPush: not connected"));
					return;
				}
				self._request({ op: "ping" }, resolve, reject, true);
			});
		},

		/* ------------------------------------------------------------ */
		/* idle ping                                                     */

		_startPing: function () {
			this._stopPing();
			this._lastRx = this._now();
			this._schedulePing(this.options.pingIntervalMs);
		},

		_schedulePing: function (ms) {
			var self = this;
			if (!(this.options.pingIntervalMs > 0))
				return;
			this._pingTimer = this._setTimeout(function () {
				self._pingTimer = null;
				self._pingTick();
			}, ms);
		},

		_pingTick: function () {
			if (this._state !== "open" || !this._ws)
				return;
			var idle = this._now() - this._lastRx;
			var every = this.options.pingIntervalMs;
			if (idle < every) {
				this._schedulePing(every - idle);
				return;
			}
			var ws = this._ws;
			var self = this;
			this._pingRef = ++this._ref;
			this._rawSend({ op: "ping", ref: this._pingRef });
			if (this._pongTimer === null && this.options.pongTimeoutMs > 0) {
				this._pongTimer = this._setTimeout(function () {
					self._pongTimer = null;
					if (self._ws === ws)
						self._abort(ws, "ping timeout");
				}, this.options.pongTimeoutMs);
			}
			this._schedulePing(every);
		},

		_stopPing: function () {
			if (this._pingTimer !== null) {
				this._clearTimeout(this._pingTimer);
				this._pingTimer = null;
			}
			if (this._pongTimer !== null) {
				this._clearTimeout(this._pongTimer);
				this._pongTimer = null;
			}
			this._pingRef = null;
		}
	};

	return {
		VERSION: VERSION,
		DEFAULTS: DEFAULTS,
		Client: Client,
		WSPushError: WSPushError,
		backoffDelay: backoffDelay,
		compareIds: compareIds,
		/* WSPush.connect(url, { token } | { user } | token) -> Client */
		connect: function (url, options) {
			return new Client(url, options);
		}
	};
});
