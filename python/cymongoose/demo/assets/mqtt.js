// A minimal MQTT 3.1.1 client over WebSocket (subprotocol "mqtt"), written for
// the demo: CONNECT, SUBSCRIBE and PUBLISH at QoS 0, PINGREQ keepalive.
// MQTT packets may span WebSocket messages, so received bytes are buffered
// and cut into packets by their fixed header (type byte + remaining length).
"use strict";

class MiniMqtt {
  constructor(url, clientId, { keepalive = 30 } = {}) {
    this.url = url;
    this.clientId = clientId;
    this.keepalive = keepalive;
    this.nextId = 1;
    this.pending = new Uint8Array(0);
    this.onconnect = () => {};
    this.onmessage = (_topic, _payload) => {};
    this.onclose = (_why) => {};
  }

  open() {
    this.ws = new WebSocket(this.url, "mqtt");
    this.ws.binaryType = "arraybuffer";
    this.ws.onopen = () => this.send(0x10, this.connectBody());
    this.ws.onmessage = (ev) => this.received(new Uint8Array(ev.data));
    this.ws.onclose = () => { clearInterval(this.pinger); this.onclose("connection closed"); };
    this.ws.onerror = () => {};
  }

  connectBody() {
    const flags = 0x02;                       // clean session, no will, no credentials
    return concat(str("MQTT"), [4, flags, this.keepalive >> 8, this.keepalive & 255], str(this.clientId));
  }

  subscribe(topic) {
    const id = this.packetId();
    this.send(0x82, concat([id >> 8, id & 255], str(topic), [0]));
  }

  publish(topic, text) {
    this.send(0x30, concat(str(topic), new TextEncoder().encode(text)));
  }

  send(typeAndFlags, body) {
    this.ws.send(concat([typeAndFlags], varint(body.length), body));
  }

  packetId() {
    const id = this.nextId;
    this.nextId = id === 65535 ? 1 : id + 1;
    return id;
  }

  received(bytes) {
    this.pending = concat(this.pending, bytes);
    for (;;) {
      const head = readVarint(this.pending, 1);
      if (!head) return;                      // the fixed header is incomplete
      const [len, start] = head;
      if (this.pending.length < start + len) return;
      this.packet(this.pending[0], this.pending.subarray(start, start + len));
      this.pending = this.pending.slice(start + len);
    }
  }

  packet(type, body) {
    switch (type >> 4) {
      case 2:                                 // CONNACK: byte 1 is the return code
        if (body[1] !== 0) { this.onclose("CONNACK refused, code " + body[1]); this.ws.close(); return; }
        this.pinger = setInterval(() => this.send(0xc0, new Uint8Array(0)), this.keepalive * 500);
        this.onconnect();
        break;
      case 3: {                               // PUBLISH
        const tlen = (body[0] << 8) | body[1];
        const topic = new TextDecoder().decode(body.subarray(2, 2 + tlen));
        const skip = (type >> 1) & 3 ? 2 : 0; // a packet id follows the topic when QoS > 0
        this.onmessage(topic, new TextDecoder().decode(body.subarray(2 + tlen + skip)));
        break;
      }
      default:                                // SUBACK, PINGRESP: nothing to do
        break;
    }
  }
}

function str(s) {
  const b = new TextEncoder().encode(s);
  return concat([b.length >> 8, b.length & 255], b);
}

function varint(n) {
  const out = [];
  do {
    let byte = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) byte |= 128;
    out.push(byte);
  } while (n > 0);
  return out;
}

// [value, offset after it] of the remaining length at pos, or null if incomplete.
function readVarint(buf, pos) {
  let value = 0, mult = 1;
  for (let i = 0; i < 4; i++) {
    if (pos + i >= buf.length) return null;
    value += (buf[pos + i] & 127) * mult;
    if (!(buf[pos + i] & 128)) return [value, pos + i + 1];
    mult *= 128;
  }
  throw new Error("malformed remaining length");
}

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}
