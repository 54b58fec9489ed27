"""HTTP server and client over loopback, with requests, http.client and raw sockets as peers."""
import concurrent.futures
import http.client
import json
import socket

import pytest
import requests

import cymongoose as cm
from core_helpers import poll_until
from http_helpers import HttpServer


def app(conn, ev, data):
    if ev != cm.MG_EV_HTTP_MSG:
        return
    uri = data.uri
    if uri == "/hello":
        conn.reply(200, "hello " + (data.query_var("name") or "nobody"), {"X-Test": "yes"})
    elif uri == "/echo":
        conn.reply(200, data.body_bytes, {"Content-Type": "application/octet-stream"})
    elif uri == "/json":
        conn.reply_json({"method": data.method, "len": len(data.body_bytes)}, 201)
    elif uri == "/headers":
        conn.reply_json({k.lower(): v for k, v in data.headers()})
    elif uri == "/inject":
        try:
            conn.reply(200, "x", {"X": "a\r\nSet-Cookie: evil=1"})
        except ValueError:
            conn.reply(500, "refused")
    elif uri == "/stream":
        conn.reply(200, "", {"Transfer-Encoding": "chunked"})
        for i in range(3):
            conn.http_chunk("part%d;" % i)
        conn.http_chunk(b"")
    elif uri == "/sse":
        conn.reply(200, "", {"Content-Type": "text/event-stream", "Transfer-Encoding": "chunked"})
        conn.http_sse("tick", "one\ntwo")
        conn.http_chunk("")
    else:
        conn.reply(404, "no such page")


def Server(handler=app):
    return HttpServer(handler)


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


def test_get_with_requests(server):
    r = server.run(requests.get, server.base + "/hello?name=J%C3%B6rg", timeout=10)
    assert r.status_code == 200
    assert r.content.decode() == "hello Jörg"  # text/plain without charset: requests guesses latin-1
    assert r.headers["X-Test"] == "yes"
    assert r.headers["Content-Type"] == "text/plain"
    assert r.headers["Content-Length"] == str(len("hello Jörg".encode()))
    r = server.run(requests.get, server.base + "/missing", timeout=10)
    assert r.status_code == 404 and r.reason == "Not Found"


def test_query_var_decoding_and_case(server):
    # query_var is http_var's form decoding (names decoded, '+' a space, a bad
    # escape kept) with the name matched in any case, as the original's was.
    for query, expected in [("NAME=a+b%21", "a b!"), ("n%61me=x", "x"), ("name=%zz%4", "%zz%4"),
                            ("Name=1&name=2", "1")]:
        r = server.run(requests.get, server.base + "/hello?" + query, timeout=10)
        assert r.content.decode() == "hello " + expected, query


def test_keep_alive_session(server):
    def many():
        with requests.Session() as s:
            return [s.post(server.base + "/echo", data=b"x" * i, timeout=10).content for i in range(20)]

    bodies = server.run(many)
    assert bodies == [b"x" * i for i in range(20)]
    # one client connection served all of them
    assert len(server.mgr.connections) <= 2


def test_json_and_headers(server):
    r = server.run(requests.put, server.base + "/json", data="abc", timeout=10)
    assert r.status_code == 201
    assert r.headers["Content-Type"] == "application/json"
    assert r.json() == {"method": "PUT", "len": 3}
    r = server.run(requests.get, server.base + "/headers", headers={"X-Custom": "v1"}, timeout=10)
    assert r.json()["x-custom"] == "v1"


def test_big_and_chunked_uploads(server):
    big = bytes(range(256)) * 8192  # 2 MiB, over the default receive limit
    r = server.run(requests.post, server.base + "/echo", data=big, timeout=30)
    assert r.content == big

    def gen():
        for i in range(100):
            yield b"%04d" % i

    r = server.run(requests.post, server.base + "/echo", data=gen(), timeout=10)
    assert r.content == b"".join(b"%04d" % i for i in range(100))


def test_chunked_and_sse_responses(server):
    r = server.run(requests.get, server.base + "/stream", timeout=10)
    assert r.headers["Transfer-Encoding"] == "chunked"
    assert r.text == "part0;part1;part2;"
    r = server.run(requests.get, server.base + "/sse", timeout=10)
    assert r.text == "event: tick\ndata: one\ndata: two\n\n"


def test_header_injection_is_refused(server):
    r = server.run(requests.get, server.base + "/inject", timeout=10)
    assert r.status_code == 500
    assert "evil" not in r.headers.get("Set-Cookie", "")


