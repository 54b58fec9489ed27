"""Chunked request bodies streamed (not read whole) through a plain handler
(Connection.http_body_stream), WSGI (wsgi.input) and ASGI (http.request
with more_body), with real peers: curl and http.client send the chunked
bodies; 1 GiB goes through each server in flat memory; malformed or
oversized bodies get their 4xx and the connection closes."""
import asyncio
import contextlib
import http.client
import os
import socket
import subprocess
import threading
import zlib

import pytest

import cymongoose as cm
from cymongoose.asgi import ASGIServer
from cymongoose.wsgi import WSGIServer

GIB = 1 << 30
MIB = 1 << 20
DEADLINE = 120

# ASan keeps freed memory in quarantine: RSS then says nothing about what
# the code holds, so the bound is checked only without it.
RSS_BOUND_KIB = None if "libasan" in os.environ.get("LD_PRELOAD", "") else 64 * 1024


def rss_kib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


class Tally:
    """Length and CRC of a body read in pieces, with the server's peak RSS."""

    def __init__(self, record):
        self.record = record
        self.total = self.crc = self.pieces = 0

    def add(self, piece):
        self.pieces += 1
        self.total += len(piece)
        self.crc = zlib.crc32(piece, self.crc)
        if self.pieces % 64 == 0:
            self.record["peak"] = max(self.record.get("peak", 0), rss_kib())

    def answer(self):
        self.record["pieces"] = self.pieces
        return b"%d %08x\n" % (self.total, self.crc)


# ------------------------------------------------------------- the servers

@contextlib.contextmanager
def plain_server(record, max_body=None):
    """A Manager whose handler streams every POST body (http_body_stream)."""
    tallies = {}

    def take(conn):
        t = tallies[conn.id]
        while True:
            piece = conn.http_body_read(MIB)
            if not piece:
                break
            t.add(piece)
        if conn.http_body_left() == 0:
            del tallies[conn.id]
            conn.reply(200, t.answer())
            conn.http_body_end()

    def handler(conn, ev, data):
        if ev == cm.MG_EV_HTTP_HDRS and data.method == "POST":
            n = conn.http_body_stream(data, max_body)
            if n is not None:
                record["length"] = n
                tallies[conn.id] = Tally(record)
                take(conn)
        elif ev == cm.MG_EV_READ and conn.id in tallies:
            take(conn)
        elif ev == cm.MG_EV_HTTP_MSG:
            conn.reply(200, b"plain %d\n" % len(data.body_bytes))
        elif ev == cm.MG_EV_CLOSE:
            tallies.pop(conn.id, None)

    mgr = cm.Manager(handler)
    port = mgr.listen("http://127.0.0.1:0", http=True, http_max_body=1 << 40).local_addr[1]
    stop = threading.Event()

    def loop():
        while not stop.is_set():
            mgr.poll(20)

    t = threading.Thread(target=loop)
    t.start()
    try:
        yield port
    finally:
        stop.set()
        t.join()
        mgr.close()


def wsgi_app(record):
    def app(environ, start_response):
        if environ["REQUEST_METHOD"] != "POST":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"plain 0\n"]
        record["content_length"] = environ["CONTENT_LENGTH"]
        record["terminated"] = environ.get("wsgi.input_terminated")
        t = Tally(record)
        inp = environ["wsgi.input"]
        try:
            while True:
                piece = inp.read(MIB)
                if not piece:
                    break
                t.add(piece)
        except ConnectionError as e:
            record["error"] = e
            raise
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [t.answer()]
    return app


@contextlib.contextmanager
def wsgi_server(record, max_body=GIB * 2):
    srv = WSGIServer(wsgi_app(record), workers=2, max_body=max_body,
                     error_handler=record.setdefault("errors", []).append)
    port = srv.listen("http://127.0.0.1:0").local_addr[1]
    t = threading.Thread(target=srv.run, kwargs={"poll_ms": 20})
    t.start()
    try:
        yield port
    finally:
        srv.close()
        t.join()


def asgi_app(record):
    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        t = Tally(record)
        while True:
            m = await receive()
            if m["type"] == "http.disconnect":
                record["disconnected"] = True
                return
            t.add(m["body"])
            if not m.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": t.answer()})
    return app


@contextlib.contextmanager
def asgi_server(record, max_body=GIB * 2):
    box = {}
    ready = threading.Event()

    async def main():
        server = ASGIServer(asgi_app(record), lifespan="off", max_body=max_body,
                            error_handler=record.setdefault("errors", []).append)
        lst = await server.start("http://127.0.0.1:0")
        box["port"] = lst.local_addr[1]
        box["loop"] = asyncio.get_running_loop()
        box["stop"] = asyncio.Event()
        ready.set()
        try:
            await box["stop"].wait()
        finally:
            await server.stop()

    t = threading.Thread(target=asyncio.run, args=(main(),))
    t.start()
    assert ready.wait(30)
    try:
        yield box["port"]
    finally:
        box["loop"].call_soon_threadsafe(box["stop"].set)
        t.join()


SERVERS = {"plain": plain_server, "wsgi": wsgi_server, "asgi": asgi_server}


# ------------------------------------------------------------- the clients

