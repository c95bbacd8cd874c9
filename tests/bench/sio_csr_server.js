// The Socket.IO peer of the recovery storm (bench_history.py): one process
// with connection-state recovery, which Socket.IO offers with its
// in-memory adapter (the Redis adapter does not implement it), so a
// single process. Each socket joins the room named in its handshake query.
// A line "EMIT ROOM COUNT START" on the control port emits COUNT messages
// {"n":START..,"p":"xx…"} to ROOM and answers "OK".
//
//   node sio_csr_server.js PORT CONTROL_PORT
"use strict";

const http = require("http");
const net = require("net");
const { Server } = require("socket.io");

const port = Number(process.argv[2]);
const controlPort = Number(process.argv[3]);
const io = new Server({
  transports: ["websocket"],
  serveClient: false,
  perMessageDeflate: false,
  connectionStateRecovery: { maxDisconnectionDuration: 5 * 60 * 1000,
    skipMiddlewares: true },
});
io.on("connection", (socket) => {
  const room = socket.handshake.query.room;
  if (!socket.recovered && typeof room === "string" && room.length > 0)
    socket.join(room);
});
const srv = http.createServer();
io.attach(srv);
srv.listen(port, "127.0.0.1", () => {
  net.createServer((s) => {
    let buf = "";
    s.on("data", (d) => {
      buf += d;
      const nl = buf.indexOf("\n");
      if (nl < 0) return;
      const [cmd, room, count, start] = buf.slice(0, nl).split(" ");
      if (cmd === "EMIT") {
        const pad = "x".repeat(80);
        for (let k = 0; k < Number(count); k++)
          io.to(room).emit("msg", { n: Number(start) + k, p: pad });
      }
      s.end("OK\n");
    });
  }).listen(controlPort, "127.0.0.1", () => console.log(`READY ${port}`));
});
