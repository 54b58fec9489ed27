// An aedes MQTT broker (3.1.1) with a WebSocket listener, a peer of the MQTT
// tests: node aedes_broker.mjs NODE_MODULES_DIR PORT [CERT_PEM KEY_PEM]
// Listens on ws://127.0.0.1:PORT/ (any path, subprotocol "mqtt"), or wss://
// with the certificate and key given, prints "ready" once listening and
// runs until killed.
import { createRequire } from 'node:module';
import { createServer } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const [modules, port, certPath, keyPath] = process.argv.slice(2);
const require = createRequire(join(modules, 'package.json'));
const { Aedes } = await import(pathToFileURL(require.resolve('aedes')).href);
const { WebSocketServer, createWebSocketStream } = require('ws');

const broker = await Aedes.createBroker();
const http = certPath
  ? createTlsServer({ cert: readFileSync(certPath), key: readFileSync(keyPath) })
  : createServer();
const wss = new WebSocketServer({
  server: http,
  // Answer with "mqtt" when the client offers it (RFC 6455 subprotocol).
  handleProtocols: (protocols) => (protocols.has('mqtt') ? 'mqtt' : false),
});
wss.on('connection', (socket, req) => broker.handle(createWebSocketStream(socket), req));
broker.on('clientError', (client, err) => console.error('client error', client && client.id, err.message));
http.listen(Number(port), '127.0.0.1', () => console.log('ready'));
