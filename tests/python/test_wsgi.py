"""cymongoose.wsgi: WSGI apps on worker threads, checked by wsgiref.validate
(the standard library's WSGI conformance checker) and real HTTP clients."""
import concurrent.futures
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
