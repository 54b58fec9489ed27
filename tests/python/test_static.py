"""Connection.serve_dir / serve_file over loopback, with requests and curl as peers."""
import concurrent.futures
import gzip
import hashlib
import os
import shutil
import socket
import subprocess

import pytest
import requests

import cymongoose as cm
from core_helpers import poll_until

# Manager.listen("http://...") parses HTTP once the HTTP bindings are in.
if not hasattr(cm.Connection, "reply"):
    pytest.skip("the Python HTTP server bindings are not in this build", allow_module_level=True)


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "empty").mkdir()
    (root / "hello.txt").write_text("Hello, world!\n")
    (root / "index.html").write_text("<h1>home</h1>")
    (root / "sub" / "index.html").write_text("<h1>sub</h1>")
    (root / "data.bin").write_bytes(bytes(range(256)) * 4)
    (root / "app.js").write_text("console.log('plain');")
    (root / "app.js.gz").write_bytes(gzip.compress(b"console.log('gzipped');"))
    (root / "x.weird").write_text("weird")
    (root / "name with spaces.txt").write_text("spaces")
    (tmp_path / "secret.txt").write_text("SECRET")
    (tmp_path / "404.html").write_text("<p>custom missing</p>")
    os.symlink(tmp_path / "secret.txt", root / "escape.txt")
    os.symlink(tmp_path, root / "escape_dir")
    return tmp_path


class Server:
    """A Manager with an HTTP listener whose handler serves tree; blocking
    clients run in a thread while the test thread polls."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.root = str(tmp / "root")
        self.seen = []
        self.mgr = cm.Manager(self.handler)
        self.listener = self.mgr.listen("http://127.0.0.1:0")
        self.port = self.listener.local_addr[1]
        self.base = "http://127.0.0.1:%d" % self.port
        self.pool = concurrent.futures.ThreadPoolExecutor(1)

    def handler(self, conn, ev, data):
        if ev != cm.MG_EV_HTTP_MSG:
            return
        self.seen.append(data)  # kept past the call: must read as expired later
        if data.uri.startswith("/one/"):
            conn.serve_file(data, os.path.join(str(self.tmp), data.uri[5:]),
                            extra_headers="X-One: 1\r\n", mime_types="weird=text/x-weird")
        else:
            conn.serve_dir(data, self.root, extra_headers="X-Static: yes\r\nCache-Control: max-age=60",
                           mime_types="weird=text/x-weird,.FOO=application/foo",
                           page404=str(self.tmp / "404.html"))

    def run(self, fn, *args, **kwargs):
        fut = self.pool.submit(fn, *args, **kwargs)
        assert poll_until(self.mgr, fut.done, timeout=60)
        return fut.result()

    def get(self, path, **kwargs):
        kwargs.setdefault("timeout", 30)
        return self.run(requests.get, self.base + path, **kwargs)

    def close(self):
        self.pool.shutdown()
        self.mgr.close()


@pytest.fixture
def server(tree):
    s = Server(tree)
    yield s
    s.close()


def test_files_and_types(server):
    r = server.get("/hello.txt")
    assert r.status_code == 200 and r.text == "Hello, world!\n"
    assert r.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert r.headers["X-Static"] == "yes" and r.headers["Cache-Control"] == "max-age=60"
    assert r.headers["Accept-Ranges"] == "bytes"
    assert r.headers["ETag"].startswith('"') and "GMT" in r.headers["Last-Modified"]
    assert server.get("/x.weird").headers["Content-Type"] == "text/x-weird"
    assert server.get("/name%20with%20spaces.txt").text == "spaces"
    assert server.get("/data.bin").content == bytes(range(256)) * 4
    r = server.run(requests.head, server.base + "/data.bin", timeout=30)
    assert r.status_code == 200 and r.headers["Content-Length"] == "1024" and r.content == b""
    assert server.run(requests.post, server.base + "/hello.txt", data=b"x", timeout=30).status_code == 405


def test_directories_and_404(server):
    r = server.get("/")
    assert r.text == "<h1>home</h1>" and r.headers["Content-Type"].startswith("text/html")
    r = server.get("/sub", allow_redirects=False)
    assert r.status_code == 301 and r.headers["Location"] == "/sub/"
    assert server.get("/sub").text == "<h1>sub</h1>"  # requests follows the redirect
    assert server.get("/empty/").status_code == 403  # no index, no listing
    r = server.get("/nope.txt")
    assert r.status_code == 404 and r.text == "<p>custom missing</p>"
    assert r.headers["X-Static"] == "yes"


def raw_get(port, target, extra=b""):
    """Sends target exactly as given (requests and curl normalise dots)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + extra + b"\r\n")
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return out
            out += chunk


