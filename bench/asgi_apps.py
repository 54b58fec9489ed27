"""The applications of the ASGI/WSGI benchmark, served unchanged by our
servers and by the peers (uvicorn, gunicorn): bare ASGI hello, Starlette
hello, WSGI hello and an ASGI WebSocket echo."""

HELLO = b"Hello, World!"
_HEADERS = [(b"content-type", b"text/plain")]


async def hello(scope, receive, send):
    """Bare ASGI 3.0 hello world (lifespan politely refused)."""
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
    await send({"type": "http.response.body", "body": HELLO})


async def ws_echo(scope, receive, send):
    """ASGI WebSocket echo on any path."""
    if scope["type"] != "websocket":
        return
    msg = await receive()
    if msg["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    while True:
        msg = await receive()
        if msg["type"] != "websocket.receive":
            return
        if msg.get("bytes") is not None:
            await send({"type": "websocket.send", "bytes": msg["bytes"]})
        else:
            await send({"type": "websocket.send", "text": msg["text"]})


def _starlette_app():
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def index(request):
        return PlainTextResponse("Hello, World!")

    return Starlette(routes=[Route("/", index)])


try:
    starlette = _starlette_app()
except ImportError:  # the peer is not installed: that suite is skipped
    starlette = None


def wsgi_hello(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "13")])
    return [HELLO]
