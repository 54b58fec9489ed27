"""No leaks in the ASGI/WSGI fast paths: the C scope builder, streamed
bodies (http_body_*), and the ASGI server over many requests."""
import asyncio
import gc
import socket
import sys
import threading
import tracemalloc

import cymongoose as cm
from cymongoose._mongoose import _AsgiScopeBuilder
from cymongoose.asgi import ASGIServer
from test_leaks import c_heap_in_use


def serve_requests(handler, requests, n, big_body=False):
    """n times: one connection sends requests, reads until closed."""
    mgr = cm.Manager(handler)
    port = mgr.listen("http://127.0.0.1:0", http=True, http_max_body=1 << 40).local_addr[1]
    try:
        for _ in range(n):
            done = threading.Event()

            def client():
                with socket.create_connection(("127.0.0.1", port)) as s:
                    s.sendall(requests)
                    s.settimeout(20)
                    while s.recv(65536):
                        pass
                done.set()
            t = threading.Thread(target=client)
            t.start()
            while not done.is_set():
                mgr.poll(10)
            t.join()
    finally:
        mgr.close()


def test_scope_builder_and_body_stream_refcounts():
    builder = _AsgiScopeBuilder({"version": "3.0"})
    state = {"k": 1}
    client = ("127.0.0.1", 1234)
    scopes = []

    def handler(conn, ev, data):
        if ev == cm.MG_EV_HTTP_HDRS and data.method == "POST":
            scopes.append(builder.http(data, False, client, conn.local_addr, state))
            scopes.append(builder.websocket(data, True, client, conn.local_addr, state))
            conn.http_body_stream(data)
            conn.http_body_read(10)
        elif ev == cm.MG_EV_READ and conn.http_body_left():
            conn.http_body_read()
            if conn.http_body_left() == 0:
                conn.reply(200, "ok\n", {"Connection": "close"})
                conn.http_body_end()

    req = (b"POST /a%20b?x=1 HTTP/1.1\r\nHost: x\r\nX-A: 1\r\nConnection: close\r\n"
           b"Sec-WebSocket-Protocol: chat, , v2 \r\n"
           b"Content-Length: 100\r\n\r\n" + b"q" * 100)
    serve_requests(handler, req, 20)  # warm up
    gc.collect()
    rc = [sys.getrefcount(o) for o in (state, client, builder)]
    heap = c_heap_in_use()
    scopes.clear()
    tracemalloc.start()
    snap = tracemalloc.take_snapshot()
    serve_requests(handler, req, 200)
    assert len(scopes) == 400
    w = scopes[-1]
    assert w["type"] == "websocket" and w["scheme"] == "wss" and "method" not in w
    assert w["subprotocols"] == ["chat", "v2"] and w["path"] == "/a b"
    s = scopes[-2]
    assert s["path"] == "/a b" and s["raw_path"] == b"/a%20b" and s["query_string"] == b"x=1"
    assert [b"x-a", b"1"] in s["headers"] and s["client"] == ["127.0.0.1", 1234]
    assert s["state"] == state and s["state"] is not state and s["method"] == "POST"
    scopes.clear()
    gc.collect()
    grown = sum(st.size_diff for st in tracemalloc.take_snapshot().compare_to(snap, "filename"))
    tracemalloc.stop()
    assert [sys.getrefcount(o) for o in (state, client, builder)] == rc
    assert grown < 256 * 1024, grown
    assert c_heap_in_use() - heap < 1 << 20


def test_asgi_server_many_requests_no_growth():
    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"hi"})

    async def burst(port, n):
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * (n - 1) +
                b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        got = await asyncio.wait_for(r.read(), 20)
        w.close()
        assert got.count(b"HTTP/1.1 200") == n

    async def main():
        server = ASGIServer(app, lifespan="off")
        port = (await server.start("http://127.0.0.1:0")).local_addr[1]
        try:
            for _ in range(5):
                await burst(port, 50)
            gc.collect()
            tasks = len(asyncio.all_tasks())
            refs = sys.getrefcount(app)
            tracemalloc.start()
            snap = tracemalloc.take_snapshot()
            for _ in range(40):
                await burst(port, 50)
            await asyncio.sleep(0.05)
            gc.collect()
            grown = sum(st.size_diff for st in
                        tracemalloc.take_snapshot().compare_to(snap, "filename"))
            tracemalloc.stop()
            assert grown < 256 * 1024, grown
            assert len(asyncio.all_tasks()) <= tasks  # hosts of closed connections are gone
            assert not server._tasks and not server._core.channels()
            assert sys.getrefcount(app) == refs
        finally:
            await server.stop()
    asyncio.run(main())
