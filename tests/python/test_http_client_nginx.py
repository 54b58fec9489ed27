"""Our HTTP client (Manager.connect with http=True) against nginx: static files
small and large, a chunked (gzip) response, HEAD, 404, and a run of requests on
one keep-alive connection.  nginx runs in a scratch dir on a free port and is
stopped by its pid."""
import gzip
import os
import shutil
import signal
import socket
import subprocess
import time

import pytest

import cymongoose as cm
from core_helpers import poll_until

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
pytestmark = pytest.mark.skipif(NGINX is None,
                                reason="nginx is not installed (scripts/deps.sh installs nginx-light)")

BIG = 5 * 1024 * 1024

CONF = """
daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 64; }}
http {{
    log_format conn '$connection $connection_requests $request $status';
    access_log {d}/access.log conn;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    types {{ text/plain txt; text/html html; application/octet-stream bin; }}
    default_type application/octet-stream;
    keepalive_requests 1000;
    server {{
        listen 127.0.0.1:{port};
        root {d}/www;
        chunked_transfer_encoding on;
        gzip on;
        gzip_types text/plain;
        gzip_min_length 1;
        location = /hello {{ gzip off; default_type text/plain; return 200 "hello from nginx\\n"; }}
    }}
}}
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def nginx(tmp_path_factory):
    d = tmp_path_factory.mktemp("nginx")
    www = d / "www"
    www.mkdir()
    (www / "small.html").write_text("<p>small</p>\n")
    big = bytes((i * 7 + i // 251) & 0xFF for i in range(65536)) * (BIG // 65536)
    (www / "big.bin").write_bytes(big)
    (www / "text.txt").write_text("".join("line %d of the gzip test\n" % i for i in range(2000)))
    port = free_port()
    (d / "nginx.conf").write_text(CONF.format(d=d, port=port))
    proc = subprocess.Popen([NGINX, "-c", str(d / "nginx.conf"), "-p", str(d), "-e", str(d / "error.log")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail("nginx did not start: %s %s" % (proc.stderr.read(),
                                                            (d / "error.log").read_text()))
            time.sleep(0.05)
    yield {"port": port, "dir": d, "big": big}
    proc.send_signal(signal.SIGTERM)  # by pid: master_process off, so this is the server
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
    proc.stdout.close()
    proc.stderr.close()


class Fetch:
    """Sends requests one after another on one client connection, recording
    (status, headers dict with lowercase names, body) per response."""

    def __init__(self, mgr, port, requests):
        self.todo = list(requests)
        self.responses = []
        self.errors = []
        self.closed = False
        self.conn = mgr.connect("http://127.0.0.1:%d" % port, self.handler, http=True)

    def send_next(self, conn):
        method, path, extra = self.todo.pop(0)
        conn.send("%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s\r\n" % (method, path, extra))

    def handler(self, conn, ev, data):
        if ev == cm.MG_EV_CONNECT:
            self.send_next(conn)
        elif ev == cm.MG_EV_HTTP_MSG:
            self.responses.append((data.status(), {k.lower(): v for k, v in data.headers()},
                                   data.body_bytes))
            if self.todo:
                self.send_next(conn)
        elif ev == cm.MG_EV_ERROR:
            self.errors.append(data)
        elif ev == cm.MG_EV_CLOSE:
            self.closed = True

    def done(self):
        return not self.todo and len(self.responses) >= self.expected or self.closed or self.errors


def fetch(port, *requests):
    reqs = [(r, "") if isinstance(r, str) else r for r in requests]
    reqs = [(r[0].split()[0], r[0].split()[1], r[1]) for r in reqs]
    with cm.Manager() as mgr:
        f = Fetch(mgr, port, reqs)
        f.expected = len(reqs)
        assert poll_until(mgr, f.done)
        assert not f.errors, f.errors
        return f.responses


def test_small_static_file(nginx):
    [(status, headers, body)] = fetch(nginx["port"], "GET /small.html")
    assert status == 200 and body == b"<p>small</p>\n"
    assert headers["content-type"] == "text/html" and headers["content-length"] == "13"
    assert headers["server"].startswith("nginx")


def test_large_file_with_content_length(nginx):
    [(status, headers, body)] = fetch(nginx["port"], "GET /big.bin")
    assert status == 200 and headers["content-length"] == str(BIG)
    assert body == nginx["big"]


def test_chunked_gzip_response(nginx):
    [(status, headers, body)] = fetch(nginx["port"], ("GET /text.txt", "Accept-Encoding: gzip\r\n"))
    assert status == 200
    assert headers["transfer-encoding"] == "chunked" and "content-length" not in headers
    assert headers["content-encoding"] == "gzip"
    assert gzip.decompress(body) == (nginx["dir"] / "www" / "text.txt").read_bytes()


def test_head_has_no_body_and_the_connection_goes_on(nginx):
    responses = fetch(nginx["port"], "HEAD /big.bin", "GET /small.html", "HEAD /small.html",
                      "GET /hello")
    assert [r[0] for r in responses] == [200, 200, 200, 200]
    assert responses[0][1]["content-length"] == str(BIG) and responses[0][2] == b""
    assert responses[1][2] == b"<p>small</p>\n"
    assert responses[2][2] == b""
    assert responses[3][2] == b"hello from nginx\n"


def test_not_found(nginx):
    [(status, headers, body)] = fetch(nginx["port"], "GET /missing.html")
    assert status == 404 and b"404 Not Found" in body
    assert headers["content-type"] == "text/html"


def test_many_requests_on_one_keep_alive_connection(nginx):
    paths = ["GET /small.html", "GET /hello", "GET /missing", ("GET /text.txt", "Accept-Encoding: gzip\r\n"),
             "GET /big.bin"] * 4 + ["GET /hello"]
    responses = fetch(nginx["port"], *paths)
    assert [r[0] for r in responses] == [200, 200, 404, 200, 200] * 4 + [200]
    assert all(r[2] == nginx["big"] for r in responses[4::5][:4])
    # nginx's log says which connection served each request: all the same one.
    # It writes a request's line after sending the response: wait for the last.
    for _ in range(200):
        lines = (nginx["dir"] / "access.log").read_text().splitlines()
        if len(lines) >= len(paths) and lines[-1].split()[1] == str(len(paths)):
            break
        time.sleep(0.01)
    log = lines[-len(paths):]
    assert len({line.split()[0] for line in log}) == 1
    assert [int(line.split()[1]) for line in log] == list(range(1, len(paths) + 1))


def test_pipelined_requests_including_head(nginx):
    """All requests written at once: responses come back in order, the HEAD one
    without a body (the client tracks raw request lines)."""
    got = []

    def handler(conn, ev, data):
        if ev == cm.MG_EV_CONNECT:
            conn.send(b"GET /hello HTTP/1.1\r\nHost: a\r\n\r\n"
                      b"HEAD /big.bin HTTP/1.1\r\nHost: a\r\n\r\n"
                      b"GET /small.html HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        elif ev == cm.MG_EV_HTTP_MSG:
            got.append((data.status(), data.body_bytes))

    with cm.Manager() as mgr:
        mgr.connect("http://127.0.0.1:%d" % nginx["port"], handler, http=True)
        assert poll_until(mgr, lambda: len(got) == 3)
    assert got == [(200, b"hello from nginx\n"), (200, b""), (200, b"<p>small</p>\n")]
