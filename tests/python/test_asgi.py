"""cymongoose.asgi: ASGI 3.0 applications served by real clients
(aiohttp, websockets, requests, raw sockets)."""
import asyncio
import contextlib
import json
import socket

import aiohttp
import pytest
import requests
import websockets

import cymongoose as cm
from cymongoose.asgi import ASGIServer

DEADLINE = 20


# ------------------------------------------------------------------ helpers
def url_of(lst, scheme="http"):
    return "%s://127.0.0.1:%d" % (scheme, lst.local_addr[1])


async def raw_exchange(port, data, read_until_close=True):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    got = await asyncio.wait_for(reader.read(), DEADLINE) if read_until_close else None
    writer.close()
    return got


async def body_of(receive):
    body = b""
    while True:
        m = await receive()
        assert m["type"] == "http.request"
        body += m.get("body", b"")
        if not m.get("more_body"):
            return body


async def respond(send, status, body, headers=()):
    await send({"type": "http.response.start", "status": status,
                "headers": [list(h) for h in headers]})
    await send({"type": "http.response.body", "body": body})


class Server:
    """ASGIServer started on an ephemeral port for one test."""

    def __init__(self, app, **kw):
        self.errors = []
        self.server = ASGIServer(app, error_handler=self.errors.append, **kw)

    async def __aenter__(self):
        self.listener = await self.server.start("http://127.0.0.1:0")
        self.port = self.listener.local_addr[1]
        self.url = url_of(self.listener)
        return self

    async def __aexit__(self, *exc):
        await self.server.stop()


# ------------------------------------------------------------ HTTP scope
async def scope_app(scope, receive, send):
    if scope["type"] != "http":
        raise ValueError("unsupported scope %s" % scope["type"])
    body = await body_of(receive)
    shown = {k: (v.decode("latin-1") if isinstance(v, bytes) else v) for k, v in scope.items()
             if k not in ("headers", "state")}
    shown["headers"] = [[n.decode("latin-1"), v.decode("latin-1")] for n, v in scope["headers"]]
    shown["header_types"] = sorted({type(x).__name__ for h in scope["headers"] for x in h})
    shown["body"] = body.decode()
    await respond(send, 201, json.dumps(shown).encode(),
                  [(b"content-type", b"application/json")])


async def test_http_scope_and_request_body():
    async with Server(scope_app) as srv, aiohttp.ClientSession() as http:
        async with http.post(srv.url + "/a%20b/caf%C3%A9?x=1&y=%20z", data=b"hello body",
                             headers={"X-Custom": "Value 1"}) as r:
            assert r.status == 201
            assert r.headers["Content-Type"] == "application/json"
            s = await r.json()
    assert s["type"] == "http"
    assert s["asgi"] == {"version": "3.0", "spec_version": "2.3"}
    assert s["http_version"] == "1.1"
    assert s["method"] == "POST"
    assert s["scheme"] == "http"
    assert s["path"] == "/a b/caf\u00e9"
    assert s["raw_path"] == "/a%20b/caf%C3%A9"
    assert s["query_string"] == "x=1&y=%20z"
    assert s["root_path"] == ""
    assert ["x-custom", "Value 1"] in s["headers"]
    assert all(n == n.lower() for n, _ in s["headers"])
    assert s["header_types"] == ["bytes"]
    assert s["client"][0] == "127.0.0.1" and isinstance(s["client"][1], int)
    assert s["server"] == ["127.0.0.1", srv.port]
    assert s["body"] == "hello body"
    assert srv.errors == []


async def test_requests_client_in_a_thread_and_repeated_headers():
    async def app(scope, receive, send):
        await body_of(receive)
        await respond(send, 200, b"cookies", [(b"set-cookie", b"a=1"), (b"set-cookie", b"b=2"),
                                              (b"content-length", b"999"),  # the server's job
                                              (b"x-latin", "caf\u00e9".encode("latin-1"))])

    async with Server(app) as srv:
        r = await asyncio.to_thread(requests.get, srv.url + "/", timeout=DEADLINE)
    assert r.status_code == 200 and r.content == b"cookies"
    assert r.raw.headers.getlist("Set-Cookie") == ["a=1", "b=2"]
    assert r.headers["Content-Length"] == "7"
    assert r.raw.headers["X-Latin"] == "caf\u00e9"  # latin-1 on the wire, as given


