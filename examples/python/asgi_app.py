"""A plain ASGI application (no framework) served by cymongoose.asgi.

    python3 examples/python/asgi_app.py [port]

GET /          -> "hello from ASGI"
GET /stream    -> five lines, one every 0.2 s (chunked)
POST /echo     -> the request body
ws://.../ws    -> echoes every message; "bye" closes with 1000
"""
import asyncio
import sys

from cymongoose.asgi import serve


async def lifespan(receive, send):
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            print("startup", flush=True)
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            print("shutdown", flush=True)
            await send({"type": "lifespan.shutdown.complete"})
            return


async def http(scope, receive, send):
    body = b""
    while True:  # the whole request body
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["path"] == "/stream":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        for i in range(5):
            await send({"type": "http.response.body", "body": b"line %d\n" % i,
                        "more_body": True})
            await asyncio.sleep(0.2)
        await send({"type": "http.response.body", "body": b""})
        return
    if scope["path"] == "/echo" and scope["method"] == "POST":
        status, reply = 200, body
    elif scope["path"] == "/":
        status, reply = 200, b"hello from ASGI"
    else:
        status, reply = 404, b"not found"
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": reply})


async def websocket(scope, receive, send):
    if scope["path"] != "/ws":
        await send({"type": "websocket.close"})  # 403
        return
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") == "bye":
            await send({"type": "websocket.close", "code": 1000})
            return
        await send({"type": "websocket.send", "text": message.get("text"),
                    "bytes": message.get("bytes")})


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        await lifespan(receive, send)
    elif scope["type"] == "http":
        await http(scope, receive, send)
    else:
        await websocket(scope, receive, send)


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8000
    serve(app, "http://127.0.0.1:%d" % port)
