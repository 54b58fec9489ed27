"""Drop-in compatibility with the original cymongoose package: each point of
docs/compat.md exercised with the original's spelling of the calls (keyword
names, error wording, closed connections, URLs, TLS, SSE, WSGI, AsyncManager,
packaging), and the patterns of the original's guides run against real
sockets on 127.0.0.1."""
import asyncio
import http.client
import inspect
import io
import json
import os
import socket
import ssl
import subprocess
import sys
import threading

import pytest
import requests

import cymongoose as cm
from cymongoose import (
    MG_EV_ACCEPT, MG_EV_CLOSE, MG_EV_CONNECT, MG_EV_ERROR, MG_EV_HTTP_MSG, MG_EV_OPEN,
    AsyncManager, Manager, Rpc, TlsOpts,
)
from cymongoose.wsgi import WSGIServer
from core_helpers import EventLog, poll_until

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    """trustme certificates for localhost and 127.0.0.1; client.pem is the CA."""
    d = tmp_path_factory.mktemp("certs")
    subprocess.run(["/usr/bin/python3", "-m", "trustme", "-d", str(d), "-i", "localhost",
                    "127.0.0.1"], check=True, capture_output=True)
    return {"dir": d, "ca": (d / "client.pem").read_text(),
            "cert": (d / "server.pem").read_text(), "key": (d / "server.key").read_text()}


