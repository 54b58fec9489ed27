"""The `make run` demo: one page whose panels all talk live to this process.

    python3 examples/python/demo_server.py [--port PORT] [--host HOST] [--mqtt-url ws://...]
    (or a bare PORT argument, or DEMO_PORT=PORT; 8000 by default)

Routes:
    /              the demo page (python/cymongoose/demo/index.html and assets/)
    /ws            WebSocket chat: every message goes to every open tab (permessage-deflate on)
    /sse           Server-Sent Events: "time" every second, and "stats" (connections, requests/s, bytes)
    /api/echo      POST a JSON document, get the same document back (400 for invalid JSON)
    /api/hash      POST anything, get its size, SHA-256, MD5 and CRC-32
    /api/upload    POST a file as the body, get its size and SHA-256
    /api/info      version, and where the MQTT-over-WebSocket broker is (when it is built)
    /hello         a plain text greeting (?name=... to change who is greeted)
    /stream        a chunked response written piece by piece
    /static/       files from examples/python/demo_static/static/ (Range, ETag)

Ctrl+C or SIGTERM stops it cleanly (Manager.run() handles both).
"""
import argparse
import json
import os
import sys
import time
import urllib.parse

import cymongoose as cm

HERE = os.path.dirname(os.path.abspath(__file__))
STATIC_ROOT = os.path.join(HERE, "demo_static")
PAGE_ROOT = os.path.join(os.path.dirname(os.path.abspath(cm.__file__)), "demo")
MAX_UPLOAD = 64 * 1024 * 1024
MAX_CHAT_TEXT = 1000

ROUTES = [
    ("/", "the demo page"),
    ("/ws", "WebSocket chat"),
    ("/sse", "Server-Sent Events: clock and stats"),
    ("/api/echo", "POST JSON, get it back"),
    ("/hello", "a plain text greeting"),
    ("/stream", "a chunked response"),
    ("/static/", "static files (Range, ETag)"),
]


class Stats:
    """What the stats panel shows; bytes are request and response bodies and WebSocket messages."""

    def __init__(self):
        self.requests = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self.last_requests = 0

    def snapshot(self, mgr, ws_peers):
        rate = self.requests - self.last_requests
        self.last_requests = self.requests
        conns = sum(1 for c in mgr.connections if not c.is_listening)
        return {"connections": conns, "requests": self.requests, "requests_per_s": rate,
                "bytes_in": self.bytes_in, "bytes_out": self.bytes_out, "ws_peers": ws_peers}


