"""An HTTP server on our Python API for test_http_scale.py, run as a subprocess
(so its memory can be measured and it has its own GIL).

    http_scale_server.py [max_body]    prints "port N", serves until SIGTERM.

Routes: /k (tiny reply), /hello?name=x, /echo (the body back), /count (the
length of the body), /download?size=N (N bytes as a chunked stream produced
as the socket drains: memory stays bounded whatever N).
"""
import sys

import cymongoose as cm

BLOCK = bytes(range(256)) * 256  # 64 KiB of a known pattern
LOW_WATER = 4 * len(BLOCK)        # refill the send buffer below this


def fill(conn):
    """Queues more of the download while the send buffer is low."""
    remaining = conn.userdata
    while remaining > 0 and conn.send_len < LOW_WATER:
        piece = BLOCK[:min(remaining, len(BLOCK))]
        conn.http_chunk(piece)
        remaining -= len(piece)
    if remaining == 0:
        conn.http_chunk(b"")
        remaining = None
    conn.userdata = remaining


def handler(conn, ev, data):
    if ev == cm.MG_EV_HTTP_MSG:
        uri = data.uri
        if uri == "/k":
            conn.reply(200, b"ok")
        elif uri == "/hello":
            conn.reply(200, "hello " + (data.query_var("name") or "nobody"))
        elif uri == "/echo":
            conn.reply(200, data.body_bytes, {"Content-Type": "application/octet-stream"})
        elif uri == "/count":
            conn.reply(200, str(len(data.body_bytes)))
        elif uri == "/download":
            conn.reply(200, b"", {"Content-Type": "application/octet-stream",
                                  "Transfer-Encoding": "chunked"})
            conn.userdata = int(data.query_var("size") or "0")
            fill(conn)
        else:
            conn.reply(404, b"not found")
    elif ev == cm.MG_EV_WRITE and isinstance(conn.userdata, int):
        fill(conn)


def main():
    kwargs = {}
    if len(sys.argv) > 1:
        kwargs["http_max_body"] = int(sys.argv[1])
    with cm.Manager(handler) as mgr:
        lst = mgr.listen("http://127.0.0.1:0", **kwargs)
        print("port", lst.local_addr[1], flush=True)
        mgr.run()


if __name__ == "__main__":
    main()
