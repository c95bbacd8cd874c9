// The recovery storm's clients (driven by bench_history.py): N WebSocket
// connections that all follow one channel, are cut, miss M messages, and
// reconnect at once asking for what they missed.
//
//   node history_storm.js wspush PORT REDIS_PORT CHANNEL N M
//       wspush: ?user=s<i>, subscribe CHANNEL; the last id comes from one
//       message published with FCALL wspush_publish; after the cut M
//       messages are published with FCALL; the reconnect subscribes with
//       since = that id.
//   node history_storm.js sio PORT CONTROL_PORT ROOM N M
//       Socket.IO with connectionStateRecovery (raw engine.io v4 frames):
//       each socket keeps its pid and the last offset; the server
//       (sio_csr_server.js) emits on its CONTROL_PORT's command; the
//       reconnect sends 40{"pid":…,"offset":…} and the server replays.
//
// Protocol on stdin/stdout: prints "CUT" once every connection has the
// marker and has been cut and the M messages are published; waits for a
// "GO" line; reconnects all at once; prints one JSON line with the result
// (time until every connection had all M, loss, duplicates, order).
"use strict";

const net = require("net");
const readline = require("readline");
const WebSocket = require("ws");

const [mode, port, aux, topic, nStr, mStr] = process.argv.slice(2);
const N = Number(nStr);
const M = Number(mStr);
const HOST = "127.0.0.1";
// Source addresses 127.0.0.x: one loopback address has ~28k ephemeral
// ports; two rounds of N connections would run it dry.
const src = (i) => `127.0.${1 + ((i >> 8) % 200)}.${2 + (i % 250)}`;

function die(msg) {
  console.error(`history_storm: ${msg}`);
  process.exit(1);
}

let redis = null;
async function fcall(payload) {
  if (redis === null) {
    const { createClient } = require("redis");
    redis = createClient({ url: `redis://${HOST}:${aux}` });
    await redis.connect();
  }
  return redis.sendCommand(["FCALL", "wspush_publish", "1",
    `wspush:channel:${topic}`, payload]);
}

// One line to the sio server's control port; resolves on its answer.
function control(line) {
  return new Promise((ok, fail) => {
    const s = net.connect(Number(aux), HOST, () => s.write(line + "\n"));
    let buf = "";
    s.on("data", (d) => {
      buf += d;
      if (buf.includes("\n")) {
        s.end();
        ok(buf.trim());
      }
    });
    s.on("error", fail);
  });
}

class Conn {
  constructor(i) {
    this.i = i;
    this.last = null; // wspush: last id; sio: last offset
    this.pid = null;
    this.got = [];
    this.done = false;
  }

  open(recover) {
    const url = mode === "wspush"
      ? `ws://${HOST}:${port}/ws?user=s${this.i}`
      : `ws://${HOST}:${port}/socket.io/?EIO=4&transport=websocket&room=${topic}`;
    return new Promise((ok, fail) => {
      const ws = new WebSocket(url, { localAddress: src(this.i),
        perMessageDeflate: false });
      this.ws = ws;
      this.onReady = ok;
      ws.on("error", (e) => fail(e));
      ws.on("message", (d) => this.frame(d.toString(), recover));
    });
  }

  frame(t, recover) {
    if (mode === "wspush") {
      const f = JSON.parse(t);
      if (f.op === "welcome") {
        const sub = { op: "subscribe", channel: topic, ref: 1 };
        if (recover) sub.since = this.last;
        this.ws.send(JSON.stringify(sub));
      } else if (f.op === "subscribed") {
        if (recover && f.recovered !== true) this.notRecovered = true;
        this.onReady();
      } else if (f.op === "msg") {
        this.message(f.id, f.data);
      }
      return;
    }
    // engine.io v4: 0 open, 2 ping, 4x socket.io packets.
    if (t[0] === "0") {
      const hello = recover
        ? "40" + JSON.stringify({ pid: this.pid, offset: this.last })
        : "40";
      this.ws.send(hello);
    } else if (t === "2") {
      this.ws.send("3");
    } else if (t.startsWith("40")) {
      const o = JSON.parse(t.slice(2));
      if (recover && o.pid !== this.pid) this.notRecovered = true;
      this.pid = o.pid;
      this.onReady();
    } else if (t.startsWith("42")) {
      const a = JSON.parse(t.slice(2));
      this.message(a[a.length - 1], a[1]);
    }
  }

