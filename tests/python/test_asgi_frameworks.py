"""Real frameworks on cymongoose.asgi: Starlette, FastAPI (HTTP and
WebSocket) and Django's ASGI handler (HTTP; Django alone has no WebSocket),
with real clients (aiohttp, websockets, raw sockets)."""
import asyncio
import contextvars
import sys
import types

import aiohttp
import pytest
import websockets

from cymongoose.asgi import ASGIServer

starlette = pytest.importorskip("starlette")
from starlette.applications import Starlette  # noqa: E402
from starlette.middleware import Middleware  # noqa: E402
from starlette.middleware.base import BaseHTTPMiddleware  # noqa: E402
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse  # noqa: E402
from starlette.routing import Route, WebSocketRoute  # noqa: E402


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


async def serving(app, fn, **kw):
    errors = []
    server = ASGIServer(app, error_handler=errors.append, **kw)
    lst = await server.start("http://127.0.0.1:0")
    try:
        await fn("127.0.0.1:%d" % lst.local_addr[1])
    finally:
        await server.stop()
    assert not errors, errors


REQUEST_ID = contextvars.ContextVar("request_id", default=None)


class Tag(BaseHTTPMiddleware):
    """A BaseHTTPMiddleware (anyio task group around the app, needs a task)."""

    async def dispatch(self, request, call_next):
        response = await call_next(request)
        response.headers["x-tag"] = "yes"
        return response


def starlette_app(middleware=()):
    async def hello(request):
        return PlainTextResponse("Hello, World!")

    async def echo(request):
        body = await request.body()
        return JSONResponse({"len": len(body), "q": request.query_params.get("q"),
                             "path": request.url.path,
                             "h": request.headers.get("x-thing")})

    async def stream(request):
        async def gen():
            for i in range(3):
                await asyncio.sleep(0)
                yield b"part%d " % i
        return StreamingResponse(gen(), media_type="text/plain")

    async def ctx(request):
        # A context variable set by one request must not be seen by the next.
        before = REQUEST_ID.get()
        REQUEST_ID.set(request.query_params["id"])
        return JSONResponse({"before": before})

    def sync_view(request):  # runs in a thread (anyio.to_thread)
        return PlainTextResponse("sync")

    async def ws(websocket):
        await websocket.accept(subprotocol="chat")
        while True:
            msg = await websocket.receive_text()
            if msg == "bye":
                await websocket.close(code=4000)
                return
            await websocket.send_text("echo:" + msg)

    return Starlette(routes=[Route("/", hello), Route("/echo", echo, methods=["POST"]),
                             Route("/stream", stream), Route("/ctx", ctx),
                             Route("/sync", sync_view), WebSocketRoute("/ws", ws)],
                     middleware=list(middleware))


@pytest.mark.parametrize("middleware", [(), (Middleware(Tag),)], ids=["plain", "base-middleware"])
def test_starlette_http(middleware):
    app = starlette_app(middleware)

    async def fn(addr):
        async with aiohttp.ClientSession() as s:
            async with s.get("http://%s/" % addr) as r:
                assert r.status == 200 and await r.text() == "Hello, World!"
                assert r.headers.get("x-tag") == ("yes" if middleware else None)
            body = b"x" * 200000  # streamed to the app (> stream_body)
            async with s.post("http://%s/echo?q=%%C3%%A9" % addr, data=body,
                              headers={"X-Thing": "t"}) as r:
                assert await r.json() == {"len": 200000, "q": "é", "path": "/echo", "h": "t"}
            async with s.post("http://%s/echo" % addr, data=b"abc") as r:
                assert (await r.json())["len"] == 3
            async with s.get("http://%s/stream" % addr) as r:
                assert await r.text() == "part0 part1 part2 "
            async with s.get("http://%s/sync" % addr) as r:
                assert await r.text() == "sync"
            for i in range(3):  # one keep-alive connection: the same host task
                async with s.get("http://%s/ctx?id=%d" % (addr, i)) as r:
                    assert (await r.json())["before"] is None
            async with s.get("http://%s/nowhere" % addr) as r:
                assert r.status == 404
    run(serving(app, fn))


def test_starlette_websocket():
    async def fn(addr):
        async with websockets.connect("ws://%s/ws" % addr, subprotocols=["chat"]) as ws:
            assert ws.subprotocol == "chat"
            for i in range(5):
                await ws.send("m%d" % i)
                assert await ws.recv() == "echo:m%d" % i
            await ws.send("bye")
            with pytest.raises(websockets.ConnectionClosed) as info:
                await ws.recv()
            assert info.value.rcvd.code == 4000
    run(serving(starlette_app(), fn))


def test_fastapi_http_and_websocket():
    fastapi = pytest.importorskip("fastapi")
    from pydantic import BaseModel

    app = fastapi.FastAPI()

    class Item(BaseModel):
        name: str
        qty: int

    @app.get("/items/{item_id}")
    async def read_item(item_id: int, q: str = None):
        return {"item_id": item_id, "q": q}

    @app.post("/items")
    async def create(item: Item):
        return {"name": item.name, "total": item.qty * 2}

    @app.get("/sync")
    def sync_route():
        return {"sync": True}

    @app.websocket("/ws")
    async def ws(websocket: fastapi.WebSocket):
        await websocket.accept()
        data = await websocket.receive_bytes()
        await websocket.send_bytes(data[::-1])
        await websocket.close()

    async def fn(addr):
        async with aiohttp.ClientSession() as s:
            async with s.get("http://%s/items/7?q=z" % addr) as r:
                assert await r.json() == {"item_id": 7, "q": "z"}
            async with s.get("http://%s/items/nope" % addr) as r:
                assert r.status == 422
            async with s.post("http://%s/items" % addr, json={"name": "a", "qty": 21}) as r:
                assert await r.json() == {"name": "a", "total": 42}
            async with s.get("http://%s/sync" % addr) as r:
                assert await r.json() == {"sync": True}
        async with websockets.connect("ws://%s/ws" % addr) as w:
            await w.send(b"abc")
            assert await w.recv() == b"cba"
    run(serving(app, fn))


def test_django_asgi_handler():
    django = pytest.importorskip("django")
    from django.conf import settings
    from django.http import HttpResponse, JsonResponse
    from django.urls import path

    async def hello(request):
        return HttpResponse("Hello from Django")

    def upload(request):  # a sync view: Django runs it in a thread
        return JsonResponse({"len": len(request.body), "method": request.method,
                             "q": request.GET.get("q")})

    urls = types.ModuleType("cm_test_django_urls")
    urls.urlpatterns = [path("", hello), path("upload", upload)]
    sys.modules[urls.__name__] = urls
    if not settings.configured:
        settings.configure(ROOT_URLCONF=urls.__name__, ALLOWED_HOSTS=["*"], DEBUG=False,
                           SECRET_KEY="test", MIDDLEWARE=[], INSTALLED_APPS=[],
                           DATA_UPLOAD_MAX_MEMORY_SIZE=None)
    django.setup()
    from django.core.asgi import get_asgi_application
    app = get_asgi_application()

    async def fn(addr):
        async with aiohttp.ClientSession() as s:
            async with s.get("http://%s/" % addr) as r:
                assert r.status == 200 and await r.text() == "Hello from Django"
            body = b"y" * 300000
            async with s.post("http://%s/upload?q=1" % addr, data=body) as r:
                assert await r.json() == {"len": 300000, "method": "POST", "q": "1"}
            async with s.get("http://%s/missing" % addr) as r:
                assert r.status == 404
    run(serving(app, fn))
