"""Our Python echo server for the benchmark: the documented raw-TCP pattern."""
import sys

from cymongoose import MG_EV_READ, Manager


def handler(conn, ev, data):
    if ev == MG_EV_READ:
        conn.send(conn.recv_data())
        conn.recv_consume()


def main():
    url = "tcp://127.0.0.1:%s" % (sys.argv[1] if len(sys.argv) > 1 else "0")
    with Manager(handler) as mgr:
        listener = mgr.listen(url)
        print("listening", listener.local_addr[1], flush=True)
        mgr.run(1000)


if __name__ == "__main__":
    main()
