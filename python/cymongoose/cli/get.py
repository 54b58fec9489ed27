"""`get URL`: a minimal HTTP(S) client: body to stdout, status and headers with -i."""
import http.client
import sys
import urllib.parse

import cymongoose as cm

from .common import CliError, manager, poll_until, status

PROGRESS_MIN = 1024 * 1024  # downloads smaller than this show no progress line


def add_parser(sub):
    p = sub.add_parser("get", help="fetch a URL (HTTP/HTTPS), body to stdout",
                       description="Fetch URL: the body goes to stdout; with -i the status line and "
                                   "headers come first.  -d sends a POST.")
    p.add_argument("url")
    p.add_argument("-H", "--header", action="append", default=[], metavar="'NAME: VALUE'",
                   help="extra request header (repeatable)")
    p.add_argument("-d", "--data", help="request body (POST unless -X says otherwise); @FILE reads FILE")
    p.add_argument("-X", "--method", help="request method (default GET, or POST with -d)")
    p.add_argument("-i", "--include", action="store_true", help="print the status line and headers")
    p.add_argument("--insecure", action="store_true", help="do not verify the server's certificate")
    p.add_argument("--cacert", help="PEM file of CAs to trust (default: the system store)")
    p.add_argument("--dns", help="DNS server for names, e.g. udp://127.0.0.1:53 (default: resolv.conf)")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait (default 30, 0: forever)")
    p.add_argument("--max-size", type=int, default=1 << 30, help="largest body accepted (default 1 GiB)")
    return p


def request_bytes(args, url):
    body = b""
    if args.data is not None:
        if args.data.startswith("@"):
            try:
                with open(args.data[1:], "rb") as f:
                    body = f.read()
            except OSError as e:
                raise CliError("cannot read %s: %s" % (args.data[1:], e.strerror)) from None
        else:
            body = args.data.encode()
    method = args.method or ("POST" if args.data is not None else "GET")
    target = url.path or "/"
    if url.query:
        target += "?" + url.query
    host = url.hostname if ":" not in (url.hostname or "") else "[%s]" % url.hostname
    lines = ["%s %s HTTP/1.1" % (method, target), "Host: %s" % (host if url.port is None else "%s:%d" % (host, url.port))]
    given = {h.split(":", 1)[0].strip().lower() for h in args.header}
    if "user-agent" not in given:
        lines.append("User-Agent: cymongoose-get")
    if "accept" not in given:
        lines.append("Accept: */*")
    for h in args.header:
        if ":" not in h or "\r" in h or "\n" in h:
            raise CliError("-H takes 'Name: value', not %r" % h)
        lines.append(h)
    if body or args.data is not None:
        lines.append("Content-Length: %d" % len(body))
        if "content-type" not in given:
            lines.append("Content-Type: application/x-www-form-urlencoded")
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body, method


class Fetch:
    def __init__(self, args, url, request, tls):
        self.args, self.url, self.request, self.tls = args, url, request, tls
        self.response = None      # (status line, headers, body)
        self.error = None
        self.closed = False
        self.expected = None      # Content-Length, for the progress line
        self.show_progress = sys.stderr.isatty()
        self.last_shown = 0

    def handler(self, conn, ev, data):
        if ev == cm.MG_EV_OPEN and self.tls is not None:
            conn.tls_init(self.tls)
        elif (ev == cm.MG_EV_CONNECT and self.tls is None) or ev == cm.MG_EV_TLS_HS:
            conn.send(self.request)  # over TLS, only once the handshake has succeeded
        elif ev == cm.MG_EV_HTTP_HDRS:
            length = data.header("Content-Length")
            self.expected = int(length) if length and length.isdigit() else None
        elif ev == cm.MG_EV_READ and self.show_progress:
            self.progress(conn.recv_len)
        elif ev == cm.MG_EV_HTTP_MSG:
            code = data.status() or 0
            line = "%s %d %s" % (data.proto, code, http.client.responses.get(code, ""))
            self.response = (line, data.headers(), data.body_bytes)
            conn.close()
        elif ev == cm.MG_EV_ERROR:
            self.error = data
            conn.close()
        elif ev == cm.MG_EV_CLOSE:
            self.closed = True

    def progress(self, have):
        """One line on the terminal, rewritten in place (have counts the head too: close enough)."""
        if have - self.last_shown < 256 * 1024 or (self.expected or have) < PROGRESS_MIN:
            return
        self.last_shown = have
        if self.expected:
            have = min(have, self.expected)
            line = "\r%5.1f%%  %d of %d bytes" % (100.0 * have / self.expected, have, self.expected)
        else:
            line = "\r%d bytes" % have
        sys.stderr.write(line)
        sys.stderr.flush()


def run(args):
    url = urllib.parse.urlsplit(args.url)
    if url.scheme not in ("http", "https") or not url.hostname:
        raise CliError("expected an http:// or https:// URL, not %s" % args.url)
    request, _ = request_bytes(args, url)
    tls = None
    if url.scheme == "https":
        ca = None
        if args.cacert:
            try:
                with open(args.cacert, "rb") as f:
                    ca = f.read()
            except OSError as e:
                raise CliError("cannot read %s: %s" % (args.cacert, e.strerror)) from None
        tls = cm.TlsOpts(ca=ca, name=url.hostname, skip_verification=args.insecure)
    port = url.port or (443 if url.scheme == "https" else 80)
    host = url.hostname if ":" not in url.hostname else "[%s]" % url.hostname
    fetch = Fetch(args, url, request, tls)
    with manager(args) as mgr:
        mgr.connect("tcp://%s:%d" % (host, port), fetch.handler, http=True, http_max_body=args.max_size)
        poll_until(mgr, lambda: fetch.closed, args.timeout, args.url)
    if fetch.show_progress and fetch.last_shown:
        status("\rdone: %d bytes%s" % (len(fetch.response[2]) if fetch.response else 0, " " * 20))
    if fetch.response is None:
        raise CliError(fetch.error or "the connection closed before a response arrived")
    line, headers, body = fetch.response
    out = sys.stdout.buffer
    if args.include:
        out.write(line.encode() + b"\r\n")
        for name, value in headers:
            out.write(("%s: %s\r\n" % (name, value)).encode("utf-8", "surrogateescape"))
        out.write(b"\r\n")
    out.write(body)
    out.flush()
    code = int(line.split()[1]) if len(line.split()) > 1 and line.split()[1].isdigit() else 0
    return 0 if code < 400 else 22  # 22, as curl --fail: the server answered with an error
