"""A WSGI or ASGI app served by worker processes, for test_workers.py.

    python3 workers_app.py wsgi|asgi N DIR

Every response body is the pid of the worker that made it.  GET /slow
writes DIR/started, then waits (at most 20 s) until DIR/release exists: a
request in flight while the test signals the server.  Prints
"READY port pid pid..." once all workers listen, "EXIT code" at the end.
"""
import asyncio
import os
import sys
import time

kind, count, work_dir = sys.argv[1], int(sys.argv[2]), sys.argv[3]
# A draining worker gives an idle keep-alive connection this long: the
# test's clients are never idle that long, so no request races a close.
OPTIONS = dict(drain_idle_ms=10000, drain_timeout=20.0)


def started(port, pids):
    print("READY", port, *pids, flush=True)


def wait_release():
    open(os.path.join(work_dir, "started"), "w").close()
    end = time.monotonic() + 20
    while not os.path.exists(os.path.join(work_dir, "release")) and time.monotonic() < end:
        time.sleep(0.01)


def wsgi_app(environ, start_response):
    if environ["PATH_INFO"] == "/slow":
        wait_release()
    start_response("200 OK", [("Content-Type", "text/plain")])
    if environ["PATH_INFO"] == "/multiprocess":
        return [str(environ["wsgi.multiprocess"]).encode()]
    return [str(os.getpid()).encode()]


async def asgi_app(scope, receive, send):
    if scope["type"] != "http":
        return
    if scope["path"] == "/slow":
        await asyncio.get_running_loop().run_in_executor(None, wait_release)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": str(os.getpid()).encode()})


if kind == "wsgi":
    from cymongoose.wsgi import serve
    code = serve(wsgi_app, "http://127.0.0.1:0", processes=count, on_started=started, **OPTIONS)
else:
    from cymongoose.asgi import serve
    code = serve(asgi_app, "http://127.0.0.1:0", workers=count, on_started=started,
                 lifespan="off", **OPTIONS)
print("EXIT", code, flush=True)
