"""The peer for the WebSocket benchmark: a python3-websockets echo server
(asyncio), without compression, as fast as that library goes."""
import asyncio
import sys

import websockets


async def echo(ws, path=None):
    async for msg in ws:
        await ws.send(msg)


async def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    async with websockets.serve(echo, "127.0.0.1", port, compression=None, max_size=None) as srv:
        print("listening", srv.sockets[0].getsockname()[1], flush=True)
        await asyncio.Future()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
