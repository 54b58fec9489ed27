// An MQTT broker with a WebSocket listener for tests: npm's aedes (installed by
// scripts/npm-peers.sh) behind Debian's node-ws, on ws://127.0.0.1:PORT/mqtt.
// Prints "listening PORT" once ready; stops on SIGTERM.
"use strict";
const http = require("http");
const { WebSocketServer, createWebSocketStream } = require("ws");
const aedes = require("aedes")();

const server = http.createServer();
const wss = new WebSocketServer({ server, path: "/mqtt", handleProtocols: (protocols) => protocols.has("mqtt") ? "mqtt" : false });
wss.on("connection", (ws) => aedes.handle(createWebSocketStream(ws)));
server.listen(Number(process.argv[2] || 0), "127.0.0.1", () => {
  console.log("listening " + server.address().port);
});
process.on("SIGTERM", () => { aedes.close(); server.close(); process.exit(0); });
