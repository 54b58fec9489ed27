"""The user guide's "Error Handling" snippet, unchanged, in a runnable server.

    seed_error_handling.py [PORT] [REFUSED_PORT]

process_request() (left to the reader by the guide) answers /ok and raises
for anything else, which the snippet turns into a 500.  With REFUSED_PORT the
program also connects to 127.0.0.1:REFUSED_PORT, where nothing listens, to
show the MG_EV_ERROR branch.
"""
import sys

from cymongoose import MG_EV_ERROR, MG_EV_HTTP_MSG, Manager


def process_request(conn, data):
    if data.uri != "/ok":
        raise ValueError("no route for %s" % data.uri)
    conn.reply(200, b"fine")


# ---- from the user guide, unchanged -------------------------------------
def handler(conn, ev, data):
    if ev == MG_EV_ERROR:
        print(f"Error: {data}")
        conn.close()

    try:
        # Your event handling
        if ev == MG_EV_HTTP_MSG:
            process_request(conn, data)
    except Exception as e:
        print(f"Handler error: {e}")
        conn.reply(500, b"Internal Server Error")
        conn.drain()
# -------------------------------------------------------------------------


def flushed(conn, ev, data):
    handler(conn, ev, data)
    sys.stdout.flush()


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8000
    with Manager(flushed) as manager:
        manager.listen("http://127.0.0.1:%d" % port)
        print("listening on port %d" % port, flush=True)
        if len(sys.argv) > 2:
            manager.connect("http://127.0.0.1:%s" % sys.argv[2])
        manager.run()


if __name__ == "__main__":
    main()
