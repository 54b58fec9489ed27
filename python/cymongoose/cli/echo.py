"""`echo --listen URL`: sends back what it receives, over TCP, UDP or WebSocket."""
import cymongoose as cm

from .common import CliError, banner, bound_url, listen


def add_parser(sub):
    p = sub.add_parser("echo", help="echo server for testing clients (TCP, UDP, WebSocket)",
                       description="Echo every byte (tcp://), datagram (udp://) or message (ws://) back.")
    p.add_argument("--listen", default="tcp://127.0.0.1:7000",
                   help="tcp://HOST:PORT, udp://HOST:PORT or ws://HOST:PORT[/PATH] (default tcp://127.0.0.1:7000)")
    return p


def stream_echo(conn, ev, data):
    if ev == cm.MG_EV_READ:
        conn.send(conn.recv_data())
        conn.recv_consume()


def ws_echo(conn, ev, data):
    if ev == cm.MG_EV_HTTP_MSG:
        if (data.header("Upgrade") or "").lower() != "websocket":
            conn.reply(400, "This is a WebSocket echo server: connect with a WebSocket client.\n")
        else:
            conn.ws_upgrade(data, compress=True)  # answers 400 itself to a malformed upgrade
    elif ev == cm.MG_EV_WS_MSG:
        conn.ws_send(data.data, data.op if data.op else cm.WEBSOCKET_OP_BINARY)


def run(args):
    scheme = args.listen.partition("://")[0]
    if scheme not in ("tcp", "udp", "ws"):
        raise CliError("--listen takes tcp://, udp:// or ws://, not %s" % args.listen)
    with cm.Manager() as mgr:
        lst = listen(mgr, args.listen, ws_echo if scheme == "ws" else stream_echo)
        banner("echoing on %s" % bound_url(args.listen, lst))
        mgr.run()
    return 0
