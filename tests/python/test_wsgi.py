"""cymongoose.wsgi: WSGI apps on worker threads, checked by wsgiref.validate
(the standard library's WSGI conformance checker) and real HTTP clients."""
import concurrent.futures
import sys
import types
import http.client
import socket
import threading
import time
from wsgiref.validate import validator

import pytest
import requests

from cymongoose.wsgi import WSGIServer


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/hello":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"hello ", environ["QUERY_STRING"].encode()]
    if path == "/echo":
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        start_response("201 Created", [("Content-Type", environ.get("CONTENT_TYPE", "x/y"))])
        return [body]
    if path == "/stream":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return (("part%d;" % i).encode() for i in range(5))
    if path == "/env":
        start_response("200 OK", [("Content-Type", "text/plain")])
        keys = ["REQUEST_METHOD", "PATH_INFO", "QUERY_STRING", "SERVER_PROTOCOL", "HTTP_X_ONE",
                "wsgi.url_scheme"]
        return ["|".join(str(environ.get(k)) for k in keys).encode("latin-1")]
    if path == "/slow":
        time.sleep(0.3)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"slow"]
    if path == "/cookies":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Set-Cookie", "a=1"),
                                  ("Set-Cookie", "b=2")])
        return [b"two cookies"]
    if path == "/fail":
        raise RuntimeError("view failed")
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"no such page"]


@pytest.fixture
def server():
    errors = []
    srv = WSGIServer(validator(app), workers=4, error_handler=errors.append)
    port = srv.listen("http://127.0.0.1:0").local_addr[1]
    srv.errors = errors
    srv.base = "http://127.0.0.1:%d" % port
    srv.port = port
    t = threading.Thread(target=srv.run, kwargs={"poll_ms": 10})
    t.start()
    yield srv
    srv.close()
    t.join(10)


def test_requests_see_the_app(server):
    with requests.Session() as s:
        assert s.get(server.base + "/hello?x=1", timeout=10).text == "hello x=1"
        r = s.post(server.base + "/echo", data=b"\x00" * 70000,
                   headers={"Content-Type": "application/x-bin"}, timeout=10)
        assert (r.status_code, r.headers["content-type"], r.content) == \
            (201, "application/x-bin", b"\x00" * 70000)
        r = s.get(server.base + "/stream", timeout=10)
        assert r.headers["transfer-encoding"] == "chunked"
        assert r.text == "part0;part1;part2;part3;part4;"
        assert s.get(server.base + "/nope", timeout=10).status_code == 404
    assert server.errors == []


def test_environ(server):
    r = requests.get(server.base + "/env?a=%20b", headers={"X-One": "1"}, timeout=10)
    assert r.text == "GET|/env|a=%20b|HTTP/1.1|1|http"
    r = requests.get(server.base + "/caf%C3%A9", timeout=10)  # PATH_INFO is decoded latin-1
    assert r.status_code == 404


def test_a_failing_view_gives_500_and_reaches_the_error_handler(server):
    r = requests.get(server.base + "/fail", timeout=10)
    assert r.status_code == 500
    assert [str(e) for e in server.errors] == ["view failed"]


def test_slow_views_do_not_block_others(server):
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        futs = [pool.submit(requests.get, server.base + ("/slow" if i % 2 else "/hello?q"),
                            timeout=20) for i in range(16)]
        bodies = sorted(f.result().text for f in futs)
    assert bodies == ["hello q"] * 8 + ["slow"] * 8