@pytest.mark.parametrize("target", [
    b"/../secret.txt", b"/sub/../../secret.txt", b"/%2e%2e/secret.txt", b"/%2E%2e%2Fsecret.txt",
    b"/..%2fsecret.txt", b"/..%5csecret.txt", b"/..\\secret.txt", b"/hello.txt%00",
    b"/escape.txt", b"/escape_dir/secret.txt", b"/escape_dir/", b"/%zz",
])
def test_no_way_out(server, target):
    out = server.run(raw_get, server.port, target)
    status = int(out.split(b" ", 2)[1])
    assert status in (400, 403, 404), out[:200]
    assert b"SECRET" not in out


def test_ranges_and_conditionals(server):
    data = bytes(range(256)) * 4
    r = server.get("/data.bin", headers={"Range": "bytes=10-19"})
    assert r.status_code == 206 and r.content == data[10:20]
    assert r.headers["Content-Range"] == "bytes 10-19/1024"
    r = server.get("/data.bin", headers={"Range": "bytes=-4"})
    assert r.content == data[-4:]
    r = server.get("/data.bin", headers={"Range": "bytes=5000-"})
    assert r.status_code == 416 and r.headers["Content-Range"] == "bytes */1024"
    r = server.get("/data.bin", headers={"Range": "bytes=0-1,100-101"})
    assert r.status_code == 206
    assert r.headers["Content-Type"].startswith("multipart/byteranges; boundary=")
    assert b"Content-Range: bytes 0-1/1024" in r.content and b"Content-Range: bytes 100-101/1024" in r.content
    etag, lm = r.headers["ETag"], r.headers["Last-Modified"]
    assert server.get("/data.bin", headers={"If-None-Match": etag}).status_code == 304
    assert server.get("/data.bin", headers={"If-Modified-Since": lm}).status_code == 304
    assert server.get("/data.bin", headers={"If-None-Match": '"other"'}).status_code == 200


def test_precompressed_gzip(server):
    r = server.get("/app.js")  # requests sends Accept-Encoding: gzip, deflate
    assert r.headers["Content-Encoding"] == "gzip"
    assert r.headers["Vary"] == "Accept-Encoding"
    assert r.headers["Content-Type"].startswith("text/javascript")
    assert r.text == "console.log('gzipped');"  # decoded by requests
    r = server.get("/app.js", headers={"Accept-Encoding": "identity"})
    assert "Content-Encoding" not in r.headers and r.text == "console.log('plain');"


def test_serve_file(server):
    r = server.get("/one/root/hello.txt")
    assert r.text == "Hello, world!\n" and r.headers["X-One"] == "1"
    assert server.get("/one/root/x.weird").headers["Content-Type"] == "text/x-weird"
    assert server.get("/one/missing").status_code == 404


def test_large_file_with_curl(server, tree):
    if shutil.which("curl") is None:
        pytest.skip("curl not installed")
    big = tree / "root" / "big.bin"
    block = hashlib.sha256(b"seed").digest() * 2048  # 64 KiB
    with open(big, "wb") as f:
        for i in range(160):  # 10 MiB
            f.write(block[i % 7:] + block[:i % 7])
    want = hashlib.sha256(big.read_bytes()).hexdigest()
    out = tree / "download.bin"
    # curl is not ours: keep a sanitizer preloaded for our extension out of it.
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    rc = server.run(subprocess.run, ["curl", "-s", "-o", str(out), server.base + "/big.bin"], timeout=60,
                    env=env)
    assert rc.returncode == 0
    assert hashlib.sha256(out.read_bytes()).hexdigest() == want
    rc = server.run(subprocess.run, ["curl", "-s", "-r", "1000-1999", server.base + "/big.bin"],
                    capture_output=True, timeout=60, env=env)
    assert rc.stdout == big.read_bytes()[1000:2000]


