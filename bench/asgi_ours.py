"""Our ASGI/WSGI servers for the benchmark: asgi_ours.py KIND PORT, KIND one
of hello, starlette, ws (ASGI apps of asgi_apps.py on ASGIServer) or wsgi
(wsgi_hello on WSGIServer).  Prints the port once listening."""
import asyncio
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import asgi_apps  # noqa: E402


def run_asgi(app, port):
    from cymongoose.asgi import ASGIServer

    async def main():
        server = ASGIServer(app, lifespan="off")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        lst = await server.start("http://127.0.0.1:%d" % port)
        print("listening", lst.local_addr[1], flush=True)
        await stop.wait()
        await server.stop()

    asyncio.run(main())


def run_wsgi(port):
    from cymongoose.wsgi import WSGIServer
    server = WSGIServer(asgi_apps.wsgi_hello)
    lst = server.listen("http://127.0.0.1:%d" % port)
    print("listening", lst.local_addr[1], flush=True)
    signal.signal(signal.SIGTERM, lambda *a: server._stop.set())
    server.run()


def main():
    kind, port = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 0
    if kind == "wsgi":
        run_wsgi(port)
    else:
        run_asgi({"hello": asgi_apps.hello, "starlette": asgi_apps.starlette,
                  "ws": asgi_apps.ws_echo}[kind], port)


if __name__ == "__main__":
    main()
