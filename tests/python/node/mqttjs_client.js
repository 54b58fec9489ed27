// MQTT.js as a peer of the MQTT tests, driven by a JSON script:
//   node mqttjs_client.js NODE_MODULES_DIR URL SCRIPT_JSON
// SCRIPT_JSON: {"options": {...mqtt.connect options...},
//               "subscribe": [[topic, qos], ...],
//               "publish": [[topic, base64 payload, qos, retain], ...],
//               "expect": N}
// Prints one JSON line per event: {"ev": "connect"}, {"ev": "subscribed"},
// {"ev": "published"}, {"ev": "message", "topic", "payload" (base64), "qos",
// "retain"}, {"ev": "error", "message"}; subscribes, then publishes, then
// waits for N messages and ends with a DISCONNECT and {"ev": "done"}.
const path = require('node:path');
const [modules, url, scriptJson] = process.argv.slice(2);
const mqtt = require(require.resolve('mqtt', { paths: [path.join(modules, 'node_modules')] }));
const script = JSON.parse(scriptJson);
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');

const client = mqtt.connect(url, Object.assign({ reconnectPeriod: 0 }, script.options || {}));
let received = 0;
let ending = false;
const expect = script.expect || 0;

function finish() {
  ending = true;
  client.end(false, {}, () => {
    out({ ev: 'done' });
    process.exit(0);
  });
}

client.on('error', (err) => {
  if (ending) return;  // the socket closing under end()
  out({ ev: 'error', message: err.message });
  process.exit(1);
});
client.on('message', (topic, payload, packet) => {
  out({ ev: 'message', topic, payload: payload.toString('base64'), qos: packet.qos,
        retain: packet.retain, properties: packet.properties || {} });
  if (++received === expect) finish();
});
client.on('connect', async () => {
  out({ ev: 'connect' });
  for (const [topic, qos] of script.subscribe || []) {
    await client.subscribeAsync(topic, { qos });
  }
  if ((script.subscribe || []).length) out({ ev: 'subscribed' });
  if (script.wait_stdin) {  // publish once the test says "go" on stdin
    await new Promise((resolve) => process.stdin.once('data', resolve));
  }
  for (const [topic, b64, qos, retain] of script.publish || []) {
    await client.publishAsync(topic, Buffer.from(b64, 'base64'), { qos, retain: !!retain });
  }
  if ((script.publish || []).length) out({ ev: 'published' });
  if (received >= expect) finish();
});