def http_get(port, path="/", extra=b""):
    """A raw HTTP/1.1 GET with Connection: close; returns the whole answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        s.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n%s\r\n" % (path.encode(), extra))
        chunks = []
        while True:
            d = s.recv(65536)
            if not d:
                return b"".join(chunks)
            chunks.append(d)


class LoopThread:
    """Polls a manager in a thread, so blocking clients can run in the test."""

    def __init__(self, mgr):
        self.mgr = mgr
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run)
        self.thread.start()

    def _run(self):
        while not self.stop.is_set():
            self.mgr.poll(10)

    def close(self):
        self.stop.set()
        self.thread.join(20)
        self.mgr.close()


def serve_in_thread(handler):
    mgr = Manager(handler)
    port = mgr.listen("http://127.0.0.1:0", http=True).local_addr[1]
    return LoopThread(mgr), port


# ---------------------------------------------------------------- signatures

# The original's parameter names (its Cython def signatures).
ORIGINAL_PARAMS = {
    "url_port": ["url"], "url_host": ["url"], "url_user": ["url"], "url_pass": ["url"],
    "url_uri": ["url"], "url_is_ssl": ["url"], "url_encode": ["data"],
    "md5": ["data"], "sha1": ["data"], "sha256": ["data"], "hmac_sha256": ["key", "data"],
    "base64_encode": ["data"], "base64_decode": ["data"], "crc32": ["data", "initial"],
    "log_set": ["level"], "log_get": [], "event_name": ["ev"], "millis": [],
    "random_bytes": ["length"], "random_str": ["length"], "match": ["s", "pattern"],
    "http_var": ["buf", "name"], "http_parse_multipart": ["body", "offset"],
    "json_get": ["data", "path"], "json_get_num": ["data", "path", "default"],
    "json_get_bool": ["data", "path", "default"], "json_get_long": ["data", "path", "default"],
    "json_get_str": ["data", "path"],
    "Connection.send": ["data"], "Connection.recv_data": ["length"],
    "Connection.send_data": ["length"], "Connection.error": ["message"],
    "Connection.http_basic_auth": ["username", "password"],
    "Connection.set_handler": ["handler"], "Connection.http_chunk": ["data"],
    "Connection.http_sse": ["event_type", "data"], "Connection.resolve": ["url"],
    "Connection.tls_init": ["opts"], "Connection.reply": ["status_code", "body", "headers"],
    "Connection.reply_json": ["data", "status_code", "headers"],
    "Connection.serve_dir": ["message", "root_dir", "extra_headers", "mime_types", "page404"],
    "Connection.serve_file": ["message", "path", "extra_headers", "mime_types"],
    "Connection.ws_upgrade": ["message", "extra_headers"], "Connection.ws_send": ["data", "op"],
    "Connection.close": [], "Connection.drain": [], "Connection.resolve_cancel": [],
    "Connection.sntp_request": [], "Connection.tls_free": [],
    "HttpMessage.header": ["name", "default"], "HttpMessage.query_var": ["name"],
    "HttpMessage.header_var": ["header_name", "var_name"], "HttpMessage.status": [],
    "HttpMessage.headers": [],
    "Manager.poll": ["timeout_ms"], "Manager.run": ["poll_ms"],
    "Manager.listen": ["url", "handler"], "Manager.connect": ["url", "handler"],
    "Manager.ws_connect": ["url", "handler"], "Manager.sntp_connect": ["url", "handler"],
    "Manager.mqtt_listen": ["url", "handler"],
    "Manager.mqtt_connect": ["url", "handler", "client_id", "username", "password",
                             "clean_session", "keepalive"],
    "Manager.timer_add": ["milliseconds", "callback"],
    "Manager.wakeup": ["connection_id", "data"], "Manager.close": [],
    "Rpc.add": ["method", "handler"], "Rpc.process": ["frame"],
    "RpcReq.ok": ["result_json"], "RpcReq.err": ["code", "message"],
    "Manager": ["handler", "enable_wakeup", "error_handler"],
    "TlsOpts": ["ca", "cert", "key", "name", "skip_verification"],
}


def resolve_name(dotted):
    obj = cm
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


@pytest.mark.parametrize("name", sorted(ORIGINAL_PARAMS))
def test_signature_has_the_original_parameter_names(name):
    sig = inspect.signature(resolve_name(name))
    params = [p for p in sig.parameters.values() if p.name != "self"]
    # The original's parameters come first, in order, and all take keywords.
    want = ORIGINAL_PARAMS[name]
    assert [p.name for p in params[:len(want)]] == want
    for p in params[:len(want)]:
        assert p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY), (name, p)


def public_callables():
    for name in sorted(cm._mongoose.__dict__):
        obj = getattr(cm._mongoose, name)
        if name.startswith("_"):
            continue
        if isinstance(obj, type):
            yield name, obj
            for attr, value in sorted(vars(obj).items()):
                if not attr.startswith("_") and callable(value):
                    yield name + "." + attr, getattr(obj, attr)
        elif callable(obj):
            yield name, obj


def test_every_function_and_method_has_a_signature_and_help_shows_it():
    missing = []
    for name, obj in public_callables():
        if name in ("Connection", "HttpMessage", "WsMessage", "Timer", "RpcReq", "MqttBroker"):
            continue  # made by the library, never instantiated
        try:
            inspect.signature(obj)
        except (ValueError, TypeError):
            missing.append(name)
    assert missing == []
    text = io.StringIO()
    sys_stdout, sys.stdout = sys.stdout, text
    try:
        help(cm.Connection.send)
        help(cm.url_port)
    finally:
        sys.stdout = sys_stdout
    assert "send(self, /, data)" in text.getvalue()
    assert "url_port(url)" in text.getvalue()


def test_module_functions_take_the_original_keywords():
    assert cm.url_port(url="http://a:81/") == 81
    assert cm.url_host(url="http://a:81/") == "a"
    assert cm.url_user(url="http://u:p@a/") == "u"
    assert cm.url_pass(url="http://u:p@a/") == "p"
    assert cm.url_uri(url="http://a/x?y") == "/x?y"
    assert cm.url_is_ssl(url="https://a/") is True
    assert cm.url_encode(data="a b") == "a%20b"
    assert cm.md5(data=b"x") == bytes.fromhex("9dd4e461268c8034f5c8564e155c67a6")
    assert len(cm.sha1(data=b"x")) == 20 and len(cm.sha256(data=b"x")) == 32
    assert cm.base64_decode(data=cm.base64_encode(data=b"hi")) == b"hi"
    assert len(cm.random_bytes(length=7)) == 7 and len(cm.random_str(length=5)) == 5
    assert cm.event_name(ev=MG_EV_HTTP_MSG) == "MG_EV_HTTP_MSG"
    level = cm.log_get()
    cm.log_set(level=cm.MG_LL_ERROR)
    assert cm.log_get() == cm.MG_LL_ERROR
    cm.log_set(level=level)
    rpc = Rpc()
    rpc.add(method="sum", handler=lambda req: req.ok(result_json="3"))
    assert json.loads(rpc.process(frame='{"id":1,"method":"sum"}'))["result"] == 3
    with pytest.raises(TypeError, match="unexpected keyword"):
        cm.md5(text=b"x")


def test_connection_and_message_methods_take_the_original_keywords():
    got = {}

    def handler(conn, ev, data):
        if ev == MG_EV_HTTP_MSG:
            got["header"] = data.header(name="X-Missing", default="dflt")
            got["query_var"] = data.query_var(name="a")
            got["header_var"] = data.header_var(header_name="Content-Type", var_name="charset")
            got["status"] = data.status()
            conn.set_handler(handler=handler)
            conn.reply(status_code=200, body=b"ok", headers={"X-A": "1"})
            got["send_data"] = conn.send_data(length=8)
            got["recv_data"] = conn.recv_data(length=3)
    with Manager(handler) as mgr:
        lst = mgr.listen(url="http://127.0.0.1:0", handler=None)
        port = lst.local_addr[1]
        fired = []
        t = mgr.timer_add(milliseconds=0, callback=lambda: fired.append(1))
        c = socket.create_connection(("127.0.0.1", port))
        c.sendall(b"GET /p?a=%20z HTTP/1.1\r\nHost: x\r\n"
                  b"Content-Type: text/plain; charset=utf-8\r\n\r\n")
        assert poll_until(mgr, lambda: "send_data" in got and fired)
        assert got == {"header": "dflt", "query_var": " z", "header_var": "utf-8", "status": 0,
                       "send_data": b"HTTP/1.1", "recv_data": b"GET"}
        assert not t.active
        c.close()

        # Client side: send(data=), http_basic_auth(username=, password=), error(message=).
        log = EventLog()
        cli = mgr.connect(url="tcp://127.0.0.1:%d" % port, handler=log)
        cli.send(data=b"GET / HTTP/1.1\r\n")
        cli.http_basic_auth(username="user", password="pass")
        assert cli.send_data().endswith(b"Authorization: Basic dXNlcjpwYXNz\r\n")
        cli.error(message="stop")
        assert log.data(MG_EV_ERROR) == ["stop"]


# ---------------------------------------------------------------- closed connections

def test_closed_connection_is_harmless_to_close_and_read_and_refuses_sending():
    log = EventLog()
    with Manager(log) as mgr:
        lst = mgr.listen("tcp://127.0.0.1:0")
        cli = mgr.connect("tcp://127.0.0.1:%d" % lst.local_addr[1])
        assert poll_until(mgr, lambda: MG_EV_CONNECT in log.of(cli))
        cli.userdata = {"k": 1}
        before = (cli.id, cli.is_client, cli.is_listening, cli.is_udp, cli.local_addr,
                  cli.remote_addr)
        cli.close()
        assert poll_until(mgr, lambda: MG_EV_CLOSE in log.of(cli))
        cli.close()   # the original: nothing happens
        cli.drain()
        assert cli.recv_data() == b"" and cli.send_data() == b""
        assert cli.recv_len == 0 and cli.send_len == 0
        assert (cli.id, cli.is_client, cli.is_listening, cli.is_udp, cli.local_addr,
                cli.remote_addr) == before
        assert cli.userdata == {"k": 1}
        for call in (lambda: cli.send(b"x"), lambda: cli.reply(200, b"x"),
                     lambda: cli.http_chunk(b"x"), lambda: cli.http_sse("a", "b"),
                     lambda: cli.ws_send("x")):
            with pytest.raises(RuntimeError, match="Connection has been closed"):
                call()


# ---------------------------------------------------------------- errors

def test_error_messages_keep_the_original_wording():
    with Manager() as mgr:
        busy = mgr.listen("tcp://127.0.0.1:0")
        url = "tcp://127.0.0.1:%d" % busy.local_addr[1]
        with pytest.raises(RuntimeError, match="^Failed to listen on %s: " % url):
            mgr.listen(url)
        errors = []

        def reenter():
            try:
                mgr.poll(0)
            except RuntimeError as e:
                errors.append(str(e))
        mgr.timer_add(0, reenter)
        assert poll_until(mgr, lambda: errors)
        assert "poll() is not reentrant" in errors[0]

    bad = []

    def inject(conn, ev, data):
        if ev == MG_EV_HTTP_MSG:
            for headers in ({"X-A": "b\r\nX-Injected: 1"}, {"X\nB": "1"}, [("X-A", "b\x00")]):
                try:
                    conn.reply(200, b"x", headers=headers)
                except ValueError as e:
                    bad.append(str(e))
            conn.reply(200, b"fine")
    loop, port = serve_in_thread(inject)
    try:
        assert http_get(port).endswith(b"fine")
    finally:
        loop.close()
    assert len(bad) == 3 and all("contain an illegal character" in m for m in bad)


def test_error_handler_that_raises_prints_both_tracebacks(capfd):
    def handler(conn, ev, data):
        if ev == MG_EV_OPEN:
            raise ValueError("from the handler")

    def error_handler(exc):
        raise KeyError("from the error handler")
    with Manager(handler, error_handler=error_handler) as mgr:
        mgr.listen("tcp://127.0.0.1:0")
        mgr.poll(0)
    err = capfd.readouterr().err
    assert "ValueError: from the handler" in err and "KeyError: 'from the error handler'" in err
    assert err.count("Traceback (most recent call last)") == 2


async def test_async_manager_before_async_with_is_not_started():
    def handler(conn, ev, data):
        if ev == MG_EV_HTTP_MSG:
            conn.reply(200, b"async")
    amgr = AsyncManager(handler, enable_wakeup=True)  # Manager's keyword, as users pass it
    for call in (lambda: amgr.listen("http://127.0.0.1:0"),
                 lambda: amgr.connect("tcp://127.0.0.1:1"),
                 lambda: amgr.timer_add(10, lambda: None),
                 lambda: amgr.wakeup(1, b"x"),
                 lambda: amgr.manager):
        with pytest.raises(RuntimeError, match="not started"):
            call()
    got = []
    async with amgr:
        assert amgr.manager.wakeup_id != 0
        lst = amgr.listen("http://127.0.0.1:0")
        reader, writer = await asyncio.open_connection("127.0.0.1", lst.local_addr[1])
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        got.append(await asyncio.wait_for(reader.read(), 20))
        writer.close()
    assert got[0].startswith(b"HTTP/1.1 200") and got[0].endswith(b"async")
    with pytest.raises(RuntimeError, match="not started"):
        amgr.manager


# ---------------------------------------------------------------- URLs

@pytest.mark.parametrize("url, words", [
    ("", "empty URL"),
    ("htp://127.0.0.1:8000", "unknown URL scheme 'htp'"),
    ("http://127.0.0.1:70000", "outside 0..65535"),
    ("http://127.0.0.1:", "empty port"),
])
def test_bad_listen_urls_raise_value_error_naming_the_problem(url, words):
    with Manager() as mgr:
        with pytest.raises(ValueError, match=words):
            mgr.listen(url)
        assert mgr.connections == ()


@pytest.mark.parametrize("url, words", [
    ("http://:8000", "no host"),
    ("htp://127.0.0.1:80", "unknown URL scheme"),
    ("tcp://127.0.0.1:99999", "outside 0..65535"),
    ("tcp://127.0.0.1", "no port"),
    ("", "empty URL"),
])
def test_bad_connect_urls_raise_value_error_naming_the_problem(url, words):
    with Manager() as mgr:
        with pytest.raises(ValueError, match=words):
            mgr.connect(url)
        with pytest.raises(ValueError, match=words):
            mgr.ws_connect(url)


# ---------------------------------------------------------------- replies

def test_reply_takes_the_original_c_style_header_string():
    def handler(conn, ev, data):
        if ev == MG_EV_HTTP_MSG:
            conn.reply(200, b"body", "X-A: b\r\nX-Other: c d\r\n")
    loop, port = serve_in_thread(handler)
    try:
        r = requests.get("http://127.0.0.1:%d/" % port)
    finally:
        loop.close()
    assert r.headers["X-A"] == "b" and r.headers["X-Other"] == "c d" and r.text == "body"


def test_status_is_the_original_for_requests_and_responses():
    seen = []

    def server(conn, ev, data):
        if ev == MG_EV_HTTP_MSG:
            seen.append(("request", data.status()))
            conn.reply(201, b"made")

    def client(conn, ev, data):
        if ev == MG_EV_CONNECT:
            conn.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        elif ev == MG_EV_HTTP_MSG:
            seen.append(("response", data.status(), data.body_text))
            conn.close()
    with Manager(server) as mgr:
        port = mgr.listen("http://127.0.0.1:0", http=True).local_addr[1]
        mgr.connect("http://127.0.0.1:%d" % port, client, http=True)
        assert poll_until(mgr, lambda: len(seen) == 2)
    assert seen == [("request", 0), ("response", 201, "made")]


# ---------------------------------------------------------------- guide patterns

def test_guide_sse_pattern_streams_the_events():
    """The original's HTTP guide: an empty event-stream reply, then
    http_sse() from a repeating timer to every client; a client that went
    away raises RuntimeError and is dropped."""
    sse_clients = []

    def handler(conn, ev, data):
        if ev == MG_EV_HTTP_MSG and data.uri == "/events":
            conn.reply(200, "", headers={"Content-Type": "text/event-stream",
                                         "Cache-Control": "no-cache"})
            sse_clients.append(conn)

    def broadcast_event(event_type, event_data):
        for client in sse_clients[:]:
            try:
                client.http_sse(event_type, event_data)
            except RuntimeError:
                sse_clients.remove(client)

    mgr = Manager(handler)
    port = mgr.listen("http://127.0.0.1:0", http=True).local_addr[1]
    timer = mgr.timer_add(20, lambda: broadcast_event("update", "tick"), repeat=True)
    loop = LoopThread(mgr)
    try:
        with requests.get("http://127.0.0.1:%d/events" % port, stream=True, timeout=20) as r:
            assert r.headers["Content-Type"] == "text/event-stream"
            lines = []
            for line in r.iter_lines():
                lines.append(line)
                if lines.count(b"data: tick") == 3:
                    break
        assert lines[:3] == [b"event: update", b"data: tick", b""]
    finally:
        timer.cancel()
        loop.close()


def test_guide_chunked_and_json_and_request_data():
    def handler(conn, ev, data):
        if ev != MG_EV_HTTP_MSG:
            return
        if data.uri == "/chunked":
            conn.reply(200, "", headers={"Transfer-Encoding": "chunked"})
            for i in range(5):
                conn.http_chunk(f"Chunk {i}\n")
            conn.http_chunk("")
        elif data.uri == "/api/users/123":
            body = {"id": data.uri.split("/")[-1], "q": data.query_var("name"),
                    "ct": data.header("Content-Type"), "n": len(data.headers()),
                    "body": data.body_text}
            conn.reply(200, json.dumps(body).encode(), headers={"Content-Type": "application/json"})
            conn.drain()
        else:
            conn.reply(404, b'{"error": "Not found"}', headers={"Content-Type": "application/json"})
            conn.drain()
    loop, port = serve_in_thread(handler)
    try:
        base = "http://127.0.0.1:%d" % port
        assert requests.get(base + "/chunked").text == "".join(f"Chunk {i}\n" for i in range(5))
        r = requests.post(base + "/api/users/123?name=foo", data="hello",
                          headers={"Content-Type": "text/plain"})
        assert r.json() == {"id": "123", "q": "foo", "ct": "text/plain", "n": r.json()["n"],
                            "body": "hello"}
        assert requests.get(base + "/nope").status_code == 404
    finally:
        loop.close()


def test_guide_https_server_with_tls_init_on_accept(certs):
    def handler(conn, ev, data):
        if ev == MG_EV_ACCEPT:
            conn.tls_init(TlsOpts(cert=certs["cert"].encode(), key=certs["key"].encode()))
        elif ev == MG_EV_HTTP_MSG:
            conn.reply(200, b"Secure Hello!")
            conn.drain()
    mgr = Manager(handler)
    port = mgr.listen("https://127.0.0.1:0", http=True).local_addr[1]
    loop = LoopThread(mgr)
    try:
        ca = os.path.join(str(certs["dir"]), "client.pem")
        assert requests.get("https://127.0.0.1:%d/" % port, verify=ca).text == "Secure Hello!"
    finally:
        loop.close()


# ---------------------------------------------------------------- TLS options

def test_bad_certificate_on_https_listener_warns_and_fails_each_handshake(certs):
    log = EventLog()
    with Manager(log) as mgr:
        lst = mgr.listen("https://127.0.0.1:0", http=True)
        with pytest.warns(RuntimeWarning, match="bad certificate PEM"):
            lst.tls_init(TlsOpts(cert=b"not a certificate", key=certs["key"]))  # no exception
        with pytest.warns(RuntimeWarning, match="does not match|key"):
            lst.tls_init(opts=TlsOpts(cert=certs["cert"], key=certs["ca"]))  # mismatched key
        assert not lst.is_closing and lst in mgr.connections
        port = lst.local_addr[1]
        results = []

        def attempt():
            ctx = ssl.create_default_context(cafile=os.path.join(str(certs["dir"]), "client.pem"))
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
                    with ctx.wrap_socket(s, server_hostname="localhost"):
                        results.append("handshake done")
            except (ssl.SSLError, OSError) as e:
                results.append(type(e).__name__)
        for _ in range(2):
            t = threading.Thread(target=attempt)
            t.start()
            assert poll_until(mgr, lambda: not t.is_alive())
            t.join()
        assert "handshake done" not in results and len(results) == 2
        errors = log.data(MG_EV_ERROR)
        assert len(errors) == 2 and all("TLS" in e for e in errors)
        assert not lst.is_closing  # the listener still listens


def test_bad_ca_on_a_client_warns_and_gives_an_error_event():
    log = EventLog()
    with Manager(log) as mgr:
        lst = mgr.listen("tcp://127.0.0.1:0")
        c = mgr.connect("tcp://127.0.0.1:%d" % lst.local_addr[1])
        with pytest.warns(RuntimeWarning, match="bad CA PEM"):
            c.tls_init(TlsOpts(ca="garbage"))
        assert poll_until(mgr, lambda: MG_EV_CLOSE in log.of(c))
        assert any("bad CA PEM" in e for e in log.data(MG_EV_ERROR))


# ---------------------------------------------------------------- WSGI

def test_wsgi_file_wrapper_sends_a_real_file_without_reading_it(tmp_path):
    path = tmp_path / "blob.bin"
    content = os.urandom(200000)
    path.write_bytes(content)
    reads = []

    class Tracked(io.FileIO):
        def read(self, *args):
            reads.append(args)
            return super().read(*args)

        def readinto(self, b):
            reads.append(len(b))
            return super().readinto(b)

    def app(environ, start_response):
        if environ["PATH_INFO"] == "/buffer":  # not a real file: iterated
            start_response("200 OK", [("Content-Type", "text/plain")])
            return environ["wsgi.file_wrapper"](io.BytesIO(b"from memory"), 4)
        f = Tracked(str(path), "rb")
        f.seek(100)
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return environ["wsgi.file_wrapper"](f, 8192)
    srv = WSGIServer(app, workers=2)
    port = srv.listen("http://127.0.0.1:0").local_addr[1]
    t = threading.Thread(target=srv.run, kwargs={"poll_ms": 10})
    t.start()
    try:
        r = requests.get("http://127.0.0.1:%d/file" % port)
        assert r.status_code == 200 and r.content == content[100:]
        assert r.headers["Content-Length"] == str(len(content) - 100)
        assert reads == []  # sent with sendfile, never read into Python
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
        conn.request("HEAD", "/file")
        head = conn.getresponse()
        assert head.status == 200 and head.read() == b""
        conn.close()
        assert requests.get("http://127.0.0.1:%d/buffer" % port).text == "from memory"
    finally:
        srv.close()
        t.join(20)


# ---------------------------------------------------------------- packaging

def test_pip_build_stops_at_once_naming_the_missing_debian_package(tmp_path):
    # A C compiler that cannot find ares.h, as on a machine without libc-ares-dev.
    cc = tmp_path / "cc"
    cc.write_text("#!/bin/sh\n"
                  "for a in \"$@\"; do case \"$a\" in *.c) grep -q ares.h \"$a\" && exit 1;; esac; done\n"
                  "exec cc \"$@\"\n")
    cc.chmod(0o755)
    env = dict(os.environ, CC=str(cc))
    r = subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--build-lib",
                        str(tmp_path / "lib"), "--build-temp", str(tmp_path / "tmp")],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode != 0
    lines = [ln for ln in r.stderr.splitlines() if "cymongoose" in ln]
    assert lines == ["cymongoose: missing C headers; on Debian/Ubuntu run: "
                     "sudo apt-get install libc-ares-dev"]
    assert "error:" not in r.stderr.lower().replace("cymongoose", "")  # no compiler output
    assert not (tmp_path / "tmp").exists()


def test_declared_python_versions_are_the_ones_the_c_api_needs():
    with open(os.path.join(ROOT, "pyproject.toml")) as f:
        text = f.read()
    assert 'requires-python = ">=3.11"' in text
    assert sys.version_info >= (3, 11)
    with open(os.path.join(ROOT, "setup.py")) as f:
        assert "-Werror" not in f.read().split("ext = Extension")[1]


def test_guide_tcp_and_udp_echo_patterns():
    """The original's network guide: a TCP (then UDP) server echoing what
    it reads, a client sending on CONNECT and closing on READ."""
    from cymongoose import MG_EV_READ
    for scheme in ("tcp", "udp"):
        received = []

        def server(conn, ev, data):
            if ev == MG_EV_READ:
                data = conn.recv_data()
                conn.send(data)
                conn.recv_consume(len(data))  # ours: consume what was handled

        def client(conn, ev, data):
            if ev == MG_EV_CONNECT:
                conn.send(b"Hello, Server!")
            elif ev == MG_EV_READ:
                received.append(conn.recv_data())
                conn.close()
        with Manager(server) as mgr:
            port = mgr.listen("%s://127.0.0.1:0" % scheme).local_addr[1]
            c = mgr.connect("%s://localhost:%d" % (scheme, port), client)
            assert poll_until(mgr, lambda: received)
            assert received == [b"Hello, Server!"], scheme
            assert poll_until(mgr, lambda: c not in mgr.connections)


async def test_adapters_print_both_tracebacks_when_error_handler_raises(capfd):
    def error_handler(exc):
        raise KeyError("from the error handler")

    def fails():
        raise ValueError("from the callable")
    async with AsyncManager(None, error_handler=error_handler) as amgr:
        amgr.schedule(fails)
        await asyncio.sleep(0.05)
    err = capfd.readouterr().err
    assert "ValueError: from the callable" in err and "KeyError: 'from the error handler'" in err
    assert err.count("Traceback (most recent call last)") == 2


def test_sse_after_a_complete_response_raises_instead_of_dropping_events():
    errors = []

    def handler(conn, ev, data):
        if ev == MG_EV_HTTP_MSG:
            conn.reply(200, b"whole")  # Content-Length: 5, complete
            for call in (lambda: conn.http_sse("update", "lost?"), lambda: conn.http_chunk("x")):
                try:
                    call()
                except RuntimeError as e:
                    errors.append(str(e))
    loop, port = serve_in_thread(handler)
    try:
        assert http_get(port).endswith(b"\r\n\r\nwhole")
    finally:
        loop.close()
    assert len(errors) == 2 and all("no chunked response is in progress" in e for e in errors)
