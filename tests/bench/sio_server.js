// The Socket.IO peer of the benchmark: one process of a cluster that shares
// rooms through @socket.io/redis-adapter. Each socket joins the room named in
// its handshake query (?room=...). Messages come from Redis, published by
// wsb_pub in the adapter's own format (as @socket.io/redis-emitter does).
//
//   node sio_server.js PORT REDIS_PORT
"use strict";

const http = require("http");
const { Server } = require("socket.io");
const { createAdapter } = require("@socket.io/redis-adapter");
const { createClient } = require("redis");

async function main() {
  const port = Number(process.argv[2]);
  const redisPort = Number(process.argv[3]);
  const pub = createClient({ url: `redis://127.0.0.1:${redisPort}` });
  const sub = pub.duplicate();
  pub.on("error", (e) => console.error("redis pub:", e.message));
  sub.on("error", (e) => console.error("redis sub:", e.message));
  await Promise.all([pub.connect(), sub.connect()]);

  const io = new Server({
    transports: ["websocket"],
    serveClient: false,
    perMessageDeflate: false,
    adapter: createAdapter(pub, sub),
  });
  io.on("connection", (socket) => {
    const room = socket.handshake.query.room;
    if (typeof room === "string" && room.length > 0) socket.join(room);
  });
  const srv = http.createServer();
  io.attach(srv);
  await new Promise((ok) => srv.listen(port, "127.0.0.1", ok));
  // The adapter's PSUBSCRIBE is sent at construction; a PING round trip on
  // the same connection orders us after its confirmation.
  await sub.ping();
  console.log(`READY ${port}`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