# ------------------------------------------------------------ streaming
async def test_streamed_response_is_read_incrementally():
    step = asyncio.Event()

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        for i in range(3):
            await send({"type": "http.response.body", "body": b"part%d;" % i, "more_body": True})
            await step.wait()  # the next part only after the client saw this one
            step.clear()
        await send({"type": "http.response.body", "body": b"end", "more_body": False})

    async with Server(app) as srv, aiohttp.ClientSession() as http:
        async with http.get(srv.url + "/stream") as r:
            assert r.headers["Transfer-Encoding"] == "chunked"
            assert "Content-Length" not in r.headers
            got = b""
            for i in range(3):
                want = got + b"part%d;" % i
                while len(got) < len(want):
                    got += await asyncio.wait_for(r.content.readany(), DEADLINE)
                assert got == want
                step.set()
            got += await asyncio.wait_for(r.content.read(), DEADLINE)
    assert got == b"part0;part1;part2;end"
    assert srv.errors == []


async def test_streamed_response_is_paced_by_a_slow_client():
    window, chunk, count = 64 * 1024, 64 * 1024, 128  # 8 MiB in all
    queued = []

    async def app(scope, receive, send):
        conn, = [c for c in srv.server.manager.connections if not c.is_listening]
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(count):
            await send({"type": "http.response.body", "body": b"z" * chunk, "more_body": True})
            queued.append(conn.send_len)
        await send({"type": "http.response.body", "body": b""})

    async with Server(app, stream_window=window) as srv:
        reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
        writer.transport.pause_reading()  # a client that does not read for a while
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        await asyncio.sleep(0.5)
        writer.transport.resume_reading()
        data = await asyncio.wait_for(reader.read(), DEADLINE)
        writer.close()
    assert data.startswith(b"HTTP/1.1 200")
    assert data.count(b"z") == chunk * count
    assert len(queued) == count
    # send() waited each time more than the window was queued: memory stays
    # bounded by window + one chunk however slow the client is.
    assert max(queued) <= window + chunk + 64


async def test_disconnect_is_reported_to_the_app():
    seen = asyncio.get_running_loop().create_future()

    async def app(scope, receive, send):
        assert scope["type"] == "http"  # (no lifespan support)
        first = await receive()
        second = await receive()  # only the client's close ends this
        seen.set_result((first["type"], second["type"]))

    async with Server(app) as srv:
        reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(0)
        writer.close()
        assert await asyncio.wait_for(seen, DEADLINE) == ("http.request", "http.disconnect")


async def test_send_after_disconnect_stops_an_endless_stream():
    stopped = asyncio.get_running_loop().create_future()

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        try:
            while True:
                await send({"type": "http.response.body", "body": b"tick\n", "more_body": True})
                await asyncio.sleep(0.01)
        except OSError as e:
            stopped.set_result(type(e).__name__)
            raise

    async with Server(app) as srv:
        reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await asyncio.wait_for(reader.readuntil(b"tick\n"), DEADLINE)).startswith(
            b"HTTP/1.1 200")
        writer.close()
        assert await asyncio.wait_for(stopped, DEADLINE) == "ClientDisconnected"
    assert srv.errors == []  # not an application error


