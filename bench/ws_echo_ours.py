"""Our Python WebSocket echo server for the benchmark: the documented pattern
(upgrade on HTTP_MSG, echo on WS_MSG)."""
import sys

from cymongoose import MG_EV_HTTP_MSG, MG_EV_WS_MSG, Manager


def handler(conn, ev, data):
    if ev == MG_EV_WS_MSG:
        conn.ws_send(data.data, data.op)
    elif ev == MG_EV_HTTP_MSG:
        conn.ws_upgrade(data)


def main():
    url = "http://127.0.0.1:%s" % (sys.argv[1] if len(sys.argv) > 1 else "0")
    with Manager(handler) as mgr:
        listener = mgr.listen(url)
        print("listening", listener.local_addr[1], flush=True)
        mgr.run(1000)


if __name__ == "__main__":
    main()
