"""The ASGI server's fast paths keep behaviour unchanged: the C handler hook
of the event trampoline (the server's _AsgiCore takes its events without a
Python call, while Python handlers on the same manager still get theirs),
the reused response header block, the lazily made http.request message and
several manager turns per wake-up."""
import asyncio

import aiohttp

import cymongoose as cm
from cymongoose.asgi import ASGIServer

DEADLINE = 20


async def hello(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"hello " + scope["path"].encode()})


async def get(session, url):
    async with session.get(url) as r:
        return r.status, dict(r.headers), await r.read()


async def test_python_handler_on_the_same_manager_gets_its_events_unchanged():
    server = ASGIServer(hello, lifespan="off")
    asgi = await server.start("http://127.0.0.1:0")
    seen = []

    def plain(conn, ev, data):
        seen.append((type(conn).__name__, type(ev).__name__, ev, type(data).__name__))
        if ev == cm.MG_EV_HTTP_MSG:
            assert data.uri == "/plain"
            conn.reply(200, b"plain handler")

    try:
        other = server.async_manager.listen("http://127.0.0.1:0", handler=plain)
        async with aiohttp.ClientSession() as s:
            for _ in range(2):  # interleaved, on keep-alive connections
                st, _, body = await asyncio.wait_for(
                    get(s, "http://127.0.0.1:%d/asgi" % asgi.local_addr[1]), DEADLINE)
                assert (st, body) == (200, b"hello /asgi")
                st, _, body = await asyncio.wait_for(
                    get(s, "http://127.0.0.1:%d/plain" % other.local_addr[1]), DEADLINE)
                assert (st, body) == (200, b"plain handler")
    finally:
        await server.stop()
    evs = [e[2] for e in seen]
    # The Python handler got the events as before: Connection, int, data objects.
    assert {e[0] for e in seen} == {"Connection"} and {e[1] for e in seen} == {"int"}
    assert cm.MG_EV_ACCEPT in evs and cm.MG_EV_READ in evs and cm.MG_EV_CLOSE in evs
    msgs = [e for e in seen if e[2] == cm.MG_EV_HTTP_MSG]
    assert len(msgs) == 2 and {e[3] for e in msgs} == {"HttpMessage"}
    assert {e[3] for e in seen if e[2] == cm.MG_EV_READ} == {"NoneType"}


async def test_the_c_handler_called_from_python_serves_as_from_the_trampoline():
    """A Python handler may hand events on to the server's core: the core's
    call path (handler(conn, ev, data)) takes the message out of data."""
    server = ASGIServer(hello, lifespan="off")
    await server.start("http://127.0.0.1:0")
    core = server._core
    passed = []

    def wrapper(conn, ev, data):
        passed.append(ev)
        return core(conn, ev, data)

    try:
        lst = server.async_manager.listen("http://127.0.0.1:0", handler=wrapper)
        async with aiohttp.ClientSession() as s:
            for path in ("/a", "/b"):
                st, _, body = await asyncio.wait_for(
                    get(s, "http://127.0.0.1:%d%s" % (lst.local_addr[1], path)), DEADLINE)
                assert (st, body) == (200, b"hello " + path.encode())
    finally:
        await server.stop()
    assert passed.count(cm.MG_EV_HTTP_MSG) == 2
    try:
        core("not a connection", cm.MG_EV_READ, None)
    except TypeError:
        pass
    else:
        raise AssertionError("a non-Connection was accepted")


async def test_equal_header_lists_reuse_a_block_and_different_ones_do_not():
    shared = [(b"content-type", b"text/plain"), (b"x-kind", b"shared")]

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        kind = scope["path"]
        if kind == "/shared":  # the same list object every time
            headers = shared
        elif kind == "/copy":  # equal content, new objects (as frameworks build them)
            headers = [[bytes(b"content-type"), b"text/plain"],
                       (b"x-kind", b"".join([b"sha", b"red"]))]
        elif kind == "/other":
            headers = [(b"content-type", b"text/plain"), (b"x-kind", b"other")]
        elif kind == "/mutated":  # the shared list changed in place
            shared.append((b"x-extra", b"1"))
            headers = shared
        elif kind == "/bad":
            headers = [(b"content-type", b"text/plain"), (b"x-kind", b"a\r\nInjected: 1")]
        else:
            headers = []
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": kind.encode()})

    errors = []
    server = ASGIServer(app, lifespan="off", error_handler=errors.append)
    lst = await server.start("http://127.0.0.1:0")
    base = "http://127.0.0.1:%d" % lst.local_addr[1]
    try:
        async with aiohttp.ClientSession() as s:
            got = {}
            for path in ("/shared", "/shared", "/copy", "/other", "/shared", "/mutated",
                         "/bad", "/shared", "/none"):
                got.setdefault(path, []).append(
                    await asyncio.wait_for(get(s, base + path), DEADLINE))
    finally:
        await server.stop()
    for st, h, body in got["/shared"][:2] + got["/copy"]:
        assert st == 200 and h["x-kind"] == "shared" and "x-extra" not in h
    st, h, _ = got["/other"][0]
    assert h["x-kind"] == "other"
    st, h, _ = got["/mutated"][0]
    assert h["x-kind"] == "shared" and h["x-extra"] == "1"
    st, h, _ = got["/shared"][3]  # after the mutation: the list has three pairs now
    assert h["x-extra"] == "1"
    assert got["/bad"][0][0] == 500 and [type(e) for e in errors] == [ValueError]
    st, h, body = got["/none"][0]
    assert st == 200 and "x-kind" not in h and body == b"/none"


async def test_request_body_message_is_made_when_asked_and_only_once():
    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        first = await receive()
        body = repr((first["type"], first["body"], first.get("more_body"))).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})
        after = await receive()  # the response is complete: the client is gone for us
        assert after == {"type": "http.disconnect"}, after

    server = ASGIServer(app, lifespan="off")
    lst = await server.start("http://127.0.0.1:0")
    base = "http://127.0.0.1:%d" % lst.local_addr[1]
    try:
        async with aiohttp.ClientSession() as s:
            async with s.post(base + "/", data=b"payload") as r:
                assert await r.read() == repr(("http.request", b"payload", False)).encode()
            async with s.get(base + "/") as r:
                assert await r.read() == repr(("http.request", b"", False)).encode()
    finally:
        await server.stop()


async def test_other_tasks_run_while_the_server_is_busy():
    """Several manager turns per wake-up still leave the loop to other tasks."""
    server = ASGIServer(hello, lifespan="off")
    lst = await server.start("http://127.0.0.1:0")
    ticks = 0
    stop = asyncio.Event()

    async def ticker():
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0)

    url = "http://127.0.0.1:%d/x" % lst.local_addr[1]
    t = asyncio.ensure_future(ticker())
    try:
        async with aiohttp.ClientSession() as s:
            async def client():
                for _ in range(50):
                    st, _, body = await get(s, url)
                    assert (st, body) == (200, b"hello /x")
            before = ticks
            await asyncio.wait_for(asyncio.gather(*[client() for _ in range(8)]), DEADLINE)
            assert ticks - before > 50
    finally:
        stop.set()
        await t
        await server.stop()
