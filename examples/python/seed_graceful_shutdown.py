"""The user guide's "Graceful Shutdown" snippet, unchanged, in a runnable server:
every request is answered "Goodbye!" and its connection closed once the reply
has been flushed (drain), so the client reads the whole reply.

    seed_graceful_shutdown.py [PORT]     (default 8000, on 127.0.0.1)
"""
import sys

from cymongoose import MG_EV_HTTP_MSG, Manager

# ---- from the user guide, unchanged -------------------------------------
def handler(conn, ev, data):
    if ev == MG_EV_HTTP_MSG:
        conn.reply(200, b"Goodbye!")
        conn.drain()  # Flushes send buffer before closing
# -------------------------------------------------------------------------


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8000
    with Manager(handler) as manager:
        manager.listen("http://127.0.0.1:%d" % port)
        print("listening on port %d" % port, flush=True)
        manager.run()


if __name__ == "__main__":
    main()