def test_stale_message_and_bad_arguments(server):
    server.get("/hello.txt")
    stale = server.seen[-1]
    assert not stale
    errors = []

    def handler(conn, ev, data):
        if ev != cm.MG_EV_HTTP_MSG:
            return
        for call in (lambda: conn.serve_dir(stale, server.root),
                     lambda: conn.serve_file(stale, server.root + "/hello.txt"),
                     lambda: conn.serve_dir("not a message", server.root),
                     lambda: conn.serve_dir(data, server.root, extra_headers="X: a\r\n\r\nY: b"),
                     lambda: conn.serve_dir(data, server.root, extra_headers="X: a\nSet-Cookie: b"),
                     lambda: conn.serve_dir(data, server.root, extra_headers="Content-Length: 1"),
                     lambda: conn.serve_dir(data, "bad\0root")):
            try:
                call()
                errors.append(None)
            except (ValueError, TypeError) as e:
                errors.append(type(e))
        conn.serve_dir(data, server.root)

    server.mgr.close()
    server.mgr = cm.Manager(handler)
    listener = server.mgr.listen("http://127.0.0.1:0")
    server.base = "http://127.0.0.1:%d" % listener.local_addr[1]
    assert server.get("/hello.txt").text == "Hello, world!\n"
    assert errors == [ValueError, ValueError, TypeError, ValueError, ValueError, ValueError, ValueError]


@pytest.fixture(params=["openat2", "walk"])
def resolver(request, monkeypatch):
    """Both ways serve_dir resolves a path: openat2 where the kernel has it,
    and the component walk used without it (forced by the environment
    variable, read when a Manager first opens a root)."""
    if request.param == "walk":
        monkeypatch.setenv("CYMONGOOSE_NO_OPENAT2", "1")
    else:
        monkeypatch.delenv("CYMONGOOSE_NO_OPENAT2", raising=False)
    return request.param


@pytest.fixture
def linked_tree(tree):
    root = tree / "root"
    (tree / "outside").mkdir()
    (tree / "outside" / "secret.txt").write_text("SECRET OUTSIDE")
    os.symlink("../secret.txt", root / "dotdot_escape.txt")          # relative, climbs out
    os.symlink("../../outside", root / "sub" / "dotdot_dir")         # a directory out of the root
    os.symlink(str(root / "hello.txt"), root / "absolute_inside.txt")  # absolute, even to inside
    os.symlink("/etc/passwd", root / "absolute_passwd")
    os.symlink("sub/../hello.txt", root / "inside.txt")              # relative, stays inside
    os.symlink("../hello.txt", root / "sub" / "up.txt")
    return tree


@pytest.mark.parametrize("target, status", [
    (b"/dotdot_escape.txt", 403),
    (b"/sub/dotdot_dir/secret.txt", 403),
    (b"/escape.txt", 403),
    (b"/escape_dir/secret.txt", 403),
    (b"/absolute_inside.txt", 403),
    (b"/absolute_passwd", 403),
    (b"/sub/../../secret.txt", 403),
    (b"/sub/%2e%2e/%2e%2e/outside/secret.txt", 403),
    (b"/inside.txt", 200),
    (b"/sub/up.txt", 200),
])
def test_symlinks_and_dotdot(linked_tree, resolver, target, status):
    s = Server(linked_tree)
    try:
        out = s.run(raw_get, s.port, target)
    finally:
        s.close()
    assert int(out.split(b" ", 2)[1]) == status, out[:200]
    assert b"SECRET" not in out and b"root:" not in out
    if status == 200:
        assert out.endswith(b"\r\n\r\nHello, world!\n")


def test_symlink_escape_with_curl(linked_tree, resolver):
    """curl (a peer that is not ours) gets 403 for links out of the root."""
    if shutil.which("curl") is None:
        pytest.skip("curl not installed")
    s = Server(linked_tree)
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    try:
        for path, want in (("/dotdot_escape.txt", "403"), ("/absolute_inside.txt", "403"),
                           ("/inside.txt", "200")):
            rc = s.run(subprocess.run, ["curl", "-s", "-o", os.devnull, "-w", "%{http_code}",
                                        s.base + path], capture_output=True, text=True, timeout=60,
                       env=env)
            assert rc.stdout == want, path
    finally:
        s.close()


def test_precompressed_off(tree):
    """precompressed=False: the plain file even for a gzip client."""
    s = Server(tree)
    root = s.root

    def handler(conn, ev, data):
        if ev == cm.MG_EV_HTTP_MSG:
            conn.serve_dir(data, root, precompressed=False)

    s.mgr.close()
    s.mgr = cm.Manager(handler)
    s.base = "http://127.0.0.1:%d" % s.mgr.listen("http://127.0.0.1:0").local_addr[1]
    try:
        r = s.get("/app.js", headers={"Accept-Encoding": "gzip"})
        assert "Content-Encoding" not in r.headers and "Vary" not in r.headers
        assert r.text == "console.log('plain');"
    finally:
        s.close()
