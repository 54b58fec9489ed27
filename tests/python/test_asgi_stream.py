"""cymongoose.asgi with streamed request bodies: http.request messages with
more_body as the body arrives, paced by the application; a 1 GiB upload in
flat memory.  Real sockets, a client thread."""
import asyncio
import os
import socket
import threading
import zlib

from cymongoose.asgi import ASGIServer

GIB = 1 << 30
CHUNK = 1 << 20
DEADLINE = 60


# ASan keeps freed memory in quarantine (256 MiB by default): RSS then says
# nothing about what the code holds, so the memory bound is checked only
# without it (the functional checks still run).
RSS_BOUND_KIB = None if "libasan" in os.environ.get("LD_PRELOAD", "") else 64 * 1024


def rss_kib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


class Client(threading.Thread):
    """Sends head + total bytes (zeros, CHUNK at a time) on a blocking
    socket, then reads the answer until the connection closes or the
    response ends with a newline after the blank line."""

    def __init__(self, port, total, extra=b""):
        super().__init__()
        self.port, self.total, self.extra = port, total, extra
        self.sent = 0
        self.answer = b""

    def run(self):
        with socket.create_connection(("127.0.0.1", self.port)) as s:
            s.settimeout(DEADLINE)
            s.sendall(b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % self.total)
            zeros = bytes(CHUNK)
            left = self.total
            while left:
                n = min(left, CHUNK)
                s.sendall(zeros[:n])
                self.sent += n
                left -= n
            s.sendall(self.extra)
            out = b""
            while not (b"\r\n\r\n" in out and out.endswith(b"\n") and
                       out.count(b"HTTP/1.1 ") >= 1 + self.extra.count(b"HTTP/1.1")):
                d = s.recv(65536)
                if not d:
                    break
                out += d
            self.answer = out


async def wait_thread(t):
    while t.is_alive():
        await asyncio.sleep(0.02)


def crc_of_zeros(n):
    crc, zeros = 0, bytes(CHUNK)
    while n:
        k = min(n, CHUNK)
        crc = zlib.crc32(zeros[:k], crc)
        n -= k
    return crc


def make_app(record):
    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        total, crc, messages = 0, 0, 0
        while True:
            m = await receive()
            assert m["type"] == "http.request"
            messages += 1
            total += len(m["body"])
            crc = zlib.crc32(m["body"], crc)
            if messages % 64 == 0:
                record["peak"] = max(record.get("peak", 0), rss_kib())
            if record.get("pause") and messages == 1:
                await record["pause"]()
            if not m.get("more_body"):
                break
        record["messages"] = messages
        body = b"%d %08x\n" % (total, crc)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": body})
    return app


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 120))


def test_gib_upload_streams_in_flat_memory():
    async def main():
        record = {}
        errors = []
        server = ASGIServer(make_app(record), error_handler=errors.append, lifespan="off")
        lst = await server.start("http://127.0.0.1:0")
        try:
            before = rss_kib()
            c = Client(lst.local_addr[1], GIB)
            c.start()
            await wait_thread(c)
            assert c.answer.endswith(b"\r\n%d %08x\n" % (GIB, crc_of_zeros(GIB))), c.answer[-300:]
            assert record["messages"] > 64  # in pieces, not whole
            assert RSS_BOUND_KIB is None or record["peak"] - before < RSS_BOUND_KIB, (before,
                                                                           record["peak"])
            assert not errors
        finally:
            await server.stop()
    run(main())


def test_reading_pauses_while_the_app_does_not_consume():
    """While the app sleeps after its first message, the client cannot send
    more than what fits in the socket buffers and the receive limit."""
    total = 256 << 20
    seen = {}

    async def main():
        record = {}
        client = None

        async def pause():
            for _ in range(50):  # let the client push what it can
                await asyncio.sleep(0.02)
            seen["sent_while_paused"] = client.sent
            seen["recv_len"] = max(c.recv_len for c in server.manager.connections)

        record["pause"] = pause
        server = ASGIServer(make_app(record), lifespan="off")
        lst = await server.start("http://127.0.0.1:0")
        try:
            client = Client(lst.local_addr[1], total)
            client.start()
            await wait_thread(client)
            assert client.answer.endswith(b"\r\n%d %08x\n" % (total, crc_of_zeros(total)))
        finally:
            await server.stop()
    run(main())
    assert seen["sent_while_paused"] < 64 << 20, seen
    assert seen["recv_len"] <= 4 << 20, seen


def test_keep_alive_and_pipelined_request_after_a_streamed_body():
    async def main():
        record = {}
        server = ASGIServer(make_app(record), lifespan="off", stream_body=1000)
        lst = await server.start("http://127.0.0.1:0")
        try:
            c = Client(lst.local_addr[1], 300000,
                       extra=b"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
            c.start()
            await wait_thread(c)
            assert b"\r\n300000 %08x\n" % crc_of_zeros(300000) in c.answer
            assert c.answer.endswith(b"\r\n3 %08x\n" % zlib.crc32(b"abc"))
        finally:
            await server.stop()
    run(main())


def test_early_response_without_reading_the_body_closes():
    """An app that answers without reading a streamed body: the response
    goes out, then the connection closes (the unread body cannot be told
    from a next request)."""
    async def app(scope, receive, send):
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 413, "headers": []})
            await send({"type": "http.response.body", "body": b"too big\n"})

    async def main():
        server = ASGIServer(app, lifespan="off")
        lst = await server.start("http://127.0.0.1:0")
        try:
            r, w = await asyncio.open_connection("127.0.0.1", lst.local_addr[1])
            w.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n" + bytes(1000))
            got = await asyncio.wait_for(r.read(), DEADLINE)
            assert got.startswith(b"HTTP/1.1 413") and got.endswith(b"too big\n")
            w.close()
        finally:
            await server.stop()
    run(main())


def test_chunked_body_over_max_body_is_refused():
    called = []

    async def app(scope, receive, send):
        if scope["type"] == "http":
            while True:  # streamed: the app sees the pieces, never the body's end
                m = await receive()
                if m["type"] != "http.request" or not m["more_body"]:
                    break
            called.append(m)
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok\n"})

    async def main():
        server = ASGIServer(app, lifespan="off", max_body=100000)
        lst = await server.start("http://127.0.0.1:0")
        try:
            r, w = await asyncio.open_connection("127.0.0.1", lst.local_addr[1])
            w.write(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
            piece = b"%x\r\n" % 65536 + bytes(65536) + b"\r\n"
            try:
                for _ in range(8):
                    w.write(piece)
                    await w.drain()
            except ConnectionError:
                pass
            try:
                got = await asyncio.wait_for(r.read(), DEADLINE)
            except ConnectionResetError:  # closed with our bytes unread: RST
                got = None
            assert got is None or got.startswith(b"HTTP/1.1 413"), got[:100]
            assert called == [{"type": "http.disconnect"}]
            w.close()
        finally:
            await server.stop()
    run(main())
