"""The `make run` demo: an HTTP server on the cymongoose package.

    python3 examples/python/demo_server.py [PORT]      (or DEMO_PORT=PORT)

Serves http://127.0.0.1:8000 by default, with:

    /            this list of routes, as an HTML page
    /hello       a plain text greeting (?name=... to change who is greeted)
    /api/echo    POST a JSON document, get the same document back (400 for invalid JSON)
    /stream      a chunked response written piece by piece
    /sse         Server-Sent Events: the time, every second
    /static/     files from examples/python/demo_static/static/ (serve_dir)

Ctrl+C or SIGTERM stops it cleanly (Manager.run() handles both).
"""
import html
import json
import os
import sys
import time

import cymongoose as cm

HOST = "127.0.0.1"
STATIC_ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "demo_static")

ROUTES = [
    ("/hello", "a plain text greeting"),
    ("/api/echo", "POST JSON, get it back"),
    ("/stream", "a chunked response"),
    ("/sse", "Server-Sent Events clock"),
    ("/static/", "static files (serve_dir)"),
]

# Connections subscribed to the SSE clock; a connection leaves on CLOSE.
sse_clients = set()


def index_page():
    items = "\n".join('<li><a href="%s">%s</a>: %s</li>' % (path, path, html.escape(what))
                      for path, what in ROUTES)
    return ("<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>cymongoose demo</title>"
            "</head>\n<body><h1>cymongoose demo</h1>\n<ul>\n%s\n</ul>\n"
            "<p>Try: <code>curl -d '{\"a\": 1}' http://%s/api/echo</code></p>\n"
            "</body></html>\n" % (items, html.escape("%s:%d" % (HOST, PORT))))


def echo_json(conn, msg):
    if msg.method != "POST":
        conn.reply(405, "POST a JSON document here\n", {"Allow": "POST"})
        return
    try:
        doc = json.loads(msg.body_bytes)
    except ValueError as e:  # JSONDecodeError and UnicodeDecodeError
        conn.reply_json({"error": "invalid JSON: %s" % e}, 400)
        return
    conn.reply_json(doc)


def stream(conn):
    conn.reply(200, "", {"Transfer-Encoding": "chunked"})
    for i in range(1, 6):
        conn.http_chunk("line %d of 5\n" % i)
    conn.http_chunk("")  # the empty chunk ends the response


def subscribe(conn):
    conn.reply(200, "", {"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                         "Transfer-Encoding": "chunked"})
    conn.http_sse("hello", "subscribed; the time follows every second")
    sse_clients.add(conn)


def static(conn, msg):
    if not hasattr(conn, "serve_dir"):
        conn.reply(501, "serve_dir is not available in this build\n")
        return
    # serve_dir maps the whole request path below root_dir, so /static/x is
    # demo_static/static/x; nothing outside demo_static is ever served.
    conn.serve_dir(msg, STATIC_ROOT)


def handler(conn, ev, data):
    if ev == cm.MG_EV_HTTP_MSG:
        uri = data.uri
        if uri == "/":
            conn.reply(200, index_page(), {"Content-Type": "text/html; charset=utf-8"})
        elif uri == "/hello":
            conn.reply(200, "Hello, %s!\n" % (data.query_var("name") or "world"))
        elif uri == "/api/echo":
            echo_json(conn, data)
        elif uri == "/stream":
            stream(conn)
        elif uri == "/sse":
            subscribe(conn)
        elif uri == "/static" or uri.startswith("/static/"):
            static(conn, data)
        else:
            conn.reply(404, "Not found: %s\n" % uri)
    elif ev == cm.MG_EV_CLOSE:
        sse_clients.discard(conn)


def clock_tick():
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    for conn in list(sse_clients):
        conn.http_sse("time", now)


def port_from_args():
    if len(sys.argv) > 1:
        return int(sys.argv[1])
    return int(os.environ.get("DEMO_PORT", "8000"))


PORT = port_from_args()


def main():
    global PORT
    with cm.Manager(handler) as mgr:
        listener = mgr.listen("http://%s:%d" % (HOST, PORT))
        PORT = listener.local_addr[1]  # the real port when 0 was asked for
        mgr.timer_add(1000, clock_tick, repeat=True)
        print("cymongoose demo on http://%s:%d/" % (HOST, PORT))
        for path, what in ROUTES:
            print("  http://%s:%d%-10s %s" % (HOST, PORT, path, what))
        print("Ctrl+C to stop.", flush=True)
        mgr.run()
    print("stopped", flush=True)


if __name__ == "__main__":
    main()