async def test_pipelined_requests_are_answered_in_order():
    async def app(scope, receive, send):
        await body_of(receive)
        if scope["path"] == "/slow":
            await asyncio.sleep(0.2)
        await respond(send, 200, scope["path"].encode())

    async with Server(app) as srv:
        got = await raw_exchange(
            srv.port, b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"
                      b"GET /fast HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert got.index(b"/slow") < got.index(b"/fast")
    assert got.count(b"HTTP/1.1 200") == 2


# ---------------------------------------------------------------- errors
async def test_app_error_before_the_response_gives_500():
    async def app(scope, receive, send):
        raise KeyError("boom")

    async with Server(app) as srv, aiohttp.ClientSession() as http:
        async with http.get(srv.url + "/") as r:
            assert r.status == 500
        async with http.get(srv.url + "/") as r:  # the connection still serves
            assert r.status == 500
    assert len(srv.errors) == 2 and isinstance(srv.errors[0], KeyError)


async def test_app_returning_without_a_response_gives_500():
    async def app(scope, receive, send):
        await receive()

    async with Server(app) as srv, aiohttp.ClientSession() as http:
        async with http.get(srv.url + "/") as r:
            assert r.status == 500


async def test_app_error_midway_through_a_stream_closes_the_connection():
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        raise RuntimeError("midway")

    async with Server(app) as srv:
        got = await raw_exchange(srv.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert got.startswith(b"HTTP/1.1 200") and b"partial" in got
    assert not got.endswith(b"0\r\n\r\n")  # never terminated as if complete
    assert [type(e) for e in srv.errors] == [RuntimeError]


async def test_protocol_misuse_is_an_app_error():
    async def app(scope, receive, send):
        await send({"type": "http.response.body", "body": b"no start"})

    async with Server(app) as srv, aiohttp.ClientSession() as http:
        async with http.get(srv.url + "/") as r:
            assert r.status == 500
    assert "http.response.start" in str(srv.errors[0])


# ------------------------------------------------------------- WebSocket
async def test_websocket_accept_echo_and_client_close_code():
    disconnect = asyncio.get_running_loop().create_future()
    scopes = []

    async def app(scope, receive, send):
        assert scope["type"] == "websocket"
        scopes.append(scope)
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept", "subprotocol": "chat",
                    "headers": [(b"x-extra", b"yes")]})
        while True:
            m = await receive()
            if m["type"] == "websocket.disconnect":
                disconnect.set_result(m["code"])
                return
            if m.get("text") is not None:
                await send({"type": "websocket.send", "text": "echo:" + m["text"]})
            else:
                await send({"type": "websocket.send", "bytes": b"echo:" + m["bytes"]})

    async with Server(app) as srv:
        async with websockets.connect("ws://127.0.0.1:%d/ws?room=1" % srv.port,
                                      subprotocols=["other", "chat"]) as ws:
            assert ws.subprotocol == "chat"
            assert ws.response_headers["X-Extra"] == "yes"
            await ws.send("h\u00e9llo")
            assert await asyncio.wait_for(ws.recv(), DEADLINE) == "echo:h\u00e9llo"
            await ws.send(b"\x00\x01")
            assert await asyncio.wait_for(ws.recv(), DEADLINE) == b"echo:\x00\x01"
            await ws.close(code=4000, reason="bye")
        assert await asyncio.wait_for(disconnect, DEADLINE) == 4000
    s = scopes[0]
    assert s["scheme"] == "ws" and s["path"] == "/ws" and s["query_string"] == b"room=1"
    assert s["subprotocols"] == ["other", "chat"]
    assert "method" not in s
    assert srv.errors == []


async def test_websocket_close_before_accept_gives_403():
    async def app(scope, receive, send):
        await receive()
        await send({"type": "websocket.close"})

    async with Server(app) as srv:
        with pytest.raises(websockets.exceptions.InvalidStatusCode) as ei:
            await websockets.connect("ws://127.0.0.1:%d/" % srv.port)
        assert ei.value.status_code == 403


async def test_websocket_server_close_with_code():
    async def app(scope, receive, send):
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": "last"})
        await send({"type": "websocket.close", "code": 4001, "reason": "done"})

    async with Server(app) as srv:
        async with websockets.connect("ws://127.0.0.1:%d/" % srv.port) as ws:
            assert await asyncio.wait_for(ws.recv(), DEADLINE) == "last"
            with pytest.raises(websockets.exceptions.ConnectionClosed):
                await asyncio.wait_for(ws.recv(), DEADLINE)
            assert ws.close_code == 4001 and ws.close_reason == "done"


async def test_websocket_app_error_after_accept_closes_with_1011():
    async def app(scope, receive, send):
        await receive()
        await send({"type": "websocket.accept"})
        raise ValueError("ws boom")

    async with Server(app) as srv:
        async with websockets.connect("ws://127.0.0.1:%d/" % srv.port) as ws:
            with pytest.raises(websockets.exceptions.ConnectionClosed):
                await asyncio.wait_for(ws.recv(), DEADLINE)
            assert ws.close_code == 1011
    assert [type(e) for e in srv.errors] == [ValueError]


