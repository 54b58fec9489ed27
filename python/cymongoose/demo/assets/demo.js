// The demo page: each panel talks to the server that served it.
"use strict";

const $ = (id) => document.getElementById(id);

function badge(id, text, kind) {
  const el = $(id);
  el.textContent = text;
  el.className = "badge " + (kind || "");
}

function addLine(logId, who, text, cls) {
  const log = $(logId);
  const line = document.createElement("div");
  if (cls) line.className = cls;
  if (who) {
    const w = document.createElement("span");
    w.className = "who";
    w.textContent = who;
    line.appendChild(w);
  }
  line.appendChild(document.createTextNode(text));
  log.appendChild(line);
  log.scrollTop = log.scrollHeight;
}

function humanBytes(n) {
  const units = ["B", "KiB", "MiB", "GiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + " " + units[i];
}

function showHeaders(res, names) {
  const lines = ["HTTP " + res.status + " " + res.statusText];
  for (const name of names) {
    const v = res.headers.get(name);
    if (v !== null) lines.push(name + ": " + v);
  }
  return lines.join("\n");
}

// ------------------------------------------------------------- WebSocket chat
let myId = null;
function wsConnect() {
  const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws");
  ws.onopen = () => {
    badge("ws-state", "open", "ok");
    $("ws-ext").textContent = ws.extensions ? "Extensions: " + ws.extensions : "No extension negotiated.";
  };
  ws.onmessage = (ev) => {
    const m = JSON.parse(ev.data);
    if (m.type === "hello") {
      myId = m.id;
      addLine("ws-log", null, "You are guest " + m.id + "; " + m.peers + " peer(s) online.", "sys");
    } else if (m.type === "join" || m.type === "leave") {
      addLine("ws-log", null, "guest " + m.id + (m.type === "join" ? " joined" : " left"), "sys");
    } else if (m.type === "msg") {
      const me = m.from === myId;
      addLine("ws-log", me ? "you (echo)" : "guest " + m.from, m.text, me ? "me" : "");
    }
  };
  ws.onclose = () => { badge("ws-state", "closed, retrying", "bad"); setTimeout(wsConnect, 2000); };
  $("ws-form").onsubmit = (e) => {
    e.preventDefault();
    const text = $("ws-input").value;
    if (text && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ text }));
  };
}

// ---------------------------------------------------- SSE: clock and stats
let ticks = 0;

// Keeps the last few events as they looked on the wire.
function rawEvent(type, data) {
  const log = $("sse-log");
  addLine("sse-log", null, "event: " + type + " | data: " + data);
  while (log.childElementCount > 6) log.removeChild(log.firstChild);
}
function sseConnect() {
  const es = new EventSource("/sse");
  es.onopen = () => badge("sse-state", "streaming", "ok");
  es.onerror = () => badge("sse-state", "reconnecting", "warn");
  es.addEventListener("time", (ev) => {
    ticks++;
    rawEvent("time", ev.data);
    $("sse-clock").textContent = new Date(ev.data).toLocaleTimeString([], { hour12: false });
    $("sse-ticks").textContent = ticks;
  });
  es.addEventListener("stats", (ev) => {
    rawEvent("stats", ev.data);
    const s = JSON.parse(ev.data);
    badge("stats-state", "live", "ok");
    $("st-conns").textContent = s.connections;
    $("st-rps").textContent = s.requests_per_s;
    $("st-reqs").textContent = s.requests;
    $("st-in").textContent = humanBytes(s.bytes_in);
    $("st-out").textContent = humanBytes(s.bytes_out);
    $("st-ws").textContent = s.ws_peers;
  });
}

// ------------------------------------------------------------------ JSON API
$("api-form").onsubmit = async (e) => {
  e.preventDefault();
  const path = $("api-path").value;
  const body = $("api-body").value;
  const out = $("api-out");
  out.textContent = "POST " + path + "\n" + body + "\n\n…";
  try {
    const res = await fetch(path, { method: "POST", headers: { "Content-Type": "application/json" }, body });
    const text = await res.text();
    out.textContent = "POST " + path + "\n" + body + "\n\n" + showHeaders(res, ["content-type", "content-length"]) + "\n\n" + text;
  } catch (err) {
    out.textContent = "request failed: " + err;
  }
};

// -------------------------------------------------------------------- upload
$("upload-form").onsubmit = (e) => {
  e.preventDefault();
  const file = $("upload-file").files[0];
  const out = $("upload-out");
  if (!file) { out.textContent = "Choose a file first."; return; }
  const xhr = new XMLHttpRequest();
  xhr.open("POST", "/api/upload");
  xhr.setRequestHeader("X-Filename", encodeURIComponent(file.name));
  xhr.upload.onprogress = (ev) => {
    if (ev.lengthComputable) $("upload-progress").value = (100 * ev.loaded) / ev.total;
  };
  xhr.onload = () => {
    $("upload-progress").value = 100;
    out.textContent = "HTTP " + xhr.status + "\n" + xhr.responseText;
  };
  xhr.onerror = () => { out.textContent = "upload failed"; };
  out.textContent = "uploading " + file.name + " (" + humanBytes(file.size) + ")…";
  xhr.send(file);
};

// -------------------------------------------------------------- static files
const STATIC_HEADERS = ["content-type", "content-length", "content-range", "accept-ranges", "etag", "last-modified"];
let lastEtag = null;
$("static-range").onclick = async () => {
  const res = await fetch("/static/style.css", { headers: { Range: "bytes=0-63" }, cache: "no-store" });
  lastEtag = res.headers.get("etag");
  $("static-out").textContent = "GET /static/style.css\nRange: bytes=0-63\n\n" + showHeaders(res, STATIC_HEADERS) + "\n\n" + (await res.text());
};
$("static-etag").onclick = async () => {
  if (!lastEtag) {
    const first = await fetch("/static/style.css", { cache: "no-store" });
    lastEtag = first.headers.get("etag");
    await first.arrayBuffer();
  }
  const res = await fetch("/static/style.css", { headers: { "If-None-Match": lastEtag }, cache: "no-store" });
  $("static-out").textContent = "GET /static/style.css\nIf-None-Match: " + lastEtag + "\n\n" + showHeaders(res, STATIC_HEADERS);
};

// ---------------------------------------------------------------------- MQTT
function mqttStart(info) {
  if (!info.mqtt_url) {
    badge("mqtt-state", "not built", "warn");
    $("mqtt-note").textContent = info.mqtt_note;
    return;
  }
  $("mqtt-note").textContent = "Broker at " + info.mqtt_url + ", subscribed to demo/#.";
  const client = new MiniMqtt(info.mqtt_url, "demo-" + Math.random().toString(16).slice(2, 10));
  client.onconnect = () => {
    badge("mqtt-state", "connected", "ok");
    client.subscribe("demo/#");
    $("mqtt-send").disabled = false;
  };
  client.onmessage = (topic, text) => addLine("mqtt-log", topic, text);
  client.onclose = (why) => { badge("mqtt-state", why, "bad"); $("mqtt-send").disabled = true; };
  $("mqtt-form").onsubmit = (e) => {
    e.preventDefault();
    client.publish($("mqtt-topic").value, $("mqtt-msg").value);
  };
  client.open();
}

async function start() {
  wsConnect();
  sseConnect();
  const info = await (await fetch("/api/info")).json();
  $("version").textContent = "v" + info.version;
  mqttStart(info);
}
start();
