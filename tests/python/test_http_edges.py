"""Sharp edges of the HTTP API: the decoded path for access checks, hidden
files, request-target forms, SSE line ends, truncated responses to the
client.  Peers: requests, http.client, curl and raw sockets (for what the
libraries refuse to send)."""
import concurrent.futures
import http.client
import os
import shutil
import socket
import subprocess
import threading

import pytest
import requests

import cymongoose as cm
from core_helpers import poll_until


class Server:
    """An HTTP listener with handler; blocking clients run in a thread while
    the test thread polls."""

    def __init__(self, handler):
        self.mgr = cm.Manager(handler)
        self.listener = self.mgr.listen("http://127.0.0.1:0")
        self.port = self.listener.local_addr[1]
        self.base = "http://127.0.0.1:%d" % self.port
        self.pool = concurrent.futures.ThreadPoolExecutor(1)

    def run(self, fn, *args, **kwargs):
        fut = self.pool.submit(fn, *args, **kwargs)
        assert poll_until(self.mgr, fut.done, timeout=30)
        return fut.result()

    def raw(self, payload):
        """Sends payload as is, returns everything until the server closes."""
        def go():
            with socket.create_connection(("127.0.0.1", self.port), timeout=20) as s:
                s.sendall(payload)
                out = b""
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        return out
                    out += chunk
        return self.run(go)

    def close(self):
        self.pool.shutdown()
        self.mgr.close()


def status_of(resp):
    return int(resp.split(b" ", 2)[1])


@pytest.fixture
def site(tmp_path):
    root = tmp_path / "root"
    (root / "private").mkdir(parents=True)
    (root / "public").mkdir()
    (root / "private" / "key.txt").write_text("PRIVATE KEY")
    (root / "public" / "hello.txt").write_text("hello")
    (root / "public" / "sp ace.txt").write_text("spaced")
    (root / ".env").write_text("SECRET=1")
    (root / ".git").mkdir()
    (root / ".git" / "config").write_text("[core] SECRET")
    return root


def guarded_server(root, allow_hidden=False):
    """The guard the docs recommend: access checks on path, never on uri."""
    seen = []

    def handler(conn, ev, data):
        if ev != cm.MG_EV_HTTP_MSG:
            return
        seen.append((data.uri, data.path, data.target, data.query))
        if data.path.startswith("/private/") or data.path == "/private":
            conn.reply(403, "guarded")
        else:
            conn.serve_dir(data, str(root), allow_hidden=allow_hidden)

    s = Server(handler)
    s.seen = seen
    return s


