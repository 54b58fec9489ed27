"""cymongoose.asgi's receive()/send(): C awaitables the core resumes from
events while the app awaits only them, and an asyncio task once it awaits
anything else.  Edge cases: receive after disconnect, send after close,
asyncio.sleep mid-request, awaits from other tasks, cancellation."""
import asyncio
import contextvars
import gc
import sys

import pytest
import websockets

from cymongoose.asgi import ASGIServer, ClientDisconnected
from test_asgi import DEADLINE, Server, body_of, raw_exchange, respond

request_var = contextvars.ContextVar("request_var", default=None)


async def open_ws(port, path="/"):
    return await websockets.connect("ws://127.0.0.1:%d%s" % (port, path))


async def test_receive_after_disconnect_keeps_answering_disconnect():
    seen = []
    done = asyncio.Event()

    async def app(scope, receive, send):

        if scope["type"] == "lifespan":

            return
        await send({"type": "websocket.accept"})
        while True:
            m = await receive()
            seen.append(m["type"])
            if m["type"] == "websocket.disconnect":
                break
        again = [await receive(), await receive()]  # never blocks, never raises
        seen.extend(m["type"] for m in again)
        seen.append(again[0]["code"])
        done.set()

    async with Server(app) as srv:
        ws = await open_ws(srv.port)
        await ws.send("x")
        await ws.close(code=4001)
        await asyncio.wait_for(done.wait(), DEADLINE)
    assert seen == ["websocket.connect", "websocket.receive", "websocket.disconnect",
                    "websocket.disconnect", "websocket.disconnect", 4001]
    assert srv.errors == []


async def test_http_receive_after_response_and_after_disconnect():
    got = []

    async def app(scope, receive, send):

        if scope["type"] == "lifespan":

            return
        got.append(await receive())
        await respond(send, 200, b"ok")
        got.append(await receive())  # the response is complete: nothing more will come
        got.append(await receive())

    async with Server(app) as srv:
        reply = await raw_exchange(srv.port, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                                             b"Connection: close\r\n\r\nhi")
    assert reply.startswith(b"HTTP/1.1 200") and reply.endswith(b"ok")
    assert got[0] == {"type": "http.request", "body": b"hi", "more_body": False}
    assert got[1:] == [{"type": "http.disconnect"}] * 2
    assert srv.errors == []


async def test_send_after_websocket_close_raises_and_after_disconnect_too():
    raised = []
    done = asyncio.Event()

    async def app(scope, receive, send):

        if scope["type"] == "lifespan":

            return
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": 4002})
        try:
            await send({"type": "websocket.send", "text": "late"})
        except RuntimeError as e:
            raised.append(str(e))
        m = await receive()  # the client answers the close
        raised.append(m["type"])
        try:
            await send({"type": "websocket.send", "text": "later"})
        except ClientDisconnected:
            raised.append("ClientDisconnected")
        done.set()

    async with Server(app) as srv:
        ws = await open_ws(srv.port)
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), DEADLINE)
        assert ws.close_code == 4002
        await asyncio.wait_for(done.wait(), DEADLINE)
    assert raised == ["websocket.send after websocket.close", "websocket.disconnect",
                      "ClientDisconnected"]
    assert srv.errors == []


async def test_sleep_mid_request_falls_back_to_the_same_task_and_context():
    seen = {}

    async def app(scope, receive, send):

        if scope["type"] == "lifespan":

            return
        request_var.set(scope["path"])
        seen["before"] = asyncio.current_task()
        body = await body_of(receive)
        await asyncio.sleep(0.01)  # a real future: the host task takes over
        seen["after"] = asyncio.current_task()
        seen["var"] = request_var.get()
        await respond(send, 200, body + b"!")

    async with Server(app) as srv:
        for path in ("/a", "/b"):
            reply = await raw_exchange(
                srv.port, b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
                          b"Connection: close\r\n\r\nabc" % path.encode())
            assert reply.endswith(b"abc!")
            assert seen["before"] is seen["after"] and seen["before"] is not None
            assert seen["var"] == path
    assert request_var.get() is None  # the request's context was its own
    assert srv.errors == []


async def test_websocket_echo_before_and_after_a_sleep():
    """Parked in receive() (resumed by the core), then in a task after a
    sleep (receive() then hands the task a future): both deliver."""
    modes = []

    async def app(scope, receive, send):

        if scope["type"] == "lifespan":

            return
        await receive()
        await send({"type": "websocket.accept"})
        for i in range(6):
            m = await receive()
            if m["type"] != "websocket.receive":
                return
            if i == 2:
                await asyncio.sleep(0.01)
            modes.append((asyncio.current_task() is not None, receive.__self__.in_task))
            await send({"type": "websocket.send", "text": m["text"].upper()})

    async with Server(app) as srv:
        ws = await open_ws(srv.port)
        for i in range(6):
            await ws.send("m%d" % i)
            assert await asyncio.wait_for(ws.recv(), DEADLINE) == "M%d" % i
        await ws.close()
    assert modes == [(True, False)] * 2 + [(True, True)] * 4
    assert srv.errors == []