# -------------------------------------------------------------- lifespan
async def test_lifespan_startup_state_and_shutdown():
    events = []

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                m = await receive()
                events.append(m["type"])
                if m["type"] == "lifespan.startup":
                    scope["state"]["db"] = "connected"
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        await body_of(receive)
        await respond(send, 200, scope["state"]["db"].encode())

    srv = Server(app)
    async with srv, aiohttp.ClientSession() as http:
        assert events == ["lifespan.startup"]
        async with http.get(srv.url + "/") as r:
            assert await r.text() == "connected"
    assert events == ["lifespan.startup", "lifespan.shutdown"]
    assert srv.errors == []


async def test_lifespan_startup_failed_raises():
    async def app(scope, receive, send):
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "no database"})

    server = ASGIServer(app)
    with pytest.raises(RuntimeError, match="no database"):
        await server.start("http://127.0.0.1:0")
    assert server.manager is None


async def test_app_without_lifespan_is_tolerated():
    async with Server(scope_app) as srv, aiohttp.ClientSession() as http:
        async with http.get(srv.url + "/") as r:
            assert r.status == 201
    assert srv.errors == []  # its ValueError on the lifespan scope is not reported


# ------------------------------------------------- the C-level additions
def test_reply_takes_header_pairs_and_bytes():
    def handler(conn, ev, data):
        if ev == cm.MG_EV_HTTP_MSG:
            conn.reply(200, b"ok", [(b"X-A", b"1"), ("X-A", "2"), [b"X-B", "3"]])

    with cm.Manager(handler) as mgr:
        port = mgr.listen("http://127.0.0.1:0").local_addr[1]
        with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            got = b""
            while not got.endswith(b"ok"):
                mgr.poll(10)
                s.setblocking(False)
                try:
                    got += s.recv(4096)
                except BlockingIOError:
                    pass
        assert b"X-A: 1\r\nX-A: 2\r\nX-B: 3\r\n" in got
        conn = mgr.listen("http://127.0.0.1:0")
        with pytest.raises(TypeError):
            conn.reply(200, b"", [("only-a-name",)])
        with pytest.raises(ValueError):
            conn.reply(200, b"", [(b"X-Bad", b"a\r\nb")])


async def test_ws_upgrade_later_from_a_kept_request_head():
    """ws_upgrade() with the bytes of a request head, after the HTTP_MSG
    handler returned; bad bytes give ValueError."""
    kept = {}

    def handler(conn, ev, data):
        if ev == cm.MG_EV_HTTP_MSG:
            target = data.uri
            kept["head"] = ("GET %s HTTP/1.1\r\n" % target + "".join(
                "%s: %s\r\n" % hv for hv in data.headers()) + "\r\n").encode()
            kept["conn"] = conn
            kept["ready"].set()
        elif ev == cm.MG_EV_WS_MSG:
            conn.ws_send("later:" + data.text)

    kept["ready"] = asyncio.Event()
    async with cm.AsyncManager(handler) as amgr:
        port = amgr.listen("http://127.0.0.1:0").local_addr[1]
        connecting = asyncio.ensure_future(websockets.connect("ws://127.0.0.1:%d/x" % port))
        await asyncio.wait_for(kept["ready"].wait(), DEADLINE)
        await asyncio.sleep(0.05)  # well after the handler returned
        conn = kept["conn"]
        with pytest.raises(ValueError):
            conn.ws_upgrade(b"GET / HTTP/1.1\r\n")  # incomplete
        with pytest.raises(ValueError):
            conn.ws_upgrade(kept["head"] + b"extra")  # more than one head
        assert conn.ws_upgrade(kept["head"]) is True
        ws = await asyncio.wait_for(connecting, DEADLINE)
        await ws.send("hi")
        assert await asyncio.wait_for(ws.recv(), DEADLINE) == "later:hi"
        await ws.close()