def test_head_then_get_on_one_connection(server):
    def head():
        c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        c.request("HEAD", "/hello")
        resp = c.getresponse()
        body = resp.read()
        c.request("GET", "/hello")
        resp2 = c.getresponse()
        return resp.status, resp.getheader("Content-Length"), body, resp2.read()

    status, length, body, after = server.run(head)
    assert status == 200 and length == "12" and body == b"" and after == b"hello nobody"


def raw(server, payload):
    """Sends payload on a raw socket, returns everything until the server closes."""
    s = socket.create_connection(("127.0.0.1", server.port))
    s.sendall(payload)
    s.settimeout(0.005)
    got = b""

    def step():
        nonlocal got
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            return False
        got += chunk
        return not chunk

    assert poll_until(server.mgr, step)
    s.close()
    return got


@pytest.mark.parametrize("payload,status", [
    (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n folded\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1, 2\r\n\r\n", 400),
    (b"GET / HTTP/3.0\r\nHost: x\r\n\r\n", 505),
    (b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 20000 + b"\r\n\r\n", 431),
    (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999999\r\n\r\n", 413),
])
def test_malformed_requests_get_errors(server, payload, status):
    got = raw(server, payload)
    assert got.startswith(b"HTTP/1.1 %d " % status)
    assert b"Connection: close\r\n" in got


def test_http10_closes_after_the_reply(server):
    got = raw(server, b"GET /hello HTTP/1.0\r\n\r\n")
    assert got.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"Connection: close\r\n" in got and got.endswith(b"hello nobody")


def test_pipelined_requests(server):
    got = raw(server, b"GET /hello?name=a HTTP/1.1\r\nHost: x\r\n\r\n"
                      b"GET /hello?name=b HTTP/1.1\r\nHost: x\r\n\r\n"
                      b"GET /hello?name=c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert got.count(b"HTTP/1.1 200 OK") == 3
    assert got.index(b"hello a") < got.index(b"hello b") < got.index(b"hello c")


def test_message_view_and_events(server):
    seen = []

    def handler(conn, ev, data):
        if ev == cm.MG_EV_HTTP_HDRS:
            seen.append(("hdrs", data.method, data.uri, data.body_bytes))
        elif ev == cm.MG_EV_HTTP_MSG:
            seen.append(("msg", data.method, data.uri, data.query, data.body_bytes,
                         data.header("content-type"), data.header_var("content-type", "charset")))
            conn.reply(200, "ok")

    s = Server(handler)
    try:
        r = s.run(requests.post, s.base + "/p?a=1", data="body",
                  headers={"Content-Type": "text/plain; charset=utf-8"}, timeout=10)
        assert r.text == "ok"
        assert seen[0][0] == "hdrs" and seen[0][1:3] == ("POST", "/p")
        assert seen[1] == ("msg", "POST", "/p", "a=1", b"body", "text/plain; charset=utf-8", "utf-8")
    finally:
        s.close()


def test_http_client_connection(server):
    got = []

    def client(conn, ev, data):
        if ev == cm.MG_EV_CONNECT:
            conn.send(b"GET /hello?name=me HTTP/1.1\r\nHost: x\r\n")
            conn.http_basic_auth("user", "pass")
            conn.send(b"\r\n")
        elif ev == cm.MG_EV_HTTP_MSG:
            got.append((data.status(), data.body_text, data.header("X-Test")))

    c = server.mgr.connect(server.base, client)
    assert poll_until(server.mgr, lambda: got)
    assert got == [(200, "hello me", "yes")]
    c.close()


def test_basic_auth_header_reaches_the_server(server):
    auth = []

    def handler(conn, ev, data):
        if ev == cm.MG_EV_HTTP_MSG:
            auth.append(data.header("Authorization"))
            conn.reply(204)

    s = Server(handler)
    try:
        done = []

        def client(conn, ev, data):
            if ev == cm.MG_EV_CONNECT:
                conn.send(b"GET / HTTP/1.1\r\nHost: x\r\n")
                conn.http_basic_auth("aladdin", "opensesame")
                conn.send(b"\r\n")
            elif ev == cm.MG_EV_HTTP_MSG:
                done.append(data.status())

        s.mgr.connect(s.base, client)
        assert poll_until(s.mgr, lambda: done)
        assert done == [204]
        assert auth == ["Basic YWxhZGRpbjpvcGVuc2VzYW1l"]
    finally:
        s.close()


def test_reply_argument_errors(server):
    errors = []

    def handler(conn, ev, data):
        if ev != cm.MG_EV_HTTP_MSG:
            return
        for bad in ({"X Y": "v"}, {"X": "a\nb"}, {"X": "a\x00"}, {1: "v"}):
            try:
                conn.reply(200, "x", bad)
            except (ValueError, TypeError) as e:
                errors.append(type(e).__name__)
        try:
            conn.reply(42)
        except ValueError:
            errors.append("status")
        conn.reply(200, json.dumps(errors))

    s = Server(handler)
    try:
        r = s.run(requests.get, s.base + "/", timeout=10)
        assert r.json() == ["ValueError", "ValueError", "ValueError", "TypeError", "status"]
    finally:
        s.close()


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    """trustme certificates for 127.0.0.1; client.pem is the CA."""
    import subprocess
    d = tmp_path_factory.mktemp("certs")
    subprocess.run(["/usr/bin/python3", "-m", "trustme", "-d", str(d), "-i", "127.0.0.1"],
                   check=True, capture_output=True)
    return {"ca": (d / "client.pem").read_text(), "ca_path": str(d / "client.pem"),
            "cert": (d / "server.pem").read_text(), "key": (d / "server.key").read_text()}


def test_https_server_and_client(certs):
    with cm.Manager(app) as mgr:
        lst = mgr.listen("https://127.0.0.1:0")
        lst.tls_init(cm.TlsOpts(cert=certs["cert"], key=certs["key"]))
        base = "https://127.0.0.1:%d" % lst.local_addr[1]
        pool = concurrent.futures.ThreadPoolExecutor(1)
        try:
            def get():
                with requests.Session() as s:
                    a = s.get(base + "/hello?name=tls", verify=certs["ca_path"], timeout=10)
                    b = s.post(base + "/echo", data=b"z" * 100000, verify=certs["ca_path"], timeout=10)
                    return a.content, b.content
            fut = pool.submit(get)
            assert poll_until(mgr, fut.done)
            assert fut.result() == (b"hello tls", b"z" * 100000)
            bad = pool.submit(lambda: raw_tls(lst.local_addr[1], certs["ca_path"]))
            assert poll_until(mgr, bad.done)
            assert bad.result().startswith(b"HTTP/1.1 400 ")
        finally:
            pool.shutdown()

        got = []

        def client(conn, ev, data):
            if ev == cm.MG_EV_CONNECT:
                conn.tls_init(cm.TlsOpts(ca=certs["ca"]))
            elif ev == cm.MG_EV_TLS_HS:
                conn.send(b"GET /hello?name=us HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            elif ev == cm.MG_EV_HTTP_MSG:
                got.append((data.status(), data.body_bytes))

        mgr.connect(base, client)
        assert poll_until(mgr, lambda: got)
        assert got == [(200, b"hello us")]


def raw_tls(port, ca_path):
    """A malformed request over TLS; returns what comes back before the close."""
    import ssl
    ctx = ssl.create_default_context(cafile=ca_path)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        with ctx.wrap_socket(s, server_hostname="127.0.0.1") as t:
            t.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n")
            out = b""
            while True:
                try:
                    chunk = t.recv(65536)
                except (ssl.SSLError, OSError):
                    break
                if not chunk:
                    break
                out += chunk
            return out


def test_deferred_replies_keep_pipelined_order_and_framing():
    """A reply sent later (from a timer) answers its own request: the next
    pipelined request (a HEAD asking to close) waits until it is complete."""
    answered = []

    def deferred(conn, ev, data):
        if ev == cm.MG_EV_HTTP_MSG:
            uri = data.uri
            mgr.timer_add(5, lambda: (conn.reply(200, "body of " + uri), answered.append(uri)))

    with cm.Manager(deferred) as mgr:
        port = mgr.listen("http://127.0.0.1:0").local_addr[1]
        pool = concurrent.futures.ThreadPoolExecutor(1)

        def client():
            with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                s.sendall(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
                          b"HEAD /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                got = b""
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        return got
                    got += chunk

        fut = pool.submit(client)
        assert poll_until(mgr, fut.done)
        pool.shutdown()
    got = fut.result()
    first, second = got.split(b"HTTP/1.1 200 OK\r\n")[1:]
    assert first.endswith(b"\r\n\r\nbody of /a") and b"Connection: close" not in first
    assert b"Connection: close" in second and second.endswith(b"\r\n\r\n")
    assert answered == ["/a", "/b"]
