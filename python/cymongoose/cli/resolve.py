"""`resolve NAME`: looks a name up with the library's asynchronous resolver (c-ares)."""
import cymongoose as cm

from .common import CliError, manager, poll_until


def add_parser(sub):
    p = sub.add_parser("resolve", help="resolve a host name",
                       description="Resolve NAME with the library's resolver; --dns picks the server "
                                   "(default: /etc/resolv.conf, or $CM_DNS_SERVER).")
    p.add_argument("name")
    p.add_argument("--dns", help="DNS server, e.g. udp://127.0.0.1:53")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait (default 10)")
    return p


def run(args):
    got = {}

    def handler(conn, ev, data):
        if ev == cm.MG_EV_RESOLVE:
            got["addr"] = conn.remote_addr
        elif ev == cm.MG_EV_ERROR:
            got["error"] = data

    with manager(args) as mgr:
        conn = mgr.listen("udp://127.0.0.1:0", handler)
        try:
            conn.resolve("udp://%s:9" % args.name)
        except ValueError as e:
            raise CliError("%s: %s" % (args.name, e)) from None
        poll_until(mgr, lambda: got, args.timeout, "resolving " + args.name)
    if "addr" not in got:
        raise CliError(got["error"])
    print("%s %s" % (args.name, got["addr"][0]))
    return 0
