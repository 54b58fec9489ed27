"""HTTP at scale against real clients: long keep-alive runs, many concurrent
clients, pipelining, 100 MB up and down in bounded memory, curl, and the
malformed requests of RFC 9112 over raw sockets.  No timing assertions."""
import concurrent.futures
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import zlib

import pytest

import cymongoose as cm
from peers import measured_env
from http_helpers import HttpServer
from test_http import Server, raw

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
SERVER = os.path.join(HERE, "http_scale_server.py")
UPLOAD_SERVER = os.path.join(ROOT, "build", "examples", "http_upload")
MB = 1024 * 1024


class Proc:
    """A server subprocess that prints "... port N" first; stopped by pid."""

    def __init__(self, argv, env=None):
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=env)
        line = self.proc.stdout.readline()
        if "port" not in line:
            self.proc.kill()
            raise RuntimeError("server did not start: %r %s" % (line, self.proc.stderr.read()))
        self.port = int(line.split()[-1])

    def peak_rss(self):
        """VmHWM: the most resident memory the process ever had, in bytes."""
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        raise AssertionError("no VmHWM")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc.stdout.close()
        self.proc.stderr.close()
        return self.proc.returncode


def py_server(*args):
    env = measured_env(PYTHONPATH=os.path.join(ROOT, "python"))
    return Proc([sys.executable, SERVER] + [str(a) for a in args], env=env)


@pytest.fixture(scope="module")
def srv():
    p = py_server()
    yield p
    assert p.stop() == 0


def read_response(f):
    """Reads one Content-Length response from a socket file: (status, body)."""
    status = int(f.readline().split()[1])
    length = 0
    while True:
        line = f.readline()
        if line in (b"\r\n", b""):
            break
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return status, f.read(length)


# ------------------------------------------------------------------ keep-alive

def test_10000_requests_on_one_connection_http_client(srv):
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
    conn.connect()
    sock = conn.sock
    for _ in range(10000):
        conn.request("GET", "/k")
        r = conn.getresponse()
        assert r.status == 200 and r.read() == b"ok"
    assert conn.sock is sock  # never reconnected
    conn.close()


def test_10000_requests_on_one_raw_socket(srv):
    with socket.create_connection(("127.0.0.1", srv.port)) as s:
        f = s.makefile("rb")
        for i in range(10000):
            s.sendall(b"GET /hello?name=%d HTTP/1.1\r\nHost: x\r\n\r\n" % i)
            assert read_response(f) == (200, b"hello %d" % i)


# ------------------------------------------------------------------ concurrency

def client_session(port, n, requests_each):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    got = []
    for i in range(requests_each):
        body = b"client %d request %d" % (n, i)
        conn.request("POST", "/echo", body=body)
        r = conn.getresponse()
        got.append((r.status, r.read() == body))
    conn.close()
    return got


def test_200_concurrent_clients(srv):
    with concurrent.futures.ThreadPoolExecutor(200) as pool:
        futures = [pool.submit(client_session, srv.port, n, 5) for n in range(200)]
        results = [f.result() for f in futures]
    assert all(r == [(200, True)] * 5 for r in results)


def test_200_concurrent_clients_to_an_in_process_server_thread():
    """The Manager polls in its own thread while 200 client threads talk to it."""
    import threading
    ready, stop, port = threading.Event(), threading.Event(), []

    def serve():
        with cm.Manager(lambda c, ev, d: c.reply(200, d.body_bytes)
                        if ev == cm.MG_EV_HTTP_MSG else None) as mgr:
            port.append(mgr.listen("http://127.0.0.1:0").local_addr[1])
            ready.set()
            while not stop.is_set():
                mgr.poll(50)

    t = threading.Thread(target=serve)
    t.start()
    try:
        assert ready.wait(20)
        with concurrent.futures.ThreadPoolExecutor(200) as pool:
            results = list(pool.map(lambda n: client_session(port[0], n, 3), range(200)))
        assert all(r == [(200, True)] * 3 for r in results)
    finally:
        stop.set()
        t.join(30)
    assert not t.is_alive()


# ------------------------------------------------------------------ pipelining

