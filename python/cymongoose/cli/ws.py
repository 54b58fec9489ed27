"""`ws URL`: an interactive WebSocket client: lines typed are sent, messages printed."""
import sys
import threading

import cymongoose as cm

from .common import CliError, manager, poll_until, status


def add_parser(sub):
    p = sub.add_parser("ws", help="interactive WebSocket client",
                       description="Connect to a ws:// or wss:// URL; each line read from stdin is "
                                   "sent as a text message, each message received is printed.  "
                                   "End of input closes the connection.")
    p.add_argument("url")
    p.add_argument("--insecure", action="store_true", help="do not verify the server's certificate")
    p.add_argument("--dns", help="DNS server for names, e.g. udp://127.0.0.1:53")
    p.add_argument("--timeout", type=float, default=0, help="give up after this many seconds (default: never)")
    p.add_argument("--linger", type=float, default=1.0,
                   help="after the end of input, wait this long for the server to fall quiet "
                        "before closing (default 1 s)")
    return p


class Session:
    EOF_MARK = b"\x00eof"  # wakeup payload meaning stdin has ended

    def __init__(self, mgr, insecure, linger):
        self.mgr = mgr
        self.insecure = insecure
        self.linger_ms = int(linger * 1000)
        self.last_activity = 0  # cm.millis() of the last message or the end of input
        self.input_ended = False
        self.close_sent = False
        self.conn = None
        self.closed = False
        self.error = None
        self.opened = False

    def handler(self, conn, ev, data):
        if ev == cm.MG_EV_OPEN and conn.is_tls and self.insecure:
            conn.tls_init(cm.TlsOpts(skip_verification=True))
        elif ev == cm.MG_EV_WS_OPEN:
            self.opened = True
            status("connected; type lines to send them, Ctrl+D to close")
            threading.Thread(target=self.read_stdin, daemon=True).start()
        elif ev == cm.MG_EV_WS_MSG:
            self.last_activity = cm.millis()
            text = data.data.decode("utf-8", "replace") if data.op == cm.WEBSOCKET_OP_TEXT else repr(data.data)
            print(text, flush=True)
        elif ev == cm.MG_EV_WAKEUP:
            if data == self.EOF_MARK:
                # Answers to the last lines may still be on their way: close
                # once the server has been quiet for the linger time.
                self.input_ended = True
                self.last_activity = cm.millis()
                self.mgr.timer_add(50, lambda: self.close_when_quiet(conn), repeat=True)
            else:
                conn.ws_send(data, cm.WEBSOCKET_OP_TEXT)
        elif ev == cm.MG_EV_ERROR:
            self.error = data
        elif ev == cm.MG_EV_CLOSE:
            self.closed = True

    def close_when_quiet(self, conn):
        if not self.closed and not self.close_sent and cm.millis() - self.last_activity >= self.linger_ms:
            self.close_sent = conn.ws_close(1000, "bye")

    def read_stdin(self):
        for line in sys.stdin.buffer:
            self.mgr.wakeup(self.conn.id, line.rstrip(b"\r\n") or b" ")
        self.mgr.wakeup(self.conn.id, self.EOF_MARK)


def run(args):
    if not args.url.startswith(("ws://", "wss://")):
        raise CliError("expected a ws:// or wss:// URL, not %s" % args.url)
    with manager(args, enable_wakeup=True) as mgr:
        session = Session(mgr, args.insecure, args.linger)
        session.conn = mgr.ws_connect(args.url, session.handler)
        poll_until(mgr, lambda: session.closed, args.timeout, args.url)
    if not session.opened:
        raise CliError(session.error or "the server closed the connection before the handshake")
    return 0