@pytest.mark.parametrize("target", [
    b"/private/key.txt", b"/%70rivate/key.txt", b"//private/key.txt", b"/./private/key.txt",
    b"/public/../private/key.txt", b"/public/%2e%2e/private/key.txt", b"/public%2f..%2fprivate/key.txt",
    b"/%2Fprivate/key.txt", b"/private%2fkey.txt", b"/public/./../private/./key.txt",
])
def test_path_guard_cannot_be_bypassed(site, target):
    s = guarded_server(site)
    try:
        out = s.raw(b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert b"PRIVATE KEY" not in out
        assert status_of(out) in (403, 404), out[:200]
        uri, path, raw_target, _ = s.seen[-1]
        assert path == "/private/key.txt"
        assert raw_target == target.decode()
    finally:
        s.close()


def test_path_is_decoded_and_normalised(site):
    s = guarded_server(site)
    try:
        r = s.run(requests.get, s.base + "/public/./hello.txt?x=1", timeout=20)
        assert r.text == "hello"
        # the handler gets both forms: uri as sent, path decoded
        r = s.run(requests.get, s.base + "/public//sp%20ace.txt", timeout=20)
        assert r.text == "spaced"
        assert s.seen[-1][:2] == ("/public//sp%20ace.txt", "/public/sp ace.txt")
        out = s.raw(b"GET /a%zz HTTP/1.1\r\nHost: x\r\n\r\n")  # no path to check: refused
        assert status_of(out) == 400
        out = s.raw(b"GET /a%00b HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status_of(out) == 400
    finally:
        s.close()


@pytest.mark.parametrize("target", ["/.env", "/.git/config", "/%2eenv", "/public/../.env", "/.git/"])
def test_hidden_files_are_not_served(site, target):
    s = guarded_server(site)
    try:
        out = s.raw(b"GET " + target.encode() + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert b"SECRET" not in out
        assert status_of(out) in (403, 404)
        r = s.run(requests.get, s.base + "/.env", timeout=20)
        assert r.status_code == 404
    finally:
        s.close()


def test_hidden_files_when_allowed(site):
    s = guarded_server(site, allow_hidden=True)
    try:
        assert s.run(requests.get, s.base + "/.env", timeout=20).text == "SECRET=1"
    finally:
        s.close()


def test_file_with_trailing_slash_is_404(site):
    s = guarded_server(site)
    try:
        assert s.run(requests.get, s.base + "/public/hello.txt", timeout=20).status_code == 200
        assert s.run(requests.get, s.base + "/public/hello.txt/", timeout=20).status_code == 404
        if shutil.which("curl"):
            env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
            rc = s.run(subprocess.run, ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--path-as-is",
                                        s.base + "/public/hello.txt/."], capture_output=True, timeout=20, env=env)
            assert rc.stdout == b"404"
    finally:
        s.close()


# ------------------------------------------------------- request-target forms

def target_app(conn, ev, data):
    if ev != cm.MG_EV_HTTP_MSG:
        return
    target_app.seen.append((data.method, data.uri, data.query, data.target))
    if data.method == "CONNECT" and data.uri == "tunnel.test:443":
        conn.reply(200, "")  # a tunnel: no Content-Length, no body
    elif data.method != "CONNECT":
        conn.reply(200, "route " + data.uri)


@pytest.fixture
def targets():
    target_app.seen = []
    s = Server(target_app)
    yield s
    s.close()


@pytest.mark.parametrize("line", [
    b"GET * HTTP/1.1", b"POST * HTTP/1.1", b"GET example.com:80 HTTP/1.1", b"OPTIONS example.com:80 HTTP/1.1",
    b"CONNECT / HTTP/1.1", b"CONNECT * HTTP/1.1", b"GET /a#frag HTTP/1.1", b"GET /a?b#c HTTP/1.1",
    b"GET foo HTTP/1.1", b"GET http:///x HTTP/1.1",
])
def test_target_form_must_fit_the_method(targets, line):
    out = targets.raw(line + b"\r\nHost: x\r\n\r\n")
    assert status_of(out) == 400, out[:200]
    assert target_app.seen == []


def test_asterisk_form_with_options(targets):
    out = targets.raw(b"OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status_of(out) == 200
    assert target_app.seen == [("OPTIONS", "*", "", "*")]


def test_absolute_form_routes_like_origin_form(targets):
    # requests talking to a proxy sends the absolute form
    r = targets.run(requests.get, "http://x.test/abs?q=1", proxies={"http": targets.base}, timeout=20)
    assert r.status_code == 200 and r.text == "route /abs"
    assert target_app.seen[-1] == ("GET", "/abs", "q=1", "http://x.test/abs?q=1")


def test_connect_without_a_handler_is_501(targets):
    def go():
        c = http.client.HTTPConnection("127.0.0.1", targets.port, timeout=20)
        c.request("CONNECT", "elsewhere.test:443")
        r = c.getresponse()
        return r.status, r.read()
    status, body = targets.run(go)
    assert status == 501
    assert target_app.seen[-1][:2] == ("CONNECT", "elsewhere.test:443")


def test_connect_2xx_has_no_content_length(targets):
    def go():
        with socket.create_connection(("127.0.0.1", targets.port), timeout=20) as s:
            s.sendall(b"CONNECT tunnel.test:443 HTTP/1.1\r\nHost: tunnel.test:443\r\n\r\n")
            out = b""
            while b"\r\n\r\n" not in out:
                chunk = s.recv(4096)
                if not chunk:
                    break
                out += chunk
            return out
    out = targets.run(go)
    assert out.startswith(b"HTTP/1.1 200 ")
    assert b"content-length" not in out.lower()
    assert out.endswith(b"\r\n\r\n")  # nothing after the head


# ------------------------------------------------------------ Server-Sent Events

def sse_app(conn, ev, data):
    if ev != cm.MG_EV_HTTP_MSG:
        return
    conn.reply(200, "", {"Content-Type": "text/event-stream", "Transfer-Encoding": "chunked"})
    conn.http_sse("tick", "a\rid: 666\rretry: 1\r\nevent: evil\nb\r")
    conn.http_chunk("")


def test_sse_data_cannot_inject_fields():
    s = Server(sse_app)
    try:
        r = s.run(requests.get, s.base + "/sse", timeout=20)
        body = r.text
        # an EventSource splits lines at CR, LF and CRLF: each is a data: line
        lines = body.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        assert lines == ["event: tick", "data: a", "data: id: 666", "data: retry: 1", "data: event: evil",
                         "data: b", "data: ", "", ""]
        assert "\r" not in body
    finally:
        s.close()


def test_sse_event_type_with_line_end_is_refused():
    errors = []

    def app(conn, ev, data):
        if ev != cm.MG_EV_HTTP_MSG:
            return
        conn.reply(200, "", {"Content-Type": "text/event-stream", "Transfer-Encoding": "chunked"})
        for bad in ("a\rb", "a\nb", "a\r\nid: 1"):
            try:
                conn.http_sse(bad, "x")
            except ValueError as e:
                errors.append(str(e))
        conn.http_chunk("")

    s = Server(app)
    try:
        r = s.run(requests.get, s.base + "/", timeout=20)
        assert r.text == "" and len(errors) == 3
    finally:
        s.close()


# ------------------------------------------------------ truncated responses

class OneShotPeer:
    """A raw TCP server that answers one connection with fixed bytes, then
    closes it."""

    def __init__(self, payload):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.url = "http://127.0.0.1:%d" % self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self.serve, args=(payload,), daemon=True)
        self.thread.start()

    def serve(self, payload):
        conn, _ = self.sock.accept()
        with conn:
            conn.settimeout(20)
            req = b""
            while b"\r\n\r\n" not in req:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                req += chunk
            conn.sendall(payload)

    def close(self):
        self.thread.join(20)
        self.sock.close()


def fetch(payload):
    """Events an HTTP client connection sees for a response of payload."""
    peer = OneShotPeer(payload)
    events = []

    def client(conn, ev, data):
        if ev == cm.MG_EV_CONNECT:
            conn.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        elif ev == cm.MG_EV_HTTP_MSG:
            events.append(("msg", data.body_bytes))
        elif ev == cm.MG_EV_ERROR:
            events.append(("error", data))
        elif ev == cm.MG_EV_CLOSE:
            events.append(("close", None))

    mgr = cm.Manager()
    try:
        mgr.connect(peer.url, client)
        assert poll_until(mgr, lambda: events and events[-1][0] == "close", timeout=20)
    finally:
        mgr.close()
        peer.close()
    return events


@pytest.mark.parametrize("payload", [
    b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this",
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Len",
    b"HTTP/1.1 200 OK\r\n",
])
def test_truncated_response_is_an_error(payload):
    events = fetch(payload)
    kinds = [k for k, _ in events]
    assert kinds == ["error", "close"], events
    assert "truncated" in events[0][1]


def test_close_delimited_response_is_complete():
    events = fetch(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it")
    assert events == [("msg", b"all of it"), ("close", None)]


def test_complete_response_then_close_is_no_error():
    events = fetch(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    assert events == [("msg", b"ok"), ("close", None)]