class Demo:
    def __init__(self, mqtt_info):
        self.stats = Stats()
        self.sse_clients = set()
        self.ws_clients = {}  # Connection -> guest number
        self.next_guest = 1
        self.mqtt_info = mqtt_info

    # ------------------------------------------------------------ replies
    def reply(self, conn, status, body, headers=None):
        body = body.encode() if isinstance(body, str) else body
        self.stats.bytes_out += len(body)
        conn.reply(status, body, headers)

    def reply_json(self, conn, doc, status=200):
        self.reply(conn, status, json.dumps(doc), {"Content-Type": "application/json"})

    # ------------------------------------------------------------- routes
    def echo_json(self, conn, msg):
        if msg.method != "POST":
            self.reply(conn, 405, "POST a JSON document here\n", {"Allow": "POST"})
            return
        try:
            doc = json.loads(msg.body_bytes)
        except ValueError as e:  # JSONDecodeError and UnicodeDecodeError
            self.reply_json(conn, {"error": "invalid JSON: %s" % e}, 400)
            return
        self.reply_json(conn, doc)

    def digest(self, conn, msg, extra):
        if msg.method != "POST":
            self.reply(conn, 405, "POST the data here\n", {"Allow": "POST"})
            return
        body = msg.body_bytes
        doc = dict(extra, bytes=len(body), sha256=cm.sha256(body).hex())
        if "name" not in extra:
            doc.update(md5=cm.md5(body).hex(), crc32="%08x" % cm.crc32(body))
        self.reply_json(conn, doc)

    def upload(self, conn, msg):
        name = urllib.parse.unquote(msg.header("X-Filename") or "")[:200]
        self.digest(conn, msg, {"name": name or "(unnamed)"})

    def info(self, conn):
        self.reply_json(conn, dict(self.mqtt_info, version=cm.__version__))

    def stream(self, conn):
        conn.reply(200, "", {"Transfer-Encoding": "chunked"})
        for i in range(1, 6):
            conn.http_chunk("line %d of 5\n" % i)
        conn.http_chunk("")  # the empty chunk ends the response

    def subscribe(self, conn):
        conn.reply(200, "", {"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                             "Transfer-Encoding": "chunked"})
        conn.http_sse("hello", "subscribed; the time and stats follow every second")
        self.sse_clients.add(conn)

    def static(self, conn, msg, root):
        if not hasattr(conn, "serve_dir"):
            self.reply(conn, 501, "serve_dir is not available in this build\n")
            return
        # serve_dir maps the whole request path below root, so /static/x is
        # demo_static/static/x and /assets/x is demo/assets/x; nothing else is served.
        conn.serve_dir(msg, root)

    # ----------------------------------------------------------- WebSocket
    def ws_broadcast(self, doc, skip=None):
        text = json.dumps(doc)
        for peer in list(self.ws_clients):
            if peer is skip:
                continue
            peer.ws_send(text, cm.WEBSOCKET_OP_TEXT)
            self.stats.bytes_out += len(text)

    def ws_open(self, conn):
        guest = self.next_guest
        self.next_guest += 1
        self.ws_clients[conn] = guest
        conn.ws_send(json.dumps({"type": "hello", "id": guest, "peers": len(self.ws_clients)}),
                     cm.WEBSOCKET_OP_TEXT)
        self.ws_broadcast({"type": "join", "id": guest}, skip=conn)

    def ws_message(self, conn, msg):
        text = msg.text
        self.stats.bytes_in += len(msg.data)
        try:
            doc = json.loads(text)
            text = str(doc["text"]) if isinstance(doc, dict) and "text" in doc else text
        except ValueError:
            pass  # plain text is welcome too
        self.ws_broadcast({"type": "msg", "from": self.ws_clients.get(conn), "text": text[:MAX_CHAT_TEXT]})

    # ------------------------------------------------------------- events
    def handler(self, conn, ev, data):
        if ev == cm.MG_EV_HTTP_MSG:
            self.stats.requests += 1
            self.stats.bytes_in += len(data.body_bytes)
            self.route(conn, data)
        elif ev == cm.MG_EV_WS_OPEN:
            self.ws_open(conn)
        elif ev == cm.MG_EV_WS_MSG:
            self.ws_message(conn, data)
        elif ev == cm.MG_EV_CLOSE:
            self.sse_clients.discard(conn)
            guest = self.ws_clients.pop(conn, None)
            if guest is not None:
                self.ws_broadcast({"type": "leave", "id": guest})

    def route(self, conn, msg):
        uri = msg.uri
        if uri == "/":
            conn.serve_file(msg, os.path.join(PAGE_ROOT, "index.html"))
        elif uri.startswith("/assets/"):
            self.static(conn, msg, PAGE_ROOT)
        elif uri == "/ws":
            conn.ws_upgrade(msg, compress=True)
        elif uri == "/sse":
            self.subscribe(conn)
        elif uri == "/api/echo":
            self.echo_json(conn, msg)
        elif uri == "/api/hash":
            self.digest(conn, msg, {})
        elif uri == "/api/upload":
            self.upload(conn, msg)
        elif uri == "/api/info":
            self.info(conn)
        elif uri == "/hello":
            self.reply(conn, 200, "Hello, %s!\n" % (msg.query_var("name") or "world"))
        elif uri == "/stream":
            self.stream(conn)
        elif uri == "/static" or uri.startswith("/static/"):
            self.static(conn, msg, STATIC_ROOT)
        else:
            self.reply(conn, 404, "Not found: %s\n" % uri)

    def tick(self, mgr):
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        stats = json.dumps(self.stats.snapshot(mgr, len(self.ws_clients)))
        for conn in list(self.sse_clients):
            conn.http_sse("time", now)
            conn.http_sse("stats", stats)


def start_mqtt_broker(mgr, host, port, external_url=None):
    """The built-in broker, MQTT over WebSocket on its own port (anonymous: a local demo),
    or the broker at external_url (--mqtt-url).  A build without Manager.mqtt_broker
    makes the page say the broker is not built."""
    if external_url:
        return {"mqtt_url": external_url, "mqtt_note": ""}
    if not hasattr(mgr, "mqtt_broker"):
        return {"mqtt_url": None,
                "mqtt_note": "The MQTT broker is not built yet: once Manager.mqtt_broker exists, "
                             "this panel publishes and subscribes through it."}
    url = "ws://%s:%d/mqtt" % (host, port)
    try:
        broker = mgr.mqtt_broker(url, allow_anonymous=True)
    except Exception as e:  # a busy port must not stop the rest of the demo
        return {"mqtt_url": None, "mqtt_note": "The MQTT broker could not start on %s: %s" % (url, e)}
    port = broker.listeners[0][1]  # the real port when 0 was asked for
    return {"mqtt_url": "ws://%s:%d/mqtt" % (host, port), "mqtt_note": ""}


def parse_args(argv):
    p = argparse.ArgumentParser(description="The cymongoose demo server.")
    p.add_argument("port_arg", nargs="?", type=int, metavar="PORT", help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, default=None,
                   help="HTTP port (default 8000, or $DEMO_PORT; 0 picks a free one)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--mqtt-port", type=int, default=None,
                   help="port of the MQTT-over-WebSocket broker (default: the HTTP port + 1)")
    p.add_argument("--mqtt-url", default=None,
                   help="use this MQTT-over-WebSocket broker (ws://HOST:PORT/PATH) instead of the built-in one")
    args = p.parse_args(argv)
    port = args.port if args.port is not None else args.port_arg
    args.port = port if port is not None else int(os.environ.get("DEMO_PORT", "8000"))
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    with cm.Manager() as mgr:
        try:
            listener = mgr.listen("http://%s:%d" % (args.host, args.port), http_max_body=MAX_UPLOAD)
        except RuntimeError as e:
            if "in use" in str(e):
                print("demo: port %d on %s is already in use; pick another: make run PORT=8080, "
                      "or --port 8080" % (args.port, args.host), file=sys.stderr)
            else:
                print("demo: cannot listen on %s:%d: %s" % (args.host, args.port, e), file=sys.stderr)
            return 1
        port = listener.local_addr[1]  # the real port when 0 was asked for
        mqtt_port = args.mqtt_port if args.mqtt_port is not None else (port + 1 if args.port else 0)
        demo = Demo(start_mqtt_broker(mgr, args.host, mqtt_port, args.mqtt_url))
        listener.set_handler(demo.handler)
        mgr.timer_add(1000, lambda: demo.tick(mgr), repeat=True)
        print("cymongoose demo on http://%s:%d/" % (args.host, port))
        for path, what in ROUTES:
            print("  http://%s:%d%-10s %s" % (args.host, port, path, what))
        print("Ctrl+C to stop.", flush=True)
        mgr.run()
    print("stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
