"""Our Python HTTP server for the benchmark: hello world on HTTP_MSG."""
import sys

from cymongoose import MG_EV_HTTP_MSG, Manager


def handler(conn, ev, data):
    if ev == MG_EV_HTTP_MSG:
        conn.reply(200, b"Hello, World!")


def main():
    url = "http://127.0.0.1:%s" % (sys.argv[1] if len(sys.argv) > 1 else "0")
    with Manager(handler) as mgr:
        listener = mgr.listen(url)
        print("listening", listener.local_addr[1], flush=True)
        mgr.run(1000)


if __name__ == "__main__":
    main()
