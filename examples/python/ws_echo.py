"""WebSocket echo server: upgrade on HTTP_MSG, echo on WS_MSG.

Run it, then e.g.:  python3 -m websockets ws://127.0.0.1:8000/ws
Plain HTTP requests to other paths get a short page.
"""
import signal

from cymongoose import (MG_EV_HTTP_MSG, MG_EV_WS_CTL, MG_EV_WS_MSG, MG_EV_WS_OPEN,
                        WEBSOCKET_OP_CLOSE, Manager)

shutdown_requested = False


def signal_handler(sig, frame):
    global shutdown_requested
    shutdown_requested = True


def event_handler(conn, ev, data):
    if ev == MG_EV_HTTP_MSG:
        if data.uri == "/ws":
            # Completes the handshake (101); WS_OPEN follows straight away.
            # compress=True would accept permessage-deflate offers.
            conn.ws_upgrade(data)
        else:
            conn.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                      b"Content-Length: 30\r\n\r\nWebSocket echo server on /ws\r\n")
    elif ev == MG_EV_WS_OPEN:
        print("client %s:%d connected" % conn.remote_addr[:2])
    elif ev == MG_EV_WS_MSG:
        # data.op is WEBSOCKET_OP_TEXT or _BINARY: echo with the same type.
        conn.ws_send(data.data, data.op)
    elif ev == MG_EV_WS_CTL and data.op == WEBSOCKET_OP_CLOSE:
        # Pings are answered and closes echoed by the library.
        print("client closed: %s %s" % (data.close_code, data.close_reason))


def main():
    signal.signal(signal.SIGINT, signal_handler)
    signal.signal(signal.SIGTERM, signal_handler)
    manager = Manager(event_handler)
    manager.listen("http://127.0.0.1:8000")
    print("ws echo on ws://127.0.0.1:8000/ws")
    try:
        while not shutdown_requested:
            manager.poll(100)
    finally:
        manager.close()


if __name__ == "__main__":
    main()