  message(id, data) {
    this.last = id;
    if (data && typeof data.n === "number" && data.n >= 0) {
      this.got.push(data.n);
      if (this.got.length >= M && !this.done) {
        this.done = true;
        this.doneAt = process.hrtime.bigint();
        storm.left--;
        if (storm.left === 0) storm.finish();
      }
    } else if (this.waitMarker) {
      const w = this.waitMarker;
      this.waitMarker = null;
      w();
    }
  }

  markerSeen() {
    return new Promise((ok) => { this.waitMarker = ok; });
  }

  cut() {
    return new Promise((ok) => {
      this.ws.once("close", ok);
      this.ws.terminate(); // a transport close: recoverable for Socket.IO
    });
  }
}

const storm = { left: N, finish: null, retries: 0, failed: 0 };

// A refused or reset connection attempt is retried after 100 ms, as a
// real client's reconnect would (a listen backlog overflows when
// thousands arrive at once); 50 tries, then it counts as failed.
async function reopen(c) {
  for (let k = 0; k < 50; k++) {
    try {
      await c.open(true);
      return;
    } catch (e) {
      c.failed = String(e);
      if (c.ws) c.ws.terminate();
      storm.retries++;
      await new Promise((ok) => setTimeout(ok, 100));
    }
  }
  storm.failed++;
}

async function inBatches(conns, fn, size = 500) {
  for (let k = 0; k < conns.length; k += size)
    await Promise.all(conns.slice(k, k + size).map(fn));
}

async function main() {
  const conns = Array.from({ length: N }, (_, i) => new Conn(i));
  await inBatches(conns, (c) => c.open(false));
  // The marker gives every connection its starting point.
  const seen = Promise.all(conns.map((c) => c.markerSeen()));
  if (mode === "wspush") await fcall(JSON.stringify({ marker: 1 }));
  else await control(`EMIT ${topic} 1 -1`);
  await seen;
  await inBatches(conns, (c) => c.cut());
  // Published while every connection is away.
  if (mode === "wspush") {
    for (let n = 0; n < M; n++)
      await fcall(JSON.stringify({ n, p: "x".repeat(80) }));
  } else {
    await control(`EMIT ${topic} ${M} 0`);
  }
  if (redis) await redis.quit();
  process.stdout.write("CUT\n");
  const rl = readline.createInterface({ input: process.stdin });
  await new Promise((ok) => rl.once("line", ok));
  const t0 = process.hrtime.bigint();
  const finished = new Promise((ok) => { storm.finish = ok; });
  // All at once: every open starts before any completes.
  const opens = conns.map((c) => reopen(c));
  await Promise.race([finished, new Promise((ok) => setTimeout(ok, 120000))]);
  await Promise.all(opens);
  const ms = (x) => Number(x - t0) / 1e6;
  let lost = 0, dup = 0, reorder = 0, notRecovered = 0;
  const failed = storm.failed;
  let lastMs = 0;
  for (const c of conns) {
    if (c.notRecovered) notRecovered++;
    const uniq = new Set(c.got);
    dup += c.got.length - uniq.size;
    lost += M - [...uniq].filter((n) => n < M).length;
    for (let k = 1; k < c.got.length; k++)
      if (c.got[k] < c.got[k - 1]) reorder++;
    if (c.doneAt) lastMs = Math.max(lastMs, ms(c.doneAt));
  }
  for (const c of conns) c.ws.terminate();
  rl.close();
  // Exit once written (the give-up timer would keep the loop alive).
  process.stdout.write(JSON.stringify({ conns: N, per_conn: M,
    recovered_msgs: conns.reduce((a, c) => a + c.got.length, 0),
    all_done_ms: storm.left === 0 ? lastMs : null, lost, dup, reorder,
    failed, retries: storm.retries, not_recovered: notRecovered }) + "\n", () => process.exit(0));
}

main().catch((e) => die(e && e.stack ? e.stack : String(e)));
