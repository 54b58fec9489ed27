"""`sntp URL`: asks an NTP server for the time (SNTP, RFC 4330)."""
import datetime
import time

import cymongoose as cm

from .common import CliError, manager, poll_until


def add_parser(sub):
    p = sub.add_parser("sntp", help="ask an NTP server for the time",
                       description="Ask udp://HOST[:123] for the time; print it and this clock's offset.")
    p.add_argument("url", help="udp://HOST[:PORT] of the NTP server")
    p.add_argument("--dns", help="DNS server for names, e.g. udp://127.0.0.1:53")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds to wait (default 5)")
    return p


def run(args):
    if not args.url.startswith("udp://"):
        raise CliError("expected udp://HOST[:PORT], not %s" % args.url)
    got = {}

    def handler(conn, ev, data):
        if ev == cm.MG_EV_SNTP_TIME:
            got["ms"] = data
            got["local"] = time.time()
            conn.close()
        elif ev == cm.MG_EV_ERROR:
            got["error"] = data
        elif ev == cm.MG_EV_CLOSE:
            got["closed"] = True

    with manager(args) as mgr:
        try:
            mgr.sntp_connect(args.url, handler)
        except (RuntimeError, ValueError) as e:
            raise CliError(str(e)) from None
        poll_until(mgr, lambda: "closed" in got, args.timeout, args.url)
    if "ms" not in got:
        raise CliError(got.get("error", "no time received"))
    when = datetime.datetime.fromtimestamp(got["ms"] / 1000.0, datetime.timezone.utc)
    offset = got["ms"] / 1000.0 - got["local"]
    print("%s  (this clock is %+.3f s off)" % (when.isoformat(timespec="milliseconds"), -offset))
    return 0
