"""The user guide's "Signal Handling" and "Poll Timeout" snippets, unchanged,
around a small HTTP server (the same loop as basic_pattern.py, on a port of
your choice and with a handler that answers).

    seed_signals_and_polling.py [PORT]     (default 8000, on 127.0.0.1)
"""
import signal
import sys

from cymongoose import MG_EV_HTTP_MSG, Manager


def answer(conn, ev, data):
    if ev == MG_EV_HTTP_MSG:
        conn.reply(200, "polled\n")


manager = Manager(answer)
manager.listen("http://127.0.0.1:%d" % (int(sys.argv[1]) if len(sys.argv) > 1 else 8000))
print("listening", flush=True)

# ---- from the user guide, unchanged: Signal Handling --------------------
shutdown_requested = False

def signal_handler(sig, frame):
    global shutdown_requested
    shutdown_requested = True

signal.signal(signal.SIGINT, signal_handler)
signal.signal(signal.SIGTERM, signal_handler)
# ---- from the user guide, unchanged: Poll Timeout -----------------------
while not shutdown_requested:
    manager.poll(100)  # 100ms - responsive and efficient
# -------------------------------------------------------------------------

manager.close()
print("closed", flush=True)