def curl_upload(port, total, stream=True):
    """curl POSTs total zero bytes with chunked encoding, generated on the
    fly into its stdin (-T - streams it; --data-binary @- reads it first)."""
    how = ["-T", "-", "-X", "POST"] if stream else ["--data-binary", "@-"]
    p = subprocess.Popen(["curl", "-sS", "--max-time", str(DEADLINE), *how,
                          "-H", "Transfer-Encoding: chunked", "-H", "Content-Type: x/y",
                          "http://127.0.0.1:%d/up" % port],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def feed():
        zeros = bytes(MIB)
        left = total
        try:
            while left:
                n = min(left, MIB)
                p.stdin.write(zeros[:n])
                left -= n
            p.stdin.close()
        except BrokenPipeError:
            pass

    w = threading.Thread(target=feed)
    w.start()
    out = p.stdout.read()  # not communicate(): it would close stdin under feed()
    err = p.stderr.read()
    p.wait(DEADLINE)
    w.join()
    p.stdout.close()
    p.stderr.close()
    assert p.returncode == 0, err
    return out


def crc_of_zeros(n):
    crc, zeros = 0, bytes(MIB)
    while n:
        k = min(n, MIB)
        crc = zlib.crc32(zeros[:k], crc)
        n -= k
    return crc


def raw_exchange(port, data):
    """Sends data, returns everything the server sends until it closes."""
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.settimeout(DEADLINE)
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server refused the rest: its answer may still be readable
        out = b""
        while True:
            try:
                d = s.recv(65536)
            except ConnectionResetError:
                break
            if not d:
                break
            out += d
        return out


# --------------------------------------------------------------- the tests

@pytest.mark.parametrize("kind", SERVERS)
def test_gib_chunked_upload_in_flat_memory(kind):
    record = {}
    with SERVERS[kind](record) as port:
        before = rss_kib()
        out = curl_upload(port, GIB)
    assert out == b"%d %08x\n" % (GIB, crc_of_zeros(GIB))
    assert record["pieces"] > 64  # in pieces, never whole
    assert RSS_BOUND_KIB is None or record["peak"] - before < RSS_BOUND_KIB, (before,
                                                                           record["peak"])
    assert not record.get("errors")
    if kind == "wsgi":
        assert record["content_length"] == "" and record["terminated"] is True
    if kind == "plain":
        assert record["length"] == -1


@pytest.mark.parametrize("kind", SERVERS)
def test_curl_data_binary_chunked(kind):
    record = {}
    with SERVERS[kind](record) as port:
        out = curl_upload(port, 300000, stream=False)
    assert out == b"300000 %08x\n" % crc_of_zeros(300000)


def body_pieces():
    for i in range(50):
        yield bytes([i]) * (1000 * i + 1)


@pytest.mark.parametrize("kind", SERVERS)
def test_http_client_chunked_then_keep_alive(kind):
    record = {}
    data = b"".join(body_pieces())
    with SERVERS[kind](record) as port:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=DEADLINE)
        try:
            for _ in range(2):  # the same connection serves the next request
                c.request("POST", "/up", body=body_pieces(), encode_chunked=True,
                          headers={"Transfer-Encoding": "chunked"})
                r = c.getresponse()
                assert r.status == 200
                assert r.read() == b"%d %08x\n" % (len(data), zlib.crc32(data))
            c.request("GET", "/after")
            r = c.getresponse()
            r.read()
            assert r.status == 200
        finally:
            c.close()


@pytest.mark.parametrize("kind", SERVERS)
def test_pipelined_request_after_a_chunked_body(kind):
    record = {}
    with SERVERS[kind](record) as port:
        out = raw_exchange(port, b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                                 b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"
                                 b"POST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                                 b"Connection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
    assert out.count(b"HTTP/1.1 200") == 2, out
    assert b"\r\n11 %08x\n" % zlib.crc32(b"hello world") in out
    assert out.endswith(b"\r\n3 %08x\n" % zlib.crc32(b"abc"))


MALFORMED = {
    "bad size": (b"zz\r\nhello\r\n0\r\n\r\n", 400),
    "negative size": (b"-5\r\nhello\r\n0\r\n\r\n", 400),
    "no CRLF after data": (b"5\r\nhelloXX\r\n0\r\n\r\n", 400),
    "size line too long": (b"5;" + b"e" * 5000 + b"\r\nhello\r\n0\r\n\r\n", 400),
    "size overflow": (b"F" * 40 + b"\r\n", 413),
    "huge trailers": (b"0\r\n" + b"X-T: %s\r\n" % (b"v" * 1000) * 40 + b"\r\n", 431),
}


@pytest.mark.parametrize("kind", SERVERS)
@pytest.mark.parametrize("case", MALFORMED)
def test_malformed_chunked_body_gets_4xx_and_close(kind, case):
    body, status = MALFORMED[case]
    record = {}
    with SERVERS[kind](record) as port:
        # data of a good first chunk, then the bad part; a request behind
        # it must not be served (the connection closes).
        out = raw_exchange(port, b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                                 b"3\r\nabc\r\n" + body + b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 %d " % status), out[:200]
    assert out.count(b"HTTP/1.1 ") == 1, out
    assert b"Connection: close" in out or b"connection: close" in out.lower()
    if kind == "wsgi":
        assert isinstance(record.get("error"), ConnectionError)  # never a cut body as whole
    if kind == "asgi":
        assert record.get("disconnected")


@pytest.mark.parametrize("kind", SERVERS)
def test_chunked_body_over_max_body_gets_413(kind):
    record = {}
    with SERVERS[kind](record, max_body=100000) as port:
        piece = b"%x\r\n" % 65536 + bytes(65536) + b"\r\n"
        out = raw_exchange(port, b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                                 + piece * 2 + b"0\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 413 "), out[:200]
    assert "pieces" not in record  # no answer from a cut body
