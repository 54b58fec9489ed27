"""`python3 -m cymongoose`: every subcommand against real peers (curl, requests,
websockets, nginx, dnsmasq, chronyd or a scripted NTP responder), run as a
subprocess as a user would, stopped with SIGINT (Ctrl+C)."""
import asyncio
import gzip
import os
import shutil
import signal
import socket
import subprocess
import sys

import pytest
import requests

from demo_process import ROOT
from test_dns import dnsmasq  # noqa: F401  (fixture)
from test_http_client_nginx import nginx  # noqa: F401  (fixture)
from test_sntp import ScriptedNtp, chrony  # noqa: F401  (fixture)

ENV = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "python"))
ENV.pop("CM_DNS_SERVER", None)
CURL = shutil.which("curl")


def cli(*args, stdin=None, timeout=30):
    """Runs a subcommand to completion: (returncode, stdout bytes, stderr text)."""
    r = subprocess.run([sys.executable, "-m", "cymongoose", *args], env=ENV, input=stdin,
                       capture_output=True, timeout=timeout)
    return r.returncode, r.stdout, r.stderr.decode()


class Server:
    """A long-running subcommand: started, its banner read, stopped with SIGINT."""

    def __init__(self, *args):
        self.proc = subprocess.Popen([sys.executable, "-m", "cymongoose", *args], env=ENV,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.banner = self.proc.stdout.readline()
        if "(Ctrl+C to stop)" not in self.banner:
            self.proc.kill()
            pytest.fail("did not start: %r %s" % (self.banner, self.proc.stderr.read()))
        # "... on SCHEME://HOST:PORT/ ..." -> the port really bound
        url = next(w for w in self.banner.split() if "://" in w)
        self.url = url.rstrip("/")
        self.port = int(url.split("://")[1].split("/")[0].rsplit(":", 1)[1])

    def stop(self):
        self.proc.send_signal(signal.SIGINT)
        out, err = self.proc.communicate(timeout=20)
        assert self.proc.returncode == 0, err
        assert "Traceback" not in err
        return out, err

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate(timeout=20)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    d = tmp_path_factory.mktemp("site")
    (d / "index.html").write_text("<h1>home</h1>\n")
    (d / "app.js").write_text("console.log('app');\n" * 200)
    (d / "data.bin").write_bytes(bytes(range(256)) * 4096)  # 1 MiB
    (d / "big.bin").write_bytes(os.urandom(8 << 20))
    (d / "docs").mkdir()
    (d / "docs" / "a.txt").write_text("alpha\n")
    (d / "docs" / "b <&>.txt").write_text("beta\n")
    (d / "pre.css").write_text("body { color: red }\n" * 50)
    (d / "pre.css.gz").write_bytes(gzip.compress(b"body { color: red }\n" * 50))
    return d


@pytest.fixture(scope="module")
def served(site):
    s = Server("serve", str(site), "--listen", "http://127.0.0.1:0")
    yield s
    s.kill()


# ---------------------------------------------------------------------- help

def test_help_lists_subcommands_and_errors_are_one_line():
    code, out, _ = cli("--help")
    assert code == 0
    for name in ("serve", "echo", "get", "ws", "sntp", "resolve"):
        assert name.encode() in out
    code, out, err = cli("get", "ftp://x/")
    assert code == 1 and err.strip() == "cymongoose get: expected an http:// or https:// URL, not ftp://x/"
    code, _, err = cli("serve", "/nonexistent/dir")
    assert code == 1 and len(err.strip().splitlines()) == 1 and "not a directory" in err
    code, _, err = cli("nope")
    assert code == 2 and "invalid choice" in err


# --------------------------------------------------------------------- serve

def test_serve_files_range_etag(served, site):
    assert "serving %s on http://127.0.0.1:%d/" % (site, served.port) in served.banner
    r = requests.get(served.url + "/data.bin", timeout=10)
    assert r.status_code == 200 and r.content == (site / "data.bin").read_bytes()
    etag = r.headers["ETag"]
    r = requests.get(served.url + "/data.bin", headers={"Range": "bytes=10-19"}, timeout=10)
    assert r.status_code == 206 and r.content == bytes(range(10, 20))
    assert r.headers["Content-Range"] == "bytes 10-19/%d" % (256 * 4096)
    r = requests.get(served.url + "/data.bin", headers={"If-None-Match": etag}, timeout=10)
    assert r.status_code == 304
    assert requests.get(served.url + "/", timeout=10).text == "<h1>home</h1>\n"
    assert requests.get(served.url + "/missing", timeout=10).status_code == 404
    assert requests.get(served.url + "/../../etc/passwd", timeout=10).status_code in (400, 403, 404)


def test_serve_precompressed_gz_with_curl(served):
    out = subprocess.run([CURL, "-s", "-i", "-H", "Accept-Encoding: gzip", served.url + "/pre.css"],
                         capture_output=True, timeout=20).stdout
    head, _, body = out.partition(b"\r\n\r\n")
    assert b"Content-Encoding: gzip" in head and b"Vary: Accept-Encoding" in head
    assert gzip.decompress(body) == b"body { color: red }\n" * 50
    plain = subprocess.run([CURL, "-s", served.url + "/pre.css"], capture_output=True, timeout=20).stdout
    assert plain == b"body { color: red }\n" * 50


def test_serve_directory_index_page(served):
    r = requests.get(served.url + "/docs/", timeout=10)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html")
    assert '<a href="a.txt">a.txt</a>' in r.text
    assert '<a href="b%20%3C%26%3E.txt">b &lt;&amp;&gt;.txt</a>' in r.text  # quoted and escaped
    assert requests.get(served.url + "/docs/b%20%3C%26%3E.txt", timeout=10).text == "beta\n"
    r = requests.get(served.url + "/docs", allow_redirects=False, timeout=10)
    assert r.status_code == 301 and r.headers["Location"] == "/docs/"


def test_serve_spa_cors_gzip_and_access_log(site, tmp_path):
    log = tmp_path / "access.log"
    s = Server("serve", str(site), "--listen", "http://127.0.0.1:0", "--spa", "--cors", "--gzip",
               "--access-log", str(log), "--log-format", "common")
    try:
        assert "[gzip, cors, spa]" in s.banner
        r = requests.get(s.url + "/some/client/route", headers={"Accept": "text/html"}, timeout=10)
        assert r.status_code == 200 and r.text == "<h1>home</h1>\n"
        assert requests.get(s.url + "/missing.png", timeout=10).status_code == 404  # an asset stays 404
        r = requests.options(s.url + "/app.js", headers={"Origin": "http://other",
                                                         "Access-Control-Request-Method": "GET"}, timeout=10)
        assert r.status_code == 204 and r.headers["Access-Control-Allow-Origin"] == "*"
        r = requests.get(s.url + "/app.js", timeout=10)  # requests accepts gzip
        assert r.headers["Content-Encoding"] == "gzip" and r.text == "console.log('app');\n" * 200
        assert r.headers["Access-Control-Allow-Origin"] == "*"
        r2 = requests.get(s.url + "/app.js", headers={"If-None-Match": r.headers["ETag"]}, timeout=10)
        assert r2.status_code == 304
        r = requests.get(s.url + "/app.js", headers={"Accept-Encoding": "identity"}, timeout=10)
        assert "Content-Encoding" not in r.headers and r.text == "console.log('app');\n" * 200
    finally:
        s.stop()
    lines = log.read_text().splitlines()
    assert len(lines) == 6
    assert lines[0].startswith("127.0.0.1 - - [") and lines[0].endswith('"GET /some/client/route HTTP/1.1" 200 14')
    assert '"OPTIONS /app.js HTTP/1.1" 204 -' in lines[2]


def test_serve_https_with_curl(site, tmp_path):
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    cert.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    code, _, err = cli("serve", str(site), "--listen", "https://127.0.0.1:0")
    assert code == 1 and "needs --tls-cert and --tls-key" in err
    s = Server("serve", str(site), "--listen", "https://127.0.0.1:0",
               "--tls-cert", str(tmp_path / "cert.pem"), "--tls-key", str(tmp_path / "key.pem"))
    try:
        out = subprocess.run([CURL, "-s", "--cacert", str(tmp_path / "ca.pem"),
                              "https://127.0.0.1:%d/docs/a.txt" % s.port], capture_output=True, timeout=20)
        assert out.stdout == b"alpha\n"
        # and our own client, verifying against the same CA
        code, out, err = cli("get", "--cacert", str(tmp_path / "ca.pem"), "https://localhost:%d/docs/a.txt" % s.port)
        assert code == 0 and out == b"alpha\n", err
        code, out, err = cli("get", "https://localhost:%d/docs/a.txt" % s.port)
        assert code == 1 and "certificate" in err
        code, out, err = cli("get", "--insecure", "https://localhost:%d/docs/a.txt" % s.port)
        assert code == 0 and out == b"alpha\n", err
    finally:
        s.stop()


def test_busy_port_is_one_clear_line(served):
    code, _, err = cli("serve", ".", "--listen", "http://127.0.0.1:%d" % served.port)
    assert code == 1 and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert "127.0.0.1:%d" % served.port in err and "--listen" in err


# ----------------------------------------------------------------------- get

def test_get_against_our_server(served, site):
    code, out, err = cli("get", served.url + "/data.bin")
    assert code == 0 and out == (site / "data.bin").read_bytes() and err == ""
    code, out, _ = cli("get", "-i", served.url + "/docs/a.txt")
    head, _, body = out.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"ETag: " in head and body == b"alpha\n"
    code, out, _ = cli("get", "-i", "-H", "Range: bytes=0-2", served.url + "/docs/a.txt")
    assert out.startswith(b"HTTP/1.1 206 Partial Content\r\n") and out.endswith(b"\r\n\r\nalp")
    code, out, _ = cli("get", served.url + "/nope")
    assert code == 22 and out.startswith(b"Not Found")


def test_get_against_nginx(nginx):  # noqa: F811
    url = "http://127.0.0.1:%d" % nginx["port"]
    code, out, _ = cli("get", url + "/big.bin")
    assert code == 0 and out == nginx["big"]
    code, out, _ = cli("get", "-i", "-H", "Accept-Encoding: gzip", url + "/text.txt")
    head, _, body = out.partition(b"\r\n\r\n")
    assert b"Transfer-Encoding: chunked" in head and b"Content-Encoding: gzip" in head
    assert gzip.decompress(body).startswith(b"line 0 of the gzip test\n")
    code, out, _ = cli("get", "-d", "a=1", url + "/hello")
    assert out == b"hello from nginx\n"


def test_get_posts_data(tmp_path):
    # our echo server on ws:// also speaks HTTP: a plain POST gets 400 with a hint
    s = Server("echo", "--listen", "ws://127.0.0.1:0")
    try:
        code, out, _ = cli("get", "-i", "-d", "hello", "http://127.0.0.1:%d/" % s.port)
        assert code == 22 and out.startswith(b"HTTP/1.1 400") and b"WebSocket echo server" in out
    finally:
        s.stop()
    code, _, err = cli("get", "http://127.0.0.1:1/")
    assert code == 1 and "connect 127.0.0.1:1" in err


# ---------------------------------------------------------------------- echo

def test_echo_tcp_and_udp():
    s = Server("echo", "--listen", "tcp://127.0.0.1:0")
    try:
        with socket.create_connection(("127.0.0.1", s.port), timeout=10) as c:
            payload = os.urandom(200000)
            c.sendall(payload)
            got = b""
            while len(got) < len(payload):
                got += c.recv(65536)
            assert got == payload
    finally:
        s.stop()
    s = Server("echo", "--listen", "udp://127.0.0.1:0")
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.settimeout(10)
            u.sendto(b"datagram", ("127.0.0.1", s.port))
            assert u.recvfrom(100)[0] == b"datagram"
    finally:
        s.stop()


async def ws_round_trip(url):
    import websockets
    async with websockets.connect(url) as ws:
        await ws.send("text message")
        assert await ws.recv() == "text message"
        await ws.send(b"\x00\x01binary")
        assert await ws.recv() == b"\x00\x01binary"


def test_echo_websocket_with_websockets():
    s = Server("echo", "--listen", "ws://127.0.0.1:0")
    try:
        asyncio.run(asyncio.wait_for(ws_round_trip("ws://127.0.0.1:%d/" % s.port), 20))
    finally:
        s.stop()


# ------------------------------------------------------------------------ ws

def test_ws_client_sends_lines_and_prints_messages():
    s = Server("echo", "--listen", "ws://127.0.0.1:0")
    try:
        code, out, err = cli("ws", "ws://127.0.0.1:%d/" % s.port, stdin=b"first line\nsecond\n")
        assert code == 0, err
        assert out == b"first line\nsecond\n"
        assert "connected" in err
    finally:
        s.stop()


def test_ws_client_against_websockets_server():
    import threading
    import websockets

    ready = threading.Event()
    state = {}

    async def upper(ws, path=None):
        async for msg in ws:
            await ws.send(msg.upper())

    async def main():
        async with websockets.serve(upper, "127.0.0.1", 0) as server:
            state["port"] = server.sockets[0].getsockname()[1]
            state["loop"] = asyncio.get_running_loop()
            state["stop"] = asyncio.Event()
            ready.set()
            await state["stop"].wait()

    t = threading.Thread(target=lambda: asyncio.run(main()))
    t.start()
    ready.wait(10)
    try:
        code, out, err = cli("ws", "ws://127.0.0.1:%d/" % state["port"], stdin=b"shout\n")
        assert code == 0 and out == b"SHOUT\n", err
    finally:
        state["loop"].call_soon_threadsafe(state["stop"].set)
        t.join(10)
    code, _, err = cli("ws", "http://x/")
    assert code == 1 and "ws://" in err


# ---------------------------------------------------------------- sntp, resolve

def test_sntp_against_chrony(chrony):  # noqa: F811
    code, out, err = cli("sntp", chrony)
    assert code == 0, err
    assert b"this clock is" in out and out[:2] == b"20"


def test_sntp_scripted_and_kiss_of_death():
    good = ScriptedNtp("good")
    kod = ScriptedNtp("kod")
    try:
        code, out, err = cli("sntp", good.url)
        assert code == 0 and out.startswith(b"2030-03-17T"), err
        code, out, err = cli("sntp", "--timeout", "3", kod.url)
        assert code == 1 and len(err.strip().splitlines()) == 1
    finally:
        good.close()
        kod.close()


def test_resolve_with_dnsmasq(dnsmasq):  # noqa: F811
    code, out, err = cli("resolve", "host.test", "--dns", dnsmasq)
    assert code == 0 and out == b"host.test 127.0.0.5\n", err
    code, out, err = cli("resolve", "alias.test", "--dns", dnsmasq)
    assert out == b"alias.test 127.0.0.5\n"
    code, out, err = cli("resolve", "missing.test", "--dns", dnsmasq)
    assert code == 1 and "NXDOMAIN" in err and len(err.strip().splitlines()) == 1
    code, out, err = cli("resolve", "localhost", "--dns", dnsmasq)  # /etc/hosts, no query
    assert code == 0 and out in (b"localhost 127.0.0.1\n", b"localhost ::1\n")


def test_get_progress_on_a_terminal_only(served, site):
    import pty
    master, slave = pty.openpty()
    p = subprocess.Popen([sys.executable, "-m", "cymongoose", "get", served.url + "/big.bin"],
                         env=ENV, stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    out = p.stdout.read()
    p.wait(30)
    err = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the terminal's other side is closed
            break
        if not chunk:
            break
        err += chunk
    os.close(master)
    assert out == (site / "big.bin").read_bytes()
    assert b"%  " in err and b" of 8388608 bytes" in err and b"done: 8388608 bytes" in err
    # not a terminal: nothing on stderr (test_get_against_our_server)


def test_verbose_flag_tells_the_story(served):
    code, out, err = cli("-vv", "get", served.url + "/docs/a.txt")
    assert code == 0 and out == b"alpha\n"
    assert "DEBUG" in err and "conn 1: closed (" in err