def test_pipelined_responses_keep_request_order(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"
                  b"GET /hello?second HTTP/1.1\r\nHost: x\r\n\r\n"
                  b"GET /hello?third HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        got = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
    assert got.count(b"HTTP/1.1 200") == 3
    assert got.index(b"slow") < got.index(b"second") < got.index(b"third")


def test_http_client_keep_alive(server):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    for i in range(50):
        conn.request("GET", "/hello?%d" % i)
        assert conn.getresponse().read() == b"hello %d" % i
    conn.close()


def test_streaming_is_paced_by_a_slow_client():
    """A worker streaming 64 MiB to a client that does not read waits (bounded
    memory), and gives up after stream_timeout, closing the connection."""
    produced = []

    def big(environ, start_response):
        start_response("200 OK", [("Content-Type", "application/octet-stream")])

        def gen():
            for _ in range(1024):
                produced.append(1)
                yield b"x" * 65536
        return gen()

    errors = []
    srv = WSGIServer(big, workers=1, error_handler=errors.append, stream_timeout=0.5)
    port = srv.listen("http://127.0.0.1:0").local_addr[1]
    t = threading.Thread(target=srv.run, kwargs={"poll_ms": 10})
    t.start()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            deadline = time.monotonic() + 20
            while not errors and time.monotonic() < deadline:
                time.sleep(0.05)
            # The socket buffers and the window hold a few MiB, not 64.
            assert len(produced) < 256
            assert [type(e) for e in errors] == [TimeoutError]
            got = b""
            while True:  # what was sent, then the close: no final chunk
                chunk = s.recv(1 << 20)
                if not chunk:
                    break
                got += chunk
            assert not got.endswith(b"0\r\n\r\n")
    finally:
        srv.close()
        t.join(10)



def test_repeated_response_headers_are_kept(server):
    r = requests.get(server.base + "/cookies", timeout=10)
    assert r.text == "two cookies"
    assert r.raw.headers.getlist("Set-Cookie") == ["a=1", "b=2"]


def serve_app(the_app, **kw):
    """A WSGIServer for the_app on a free port, run on a thread; returns
    (server, port, stop())."""
    errors = []
    srv = WSGIServer(the_app, workers=2, error_handler=errors.append, **kw)
    srv.errors = errors
    port = srv.listen("http://127.0.0.1:0").local_addr[1]
    t = threading.Thread(target=srv.run, kwargs={"poll_ms": 10})
    t.start()

    def stop():
        srv.close()
        t.join(10)
    return srv, port, stop


def raw(port, data):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(data)
        got = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return got
            got += chunk


def test_environ_is_pep_3333():
    """The environ built in C: latin-1 strings of the wire bytes, repeated
    fields joined, the addresses, CONTENT_* without HTTP_ twins."""
    seen = []

    def dump(environ, start_response):
        seen.append(dict(environ))
        environ["wsgi.input"].read(int(environ["CONTENT_LENGTH"] or 0))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]
    srv, port, stop = serve_app(validator(dump))
    try:
        raw(port, b"PUT /a%20b/%C3%A9/caf%e9?x=%20y&z=%E9 HTTP/1.0\r\nHost: h:1\r\n"
                  b"X-Rep: 1\r\nx-rep: 2\r\nContent-Type: text/x\r\nContent-Length: 3\r\n"
                  b"X-Latin: \xe9t\xe9\r\n\r\nabc")
        raw(port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    finally:
        stop()
    e, g = seen
    assert e["REQUEST_METHOD"] == "PUT"
    assert e["PATH_INFO"] == "/a b/\xc3\xa9/caf\xe9"  # the decoded bytes as latin-1
    assert e["QUERY_STRING"] == "x=%20y&z=%E9"
    assert e["SERVER_PROTOCOL"] == "HTTP/1.0"
    assert e["HTTP_X_REP"] == "1,2"
    assert e["HTTP_X_LATIN"] == "\xe9t\xe9"
    assert e["CONTENT_TYPE"] == "text/x" and e["CONTENT_LENGTH"] == "3"
    assert "HTTP_CONTENT_TYPE" not in e and "HTTP_CONTENT_LENGTH" not in e
    assert e["HTTP_HOST"] == "h:1"
    assert e["SERVER_NAME"] == "127.0.0.1" and e["SERVER_PORT"] == str(port)
    assert e["REMOTE_ADDR"] == "127.0.0.1" and int(e["REMOTE_PORT"]) > 0
    assert e["SCRIPT_NAME"] == "" and e["wsgi.input_terminated"] is True
    assert e["wsgi.url_scheme"] == "http" and e["wsgi.version"] == (1, 0)
    assert g["CONTENT_LENGTH"] == "" and "CONTENT_TYPE" not in g and g["QUERY_STRING"] == ""
    assert g["wsgi.input"] is not e["wsgi.input"]
    assert srv.errors == []


def test_start_response_rules():
    """Hop-by-hop fields and Content-Length are the server's; a bad status
    is the app's error (500); a second call needs exc_info and replaces the
    head until it is sent, then re-raises; write() works."""
    def app2(environ, start_response):
        path = environ["PATH_INFO"]
        if path == "/hop":
            start_response("203 Fine", [("Connection", "close"), ("Transfer-Encoding", "gzip"),
                                        ("content-length", "999"), ("X-Kept", "yes")])
            return [b"hop"]
        if path == "/badstatus":
            start_response("OK 200", [])
            return [b"never"]
        if path == "/replace":  # exc_info before the head went out: the head is replaced
            start_response("200 OK", [("X-First", "1")])
            try:
                raise KeyError("early")
            except KeyError:
                start_response("503 Later", [("X-Second", "2")], sys.exc_info())
            return [b"second head"]
        if path == "/twice":  # a second call without exc_info is an error
            start_response("200 OK", [])
            start_response("200 OK", [])
            return [b"never"]
        if path == "/late-error":  # the head is out: start_response re-raises
            def gen():
                yield b"first"
                try:
                    raise KeyError("late")
                except KeyError:
                    start_response("500 Oops", [], sys.exc_info())
                yield b"never"
            start_response("200 OK", [])
            return gen()
        if path == "/write":
            write = start_response("200 OK", [("Content-Type", "text/plain")])
            write(b"written ")
            return [b"and returned"]
        start_response("404 Not Found", [])
        return [b""]

    srv, port, stop = serve_app(app2)
    try:
        with requests.Session() as s:
            r = s.get("http://127.0.0.1:%d/hop" % port, timeout=10)
            assert (r.status_code, r.text, r.headers["X-Kept"]) == (203, "hop", "yes")
            assert r.headers["Content-Length"] == "3"
            assert "gzip" not in r.headers.get("Transfer-Encoding", "")
            assert s.get("http://127.0.0.1:%d/badstatus" % port, timeout=10).status_code == 500
            r = s.get("http://127.0.0.1:%d/replace" % port, timeout=10)
            assert (r.status_code, r.text, r.headers["X-Second"]) == (503, "second head", "2")
            assert "X-First" not in r.headers
            assert s.get("http://127.0.0.1:%d/twice" % port, timeout=10).status_code == 500
            with pytest.raises((requests.exceptions.ChunkedEncodingError,  # cut, never ended
                                requests.exceptions.ConnectionError)):
                s.get("http://127.0.0.1:%d/late-error" % port, timeout=10)
            r = s.get("http://127.0.0.1:%d/write" % port, timeout=10)
            assert r.text == "written and returned"
    finally:
        stop()
    assert [type(e) for e in srv.errors] == [ValueError, RuntimeError, KeyError]


def test_django_wsgi_handler():
    django = pytest.importorskip("django")
    from django.conf import settings
    from django.http import HttpResponse, JsonResponse, StreamingHttpResponse
    from django.urls import clear_url_caches, path

    def hello(request):
        return HttpResponse("Hello from Django")

    def upload(request):
        return JsonResponse({"len": len(request.body), "method": request.method,
                             "q": request.GET.get("q"), "type": request.content_type})

    def stream(request):
        return StreamingHttpResponse(b"%d," % i for i in range(1000))

    urls = types.ModuleType("cm_test_django_wsgi_urls")
    urls.urlpatterns = [path("", hello), path("upload", upload), path("stream", stream)]
    sys.modules[urls.__name__] = urls
    if not settings.configured:
        settings.configure(ROOT_URLCONF=urls.__name__, ALLOWED_HOSTS=["*"], DEBUG=False,
                           SECRET_KEY="test", MIDDLEWARE=[], INSTALLED_APPS=[],
                           DATA_UPLOAD_MAX_MEMORY_SIZE=None)
    django.setup()
    old_urlconf = settings.ROOT_URLCONF
    settings.ROOT_URLCONF = urls.__name__  # another test may have configured Django first
    clear_url_caches()
    from django.core.wsgi import get_wsgi_application
    srv, port, stop = serve_app(get_wsgi_application())
    base = "http://127.0.0.1:%d" % port
    try:
        with requests.Session() as s:
            r = s.get(base + "/", timeout=10)
            assert (r.status_code, r.text) == (200, "Hello from Django")
            for size in (10, 300000):  # read whole, then streamed from the connection
                r = s.post(base + "/upload?q=%d" % size, data=b"y" * size, timeout=10,
                           headers={"Content-Type": "application/octet-stream"})
                assert r.json() == {"len": size, "method": "POST", "q": str(size),
                                    "type": "application/octet-stream"}
            r = s.get(base + "/stream", timeout=10)
            assert r.text == "".join("%d," % i for i in range(1000))
            assert s.get(base + "/missing", timeout=10).status_code == 404
    finally:
        stop()
        settings.ROOT_URLCONF = old_urlconf
        clear_url_caches()
    assert srv.errors == []


def test_requests_leave_no_memory_behind():
    """The C environ and start_response give back all they take: Python
    memory does not grow with the number of requests."""
    import tracemalloc

    def app3(environ, start_response):
        environ["wsgi.input"].read()
        if environ["PATH_INFO"] == "/bad":
            start_response("nope", [])
        start_response("200 OK", [("Content-Type", "text/plain"), ("Connection", "x")])
        try:
            raise KeyError("x")
        except KeyError:
            start_response("201 Created", [("X-A", environ["HTTP_X_REP"])], sys.exc_info())
        return [environ["PATH_INFO"].encode()]

    def run(conn, n):
        for i in range(n):
            path = "/bad" if i % 10 == 0 else "/p%%20%d" % (i % 7)
            conn.request("POST", path, body=b"b" * (i % 50),
                         headers={"X-Rep": "1", "x-rep": "2", "Content-Type": "a/b"})
            r = conn.getresponse()
            r.read()
            assert r.status == (500 if i % 10 == 0 else 201)

    tracemalloc.start()
    srv, port, stop = serve_app(app3)
    kinds = []
    srv.error_handler = lambda e: kinds.append(type(e))  # keeps no traceback (and environ)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        run(conn, 500)
        before = tracemalloc.get_traced_memory()[0]
        run(conn, 3000)
        grown = tracemalloc.get_traced_memory()[0] - before
        conn.close()
    finally:
        stop()
        tracemalloc.stop()
    assert grown < 100_000, grown  # 3000 requests: a leak of one string each would show
    assert kinds == [ValueError] * 350