def pipelined_batch(n):
    reqs = [b"GET /hello?name=%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(n - 1)]
    reqs.append(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                b"Connection: close\r\n\r\nlast!")
    return b"".join(reqs)


def read_all(s):
    chunks = []
    while True:
        b = s.recv(65536)
        if not b:
            return b"".join(chunks)
        chunks.append(b)


def check_pipelined(got, n):
    f = __import__("io").BytesIO(got)
    for i in range(n - 1):
        assert read_response(f) == (200, b"hello %d" % i)
    assert read_response(f) == (200, b"last!")
    assert f.read() == b""


def test_pipelined_in_one_write(srv):
    with socket.create_connection(("127.0.0.1", srv.port)) as s:
        s.settimeout(30)
        s.sendall(pipelined_batch(500))
        check_pipelined(read_all(s), 500)


@pytest.mark.parametrize("step", [1, 7, 13, 61, 4093])
def test_pipelined_split_at_odd_points(srv, step):
    data = pipelined_batch(40)
    with socket.create_connection(("127.0.0.1", srv.port)) as s:
        s.settimeout(30)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(0, len(data), step):
            s.sendall(data[i:i + step])
        check_pipelined(read_all(s), 40)


# ------------------------------------------------------------------ 100 MB

def test_100mb_download_in_bounded_memory():
    size = 100 * MB
    p = py_server()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", p.port, timeout=60)
        conn.request("GET", "/download?size=%d" % size)
        r = conn.getresponse()
        assert r.status == 200 and r.getheader("Transfer-Encoding") == "chunked"
        total, crc, expect_crc = 0, 0, 0
        block = bytes(range(256)) * 256
        while True:
            piece = r.read(len(block))
            if not piece:
                break
            total += len(piece)
            crc = zlib.crc32(piece, crc)
        for off in range(0, size, len(block)):
            expect_crc = zlib.crc32(block[:min(len(block), size - off)], expect_crc)
        assert total == size and crc == expect_crc
        conn.request("GET", "/k")  # the connection carries on after the stream
        assert conn.getresponse().read() == b"ok"
        conn.close()
        assert p.peak_rss() < 40 * MB, "server peak RSS %d" % p.peak_rss()
    finally:
        assert p.stop() == 0


def body_pieces(size, block=bytes(range(256)) * 256):
    sent = 0
    while sent < size:
        piece = block[:min(len(block), size - sent)]
        sent += len(piece)
        yield piece


def crc_of(size):
    crc = 0
    for piece in body_pieces(size):
        crc = zlib.crc32(piece, crc)
    return crc


@pytest.mark.skipif(not os.path.exists(UPLOAD_SERVER), reason="run `make examples` first")
def test_100mb_upload_in_bounded_memory():
    """examples/c/http_upload.c takes the body over after HTTP_HDRS and consumes
    it as it arrives: its peak memory stays far below the body size."""
    size = 100 * MB
    p = Proc([UPLOAD_SERVER, "http://127.0.0.1:0"])
    try:
        conn = http.client.HTTPConnection("127.0.0.1", p.port, timeout=60)
        conn.request("POST", "/upload", body=body_pieces(size),
                     headers={"Content-Length": str(size)})
        r = conn.getresponse()
        assert r.status == 200
        assert r.read().decode() == "received %d bytes, crc32 %08x\n" % (size, crc_of(size))
        conn.request("GET", "/")  # back to HTTP on the same connection
        assert conn.getresponse().read() == b"POST a body to /upload\n"
        conn.close()
        assert p.peak_rss() < 16 * MB, "server peak RSS %d" % p.peak_rss()
    finally:
        assert p.stop() == 0


@pytest.mark.skipif(not os.path.exists(UPLOAD_SERVER), reason="run `make examples` first")
def test_streamed_upload_then_pipelined_requests():
    """A small upload whole in the first write with requests after it: the
    server returns to HTTP after the body and answers them."""
    p = Proc([UPLOAD_SERVER, "http://127.0.0.1:0"])
    try:
        with socket.create_connection(("127.0.0.1", p.port)) as s:
            s.settimeout(30)
            s.sendall(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
                      b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
                      b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
                      b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            f = __import__("io").BytesIO(read_all(s))
        assert read_response(f) == (200, b"received 5 bytes, crc32 %08x\n" % zlib.crc32(b"hello"))
        assert read_response(f) == (200, b"POST a body to /upload\n")
        assert read_response(f) == (200, b"received 3 bytes, crc32 %08x\n" % zlib.crc32(b"abc"))
        assert read_response(f) == (200, b"POST a body to /upload\n")
    finally:
        assert p.stop() == 0


@pytest.mark.skipif(not shutil.which("curl") or not os.path.exists(UPLOAD_SERVER),
                    reason="needs curl and `make examples`")
def test_curl_upload_with_expect_100_continue(tmp_path):
    path = tmp_path / "body.bin"
    size = 3 * MB + 17  # over 1 MB: curl sends Expect: 100-continue
    with open(path, "wb") as f:
        for piece in body_pieces(size):
            f.write(piece)
    p = Proc([UPLOAD_SERVER, "http://127.0.0.1:0"])
    try:
        out = subprocess.run(["curl", "-sS", "--data-binary", "@%s" % path,
                              "http://127.0.0.1:%d/upload" % p.port],
                             capture_output=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert out.stdout.decode() == "received %d bytes, crc32 %08x\n" % (size, crc_of(size))
    finally:
        assert p.stop() == 0


def test_max_body_is_configurable_from_python():
    """http_max_body raises the 16 MiB default; over the limit is 413."""
    p = py_server(24 * MB)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", p.port, timeout=60)
        conn.request("POST", "/count", body=b"x" * (20 * MB))
        assert conn.getresponse().read() == str(20 * MB).encode()
        conn.close()
        with socket.create_connection(("127.0.0.1", p.port)) as s:
            s.sendall(b"POST /count HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (24 * MB + 1))
            assert read_all(s).startswith(b"HTTP/1.1 413 ")
    finally:
        assert p.stop() == 0


def test_limit_options_are_checked():
    with cm.Manager() as mgr:
        for bad in (0, -1, 2 ** 70):
            with pytest.raises(ValueError):
                mgr.listen("http://127.0.0.1:0", http_max_body=bad)
        with pytest.raises(TypeError):
            mgr.listen("http://127.0.0.1:0", http_max_head="big")
        with pytest.raises(TypeError):
            mgr.connect("http://127.0.0.1:1", http_idle_timeout_ms=5)
        assert mgr.listen("http://127.0.0.1:0", http_max_body=None, http_max_head=None,
                          http_header_timeout_ms=5000, http_idle_timeout_ms=1000).is_listening


# ------------------------------------------------------------------ curl

def curl(*args):
    out = subprocess.run(["curl", "-sS"] + list(args), capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.mark.skipif(not shutil.which("curl"), reason="curl is not installed")
def test_curl_as_a_client(srv):
    base = "http://127.0.0.1:%d" % srv.port
    assert curl(base + "/hello?name=curl") == b"hello curl"
    assert curl("--http1.0", base + "/hello") == b"hello nobody"
    assert curl("--data-binary", "posted", base + "/echo") == b"posted"
    # A chunked upload (curl decides the chunk sizes).
    out = subprocess.run(["curl", "-sS", "-H", "Transfer-Encoding: chunked", "--data-binary", "@-",
                          base + "/count"], input=b"y" * 100000, capture_output=True, timeout=60)
    assert out.stdout == b"100000"
    head = curl("-I", base + "/hello")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"Content-Length: 12\r\n" in head
    assert curl("-o", "/dev/null", "-w", "%{http_code}", base + "/missing") == b"404"
    # Several URLs in one run share one keep-alive connection.
    out = curl("-w", "[%{num_connects}]", base + "/k", base + "/k", base + "/k")
    assert out == b"ok[1]ok[0]ok[0]"


# ------------------------------------------------------------------ malformed

@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


MALFORMED = [
    # Content-Length: duplicated with another value, invalid, signed, with TE
    (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400),
    (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +1\r\n\r\nx", 400),
    (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1 1\r\n\r\nx", 400),
    (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0x10\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n", 413),
    # Transfer-Encoding that is not chunked last, or on HTTP/1.0, or unknown codings
    (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501),
    (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    # invalid chunk sizes and framing
    (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\nab\r\n0\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0x2\r\nab\r\n0\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"fffffffffffffffffffff\r\nab\r\n0\r\n\r\n", 413),  # overflows: over any max_body
    (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\nab\r\n0\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n \r\n0\r\n\r\n", 400),
    # obs-fold (a tab too), bare CR, bare LF, spaces before the colon or in names
    (b"GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n\tfolded\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: x\r\nX: a\rb\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: x\rX: b\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: x\nX: b\r\n\r\n", 400),
    (b"GET / HTTP/1.1\nHost: x\n\n", 400),
    (b"GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: x\r\nX-A\t: b\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: x\r\nX A: b\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: x\r\n: b\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: x\r\nX: a\x00b\r\n\r\n", 400),
    # request line and Host
    (b"GET  / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    (b"GET /a b HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    (b"G(T / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", 400),
    # limits: URI, header count
    (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    (b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(70)) + b"\r\n", 431),
]


@pytest.mark.parametrize("payload,status", MALFORMED)
def test_malformed_requests(server, payload, status):
    got = raw(server, payload)
    assert got.startswith(b"HTTP/1.1 %d " % status), got[:200]
    assert b"Connection: close\r\n" in got


def test_malformed_request_after_a_good_one(server):
    """The good request is answered, the bad one gets 400, nothing after it is read."""
    got = raw(server, b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
                      b"GET / HTTP/1.1\r\nHost : x\r\n\r\n"
                      b"GET /hello?name=never HTTP/1.1\r\nHost: x\r\n\r\n")
    assert got.startswith(b"HTTP/1.1 200 OK\r\n") and b"hello nobody" in got
    assert b"HTTP/1.1 400 " in got and b"never" not in got


def fine(c, ev, d):
    if ev == cm.MG_EV_HTTP_MSG:
        c.reply(200, b"fine")


def test_configured_limits_give_431_and_413():
    s = HttpServer(fine, http_max_head=1024, http_max_body=1000)
    try:
        ok = raw(s, b"POST / HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 800 + b"\r\nContent-Length: 1000\r\n"
                    b"Connection: close\r\n\r\n" + b"b" * 1000)
        assert ok.startswith(b"HTTP/1.1 200 ") and ok.endswith(b"fine")
        assert raw(s, b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 1100 + b"\r\n\r\n").startswith(
            b"HTTP/1.1 431 ")
        assert raw(s, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\n\r\n").startswith(
            b"HTTP/1.1 413 ")
        chunked = b"".join(b"64\r\n" + b"c" * 100 + b"\r\n" for _ in range(11)) + b"0\r\n\r\n"
        assert raw(s, b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                      + chunked).startswith(b"HTTP/1.1 413 ")
    finally:
        s.close()


def test_timeout_options_take_effect():
    s = HttpServer(fine, http_header_timeout_ms=200, http_idle_timeout_ms=300)
    try:
        # a head that never completes: 408, then the close
        assert raw(s, b"GET / HTTP/1.1\r\nHost").startswith(b"HTTP/1.1 408 ")
        # an idle keep-alive connection is closed after its reply
        got = raw(s, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert got.startswith(b"HTTP/1.1 200 ") and got.endswith(b"fine")
    finally:
        s.close()


# ------------------------------------------------------------------ static files

@pytest.mark.skipif(not hasattr(cm.Connection, "serve_dir"), reason="serve_dir has not landed yet")
def test_traversal_attempts_never_leave_the_root(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (root / "inside.txt").write_text("inside")
    (tmp_path / "secret.txt").write_text("secret")
    s = Server(lambda c, ev, d: c.serve_dir(d, str(root)) if ev == cm.MG_EV_HTTP_MSG else None)
    try:
        assert b"inside" in raw(s, b"GET /inside.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        for target in (b"/../secret.txt", b"/%2e%2e/secret.txt", b"/%2E%2E%2Fsecret.txt",
                       b"/a/../../secret.txt", b"/..%2fsecret.txt", b"/.%2e/secret.txt",
                       b"/inside.txt/../../secret.txt", b"//../secret.txt", b"/..\\secret.txt",
                       b"/%00/../secret.txt"):
            got = raw(s, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            status = int(got.split(b" ", 2)[1])
            assert status in (400, 403, 404), (target, got[:100])
            assert b"secret" not in got.split(b"\r\n\r\n", 1)[-1]
    finally:
        s.close()