# ------------------------------------------------------------- Starlette
async def test_starlette_app():
    starlette = pytest.importorskip("starlette")
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, StreamingResponse
    from starlette.routing import Route, WebSocketRoute

    started = []

    async def hello(request):
        body = await request.body()
        return JSONResponse({"path": request.url.path, "q": request.query_params.get("q"),
                             "len": len(body)})

    async def stream(request):
        async def gen():
            for i in range(3):
                yield b"s%d " % i
        return StreamingResponse(gen(), media_type="text/plain")

    async def ws_echo(websocket):
        await websocket.accept()
        text = await websocket.receive_text()
        await websocket.send_text(text.upper())
        await websocket.close()

    @contextlib.asynccontextmanager
    async def lifespan(app):
        started.append(True)
        yield

    app = Starlette(routes=[Route("/hello", hello, methods=["GET", "POST"]),
                            Route("/stream", stream), WebSocketRoute("/ws", ws_echo)],
                    lifespan=lifespan)
    assert starlette.__version__
    async with Server(app) as srv, aiohttp.ClientSession() as http:
        assert started == [True]
        async with http.post(srv.url + "/hello?q=x", data=b"12345") as r:
            assert await r.json() == {"path": "/hello", "q": "x", "len": 5}
        async with http.get(srv.url + "/stream") as r:
            assert await r.read() == b"s0 s1 s2 "
        async with http.get(srv.url + "/missing") as r:
            assert r.status == 404
        async with websockets.connect("ws://127.0.0.1:%d/ws" % srv.port) as ws:
            await ws.send("shout")
            assert await asyncio.wait_for(ws.recv(), DEADLINE) == "SHOUT"
    assert srv.errors == []


