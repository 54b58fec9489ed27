"""The user guide's "Event Handler" snippet, unchanged, in a runnable server.

    seed_event_handler.py [PORT]     (default 8000, on 127.0.0.1)

The snippet only prints what arrives; the wrapper around it answers HTTP
requests and upgrades /ws to WebSocket (echoing messages) so that there is
something to see.
"""
import sys

from cymongoose import (MG_EV_HTTP_MSG, MG_EV_MQTT_MSG, MG_EV_WS_MSG, Manager)

# ---- from the user guide, unchanged -------------------------------------
def handler(conn, ev, data):
    """
    Args:
        conn: Connection object
        ev: Event type (integer constant)
        data: Event-specific data (or None)
    """
    if ev == MG_EV_HTTP_MSG:
        # data is HttpMessage
        print(f"{data.method} {data.uri}")

    elif ev == MG_EV_WS_MSG:
        # data is WsMessage
        print(f"WebSocket: {data.text}")

    elif ev == MG_EV_MQTT_MSG:
        # data is MqttMessage
        print(f"{data.topic}: {data.text}")
# -------------------------------------------------------------------------


def server(conn, ev, data):
    handler(conn, ev, data)
    sys.stdout.flush()
    if ev == MG_EV_HTTP_MSG:
        if data.uri == "/ws" and hasattr(conn, "ws_upgrade"):
            conn.ws_upgrade(data)
        else:
            conn.reply(200, "seen %s %s\n" % (data.method, data.uri))
    elif ev == MG_EV_WS_MSG:
        conn.ws_send(data.text)


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8000
    with Manager(server) as manager:
        manager.listen("http://127.0.0.1:%d" % port)
        print("listening on port %d" % port, flush=True)
        manager.run()


if __name__ == "__main__":
    main()