async def test_receive_awaited_from_another_task_with_a_timeout():
    got = []

    async def app(scope, receive, send):

        if scope["type"] == "lifespan":

            return
        await receive()
        await send({"type": "websocket.accept"})
        try:
            await asyncio.wait_for(receive(), 0.05)  # nothing comes: cancelled
        except asyncio.TimeoutError:
            got.append("timeout")
        m = await asyncio.wait_for(receive(), DEADLINE)  # from a task, then comes
        got.append(m.get("text"))
        m = await receive()  # back in this coroutine
        got.append(m.get("text"))
        await send({"type": "websocket.close"})

    async with Server(app) as srv:
        ws = await open_ws(srv.port)
        await asyncio.sleep(0.2)
        await ws.send("one")
        await ws.send("two")
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), DEADLINE)
    assert got == ["timeout", "one", "two"]
    assert srv.errors == []


async def test_an_awaitable_is_awaited_once():
    errors = []

    async def app(scope, receive, send):

        if scope["type"] == "lifespan":

            return
        op = receive()
        await op
        try:
            await op
        except RuntimeError as e:
            errors.append(str(e))
        receive()  # never awaited: harmless
        await respond(send, 200, b"ok")

    async with Server(app) as srv:
        reply = await raw_exchange(srv.port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert reply.endswith(b"ok")
    assert errors and "already awaited" in errors[0]


@pytest.mark.parametrize("in_task", [False, True])
async def test_stop_cancels_an_app_waiting_in_receive(in_task):
    """A streamed body that never comes: stop() lets the app run for
    shutdown_timeout, then throws CancelledError into it, wherever it waits
    (parked in receive(), or in a task after a sleep)."""
    events = []
    started = asyncio.Event()

    async def app(scope, receive, send):

        if scope["type"] == "lifespan":

            return
        m = await receive()
        events.append(len(m["body"]))
        if in_task:
            await asyncio.sleep(0)
        started.set()
        try:
            await receive()
        except asyncio.CancelledError:
            events.append("cancelled")
            raise

    server = ASGIServer(app, lifespan="off", shutdown_timeout=0.2, stream_body=10)
    port = (await server.start("http://127.0.0.1:0")).local_addr[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" + b"x" * 20)
    await writer.drain()
    await asyncio.wait_for(started.wait(), DEADLINE)
    await asyncio.wait_for(server.stop(), DEADLINE)
    writer.close()
    assert events == [20, "cancelled"]
    assert not server._tasks and not server._core.channels()


async def test_app_error_in_a_parked_coroutine_is_reported_and_answered_500():
    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            return
        await receive()
        await receive()  # streamed body: parked until more arrives
        raise ValueError("boom")

    errors = []
    server = ASGIServer(app, error_handler=errors.append, lifespan="off", stream_body=10)
    port = (await server.start("http://127.0.0.1:0")).local_addr[1]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\n\r\n" + b"x" * 20)
        await writer.drain()
        await asyncio.sleep(0.1)
        writer.write(b"y" * 20)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), DEADLINE)
        writer.close()
    finally:
        await server.stop()
    assert head.startswith(b"HTTP/1.1 500")
    assert [type(e) for e in errors] == [ValueError]


def test_parked_websockets_leave_no_references():
    """Many WebSocket messages through parked coroutines: the app's objects
    and the channels are released (refcounts back where they were)."""
    marker = object()

    async def app(scope, receive, send):

        if scope["type"] == "lifespan":

            return
        keep = marker  # a local of every app frame
        await receive()
        await send({"type": "websocket.accept"})
        while True:
            m = await receive()
            if m["type"] != "websocket.receive":
                return keep
            await send({"type": "websocket.send", "bytes": m["bytes"]})

    async def main():
        server = ASGIServer(app, lifespan="off")
        port = (await server.start("http://127.0.0.1:0")).local_addr[1]
        try:
            async def session(n):
                ws = await open_ws(port)
                for i in range(n):
                    await ws.send(b"%d" % i)
                    assert await asyncio.wait_for(ws.recv(), DEADLINE) == b"%d" % i
                await ws.close()
            await session(5)
            await asyncio.sleep(0.05)
            gc.collect()
            before = sys.getrefcount(marker), sys.getrefcount(app)
            for _ in range(10):
                await session(20)
            await asyncio.sleep(0.05)
            gc.collect()
            assert (sys.getrefcount(marker), sys.getrefcount(app)) == before
            assert not server._core.channels()
        finally:
            await server.stop()
    asyncio.run(main())


async def test_two_tasks_waiting_in_receive_both_get_a_message():
    got = []

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            return
        await receive()
        await send({"type": "websocket.accept"})

        async def one():
            got.append((await receive())["text"])
        await asyncio.gather(one(), one())  # both wait in receive() from tasks
        await send({"type": "websocket.send", "text": ",".join(sorted(got))})

    async with Server(app) as srv:
        ws = await open_ws(srv.port)
        await asyncio.sleep(0.05)
        await ws.send("a")
        await ws.send("b")
        assert await asyncio.wait_for(ws.recv(), DEADLINE) == "a,b"
        await ws.close()
    assert srv.errors == []