# ------------------------------------------- bodiless responses, HTTPS
async def test_no_body_statuses_and_head_are_never_chunked():
    async def app(scope, receive, send):
        if scope["type"] != "http":
            raise ValueError("no lifespan")
        status = int(scope["path"][1:])
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"dropped", "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async with Server(app) as srv:
        got = await raw_exchange(
            srv.port, b"GET /204 HTTP/1.1\r\nHost: x\r\n\r\n"
                      b"HEAD /200 HTTP/1.1\r\nHost: x\r\n\r\n"
                      b"GET /304 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert got.count(b"HTTP/1.1 ") == 3
    assert b"dropped" not in got
    head, rest = got.split(b"HTTP/1.1 200", 1)[1].split(b"\r\n\r\n", 1)
    assert rest.startswith(b"HTTP/1.1 304")  # HEAD: a head only, no chunk framing
    assert srv.errors == []


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    import subprocess
    d = tmp_path_factory.mktemp("certs")
    subprocess.run(["/usr/bin/python3", "-m", "trustme", "-d", str(d), "-i", "127.0.0.1"],
                   check=True, capture_output=True)
    return d


async def test_https_and_wss(certs):
    import ssl

    async def app(scope, receive, send):
        if scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.send", "text": scope["scheme"]})
            await send({"type": "websocket.close"})
            return
        if scope["type"] != "http":
            raise ValueError("no lifespan")
        await respond(send, 200, scope["scheme"].encode())

    tls = cm.TlsOpts(cert=(certs / "server.pem").read_text(), key=(certs / "server.key").read_text())
    ctx = ssl.create_default_context(cafile=str(certs / "client.pem"))
    server = ASGIServer(app, tls=tls)
    lst = await server.start("https://127.0.0.1:0")
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(url_of(lst, "https") + "/", ssl=ctx) as r:
                assert await r.text() == "https"
        async with websockets.connect("wss://127.0.0.1:%d/" % lst.local_addr[1], ssl=ctx) as ws:
            assert await asyncio.wait_for(ws.recv(), DEADLINE) == "wss"
    finally:
        await server.stop()


async def test_bad_response_headers_give_500_not_a_broken_response():
    async def app(scope, receive, send):
        if scope["type"] != "http":
            raise ValueError("no lifespan")
        await respond(send, 200, b"x", [(b"x-evil", b"a\r\nInjected: yes")])

    async with Server(app) as srv:
        got = await raw_exchange(srv.port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert got.startswith(b"HTTP/1.1 500") and b"Injected" not in got
    assert [type(e) for e in srv.errors] == [ValueError]


SERVE_SCRIPT = r'''
import sys
from cymongoose.asgi import serve

async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            m = await receive()
            print(m["type"], flush=True)
            await send({"type": m["type"] + ".complete"})
            if m["type"] == "lifespan.shutdown":
                return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"served"})

serve(app, "http://127.0.0.1:%s" % sys.argv[1])
'''


async def test_serve_runs_until_sigterm(tmp_path):
    import os
    import signal
    import subprocess
    with socket.socket() as s:  # a free port (serve() takes a URL, not a listener)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    script = tmp_path / "serve_app.py"
    script.write_text(SERVE_SCRIPT)
    env = dict(os.environ, PYTHONPATH=os.path.join(os.path.dirname(__file__), "..", "..", "python"))
    proc = subprocess.Popen(["/usr/bin/python3", str(script), str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout.readline() == b"lifespan.startup\n"
        for _ in range(200):  # listening starts right after the startup
            try:
                r = await asyncio.to_thread(requests.get, "http://127.0.0.1:%d/" % port, timeout=5)
                break
            except requests.ConnectionError:
                await asyncio.sleep(0.05)
        assert r.text == "served"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=DEADLINE)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert out == b"lifespan.shutdown\n"


async def test_listen_options_and_a_slow_app_under_an_idle_timeout():
    async def app(scope, receive, send):
        if scope["type"] != "http":
            raise ValueError("no lifespan")
        body = await body_of(receive)
        await asyncio.sleep(0.6)  # longer than the idle timeout: a response is pending
        await respond(send, 200, b"%d" % len(body))

    server = ASGIServer(app)
    lst = await server.start("http://127.0.0.1:0", http_max_body=1000, http_idle_timeout_ms=200)
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(url_of(lst) + "/", data=b"x" * 1000) as r:
                assert (r.status, await r.text()) == (200, "1000")
            async with http.post(url_of(lst) + "/", data=b"x" * 1001) as r:
                assert r.status == 413
    finally:
        await server.stop()


async def test_start_fails_cleanly_when_the_address_is_taken():
    async def app(scope, receive, send):
        raise ValueError("unused")

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        server = ASGIServer(app)
        with pytest.raises(RuntimeError):
            await server.start("http://127.0.0.1:%d" % s.getsockname()[1])
        assert server.manager is None


async def test_invalid_websocket_handshake_gets_400_and_a_disconnect():
    got = asyncio.get_running_loop().create_future()

    async def app(scope, receive, send):
        if scope["type"] != "websocket":
            raise ValueError("no lifespan")
        await receive()
        await send({"type": "websocket.accept"})
        got.set_result(await receive())

    async with Server(app) as srv:
        reply = await raw_exchange(  # no Sec-WebSocket-Key
            srv.port, b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                      b"Connection: upgrade, close\r\nSec-WebSocket-Version: 13\r\n\r\n")
        assert reply.startswith(b"HTTP/1.1 400")
        assert (await asyncio.wait_for(got, DEADLINE))["type"] == "websocket.disconnect"


async def test_websocket_close_with_an_invalid_code_is_an_app_error():
    async def app(scope, receive, send):
        if scope["type"] != "websocket":
            raise ValueError("no lifespan")
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": 1005})

    async with Server(app) as srv:
        async with websockets.connect("ws://127.0.0.1:%d/" % srv.port) as ws:
            with pytest.raises(websockets.exceptions.ConnectionClosed):
                await asyncio.wait_for(ws.recv(), DEADLINE)
            assert ws.close_code == 1011
    assert [type(e) for e in srv.errors] == [ValueError]


async def test_example_asgi_app(tmp_path):
    """examples/python/asgi_app.py in its own process, until SIGTERM."""
    import os
    import signal
    import subprocess
    root = os.path.join(os.path.dirname(__file__), "..", "..")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, PYTHONPATH=os.path.join(root, "python"))
    proc = subprocess.Popen(["/usr/bin/python3", os.path.join(root, "examples", "python",
                                                              "asgi_app.py"), str(port)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    base = "http://127.0.0.1:%d" % port
    try:
        assert proc.stdout.readline() == b"startup\n"
        async with aiohttp.ClientSession() as http:
            for _ in range(200):
                try:
                    async with http.get(base + "/") as r:
                        assert await r.text() == "hello from ASGI"
                    break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.05)
            async with http.post(base + "/echo", data=b"echo me") as r:
                assert await r.read() == b"echo me"
            async with http.get(base + "/stream") as r:
                assert (await r.text()).splitlines() == ["line %d" % i for i in range(5)]
        async with websockets.connect("ws://127.0.0.1:%d/ws" % port) as ws:
            await ws.send("hi")
            assert await asyncio.wait_for(ws.recv(), DEADLINE) == "hi"
            await ws.send(b"\x01")
            assert await asyncio.wait_for(ws.recv(), DEADLINE) == b"\x01"
            await ws.send("bye")
            with pytest.raises(websockets.exceptions.ConnectionClosedOK):
                await asyncio.wait_for(ws.recv(), DEADLINE)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=DEADLINE)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert out == b"shutdown\n"
