"""`serve [DIR]`: a static file server (Range, ETag, precompressed .gz, listings, SPA fallback)."""
import errno
import gzip
import html
import os
import sys
import urllib.parse

import cymongoose as cm

from .common import CliError, banner, bound_url, listen

# Types worth compressing on the fly with --gzip, and the largest file compressed in memory.
COMPRESSIBLE = (".html", ".htm", ".css", ".js", ".mjs", ".json", ".svg", ".txt", ".xml", ".md",
                ".csv", ".map", ".wasm")
GZIP_MAX = 8 * 1024 * 1024
GZIP_CACHE_ENTRIES = 64
CORS_HEADERS = ("Access-Control-Allow-Origin: *\r\n"
                "Access-Control-Allow-Methods: GET, HEAD, OPTIONS\r\n"
                "Access-Control-Allow-Headers: *\r\n"
                "Access-Control-Max-Age: 86400\r\n")


def add_parser(sub):
    p = sub.add_parser("serve", help="serve a directory over HTTP(S)",
                       description="Serve DIR over HTTP: Range, ETag/If-None-Match, precompressed "
                                   "FILE.gz siblings, an index page for directories without "
                                   "index.html.")
    p.add_argument("dir", nargs="?", default=".", help="directory to serve (default: .)")
    p.add_argument("--listen", default="http://127.0.0.1:8000",
                   help="URL to listen on (default http://127.0.0.1:8000; https:// needs --tls-cert/--tls-key)")
    p.add_argument("--tls-cert", help="PEM certificate (chain) for https://")
    p.add_argument("--tls-key", help="PEM private key for https://")
    p.add_argument("--gzip", action="store_true",
                   help="gzip text files on the fly for clients that accept it (FILE.gz siblings are always used)")
    p.add_argument("--cors", action="store_true", help="allow cross-origin requests (Access-Control-Allow-Origin: *)")
    p.add_argument("--spa", action="store_true",
                   help="single-page app: unknown paths get DIR/index.html instead of 404")
    p.add_argument("--access-log", metavar="FILE",
                   help="write an access log line per request to FILE ('-': stdout)")
    p.add_argument("--log-format", choices=("common", "combined"), default="combined",
                   help="access log format (default combined)")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="serve from N worker processes (default 1: this process); with N > 1 "
                        "SIGHUP replaces the workers gracefully and SIGTERM drains them "
                        "(docs/deploy.md)")
    return p


class StaticServer:
    def __init__(self, root, args):
        self.root = root
        self.args = args
        self.extra = CORS_HEADERS if args.cors else ""
        self.gzip_cache = {}  # (path, mtime_ns, size) -> compressed bytes

    def handler(self, conn, ev, msg):
        if ev != cm.MG_EV_HTTP_MSG:
            return
        if msg.method == "OPTIONS" and self.args.cors:
            conn.reply(204, b"", [(k, v) for k, _, v in
                                  (line.partition(": ") for line in CORS_HEADERS.split("\r\n") if line)])
            return
        if msg.method not in ("GET", "HEAD"):
            conn.reply(405, "Method not allowed\n", {"Allow": "GET, HEAD" + (", OPTIONS" if self.args.cors else "")})
            return
        path = self.local_path(msg.uri)
        if path is not None and os.path.isdir(path) and msg.uri.endswith("/") and \
                not os.path.exists(os.path.join(path, "index.html")):
            self.listing(conn, msg, path)
        elif self.args.spa and (path is None or not os.path.exists(path)) and self.wants_page(msg):
            conn.serve_file(msg, os.path.join(self.root, "index.html"), self.extra)
        elif self.args.gzip and path is not None and self.gzip_reply(conn, msg, path):
            pass
        else:
            conn.serve_dir(msg, self.root, self.extra)

    def local_path(self, uri):
        """The file uri names below the root, or None when it would lead outside."""
        rel = urllib.parse.unquote(uri).lstrip("/")
        if "\0" in rel:
            return None
        path = os.path.realpath(os.path.join(self.root, rel))
        if path != self.root and not path.startswith(self.root.rstrip("/") + "/"):
            return None
        return path

    @staticmethod
    def wants_page(msg):
        last = msg.uri.rsplit("/", 1)[-1]
        return "." not in last or "text/html" in (msg.header("Accept") or "")

    def listing(self, conn, msg, path):
        rows = []
        try:
            entries = sorted(os.scandir(path), key=lambda e: (not e.is_dir(), e.name.lower()))
        except OSError as err:
            conn.reply(403, "Cannot list this directory: %s\n" % err.strerror)
            return
        for entry in entries:
            if entry.name.startswith("."):
                continue
            name = entry.name + ("/" if entry.is_dir() else "")
            try:
                size = "" if entry.is_dir() else human(entry.stat().st_size)
            except OSError:
                size = "?"
            rows.append('<tr><td><a href="%s">%s</a></td><td class="s">%s</td></tr>'
                        % (urllib.parse.quote(name), html.escape(name), size))
        title = html.escape(urllib.parse.unquote(msg.uri))
        parent = '<tr><td><a href="../">../</a></td><td></td></tr>' if msg.uri != "/" else ""
        page = LISTING % (title, title, parent + "\n".join(rows))
        headers = {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-cache"}
        if self.args.cors:
            headers["Access-Control-Allow-Origin"] = "*"
        conn.reply(200, page, headers)

    def gzip_reply(self, conn, msg, path):
        """Answers with a gzipped copy of a text file; False to let serve_dir answer instead."""
        if not path.endswith(COMPRESSIBLE) or "gzip" not in (msg.header("Accept-Encoding") or "") \
                or msg.header("Range") or os.path.exists(path + ".gz"):
            return False
        try:
            st = os.stat(path)
        except OSError:
            return False
        if not os.path.isfile(path) or st.st_size > GZIP_MAX:
            return False
        etag = 'W/"%x-%x-gz"' % (st.st_mtime_ns, st.st_size)
        headers = [("ETag", etag), ("Vary", "Accept-Encoding"), ("Cache-Control", "no-cache")]
        if self.args.cors:
            headers.append(("Access-Control-Allow-Origin", "*"))
        if msg.header("If-None-Match") == etag:
            conn.reply(304, b"", headers)
            return True
        key = (path, st.st_mtime_ns, st.st_size)
        body = self.gzip_cache.get(key)
        if body is None:
            with open(path, "rb") as f:
                body = gzip.compress(f.read(), 6)
            if len(self.gzip_cache) >= GZIP_CACHE_ENTRIES:
                self.gzip_cache.pop(next(iter(self.gzip_cache)))
            self.gzip_cache[key] = body
        ctype = MIME.get(os.path.splitext(path)[1], "application/octet-stream")
        conn.reply(200, body, headers + [("Content-Type", ctype), ("Content-Encoding", "gzip")])
        return True


MIME = {".html": "text/html; charset=utf-8", ".htm": "text/html; charset=utf-8",
        ".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8",
        ".mjs": "text/javascript; charset=utf-8", ".json": "application/json",
        ".svg": "image/svg+xml", ".txt": "text/plain; charset=utf-8", ".xml": "application/xml",
        ".md": "text/markdown; charset=utf-8", ".csv": "text/csv; charset=utf-8",
        ".map": "application/json", ".wasm": "application/wasm"}

LISTING = """<!doctype html>
<html><head><meta charset="utf-8"><title>Index of %s</title>
<style>body{font:15px system-ui,sans-serif;margin:2em auto;max-width:50em;color:#1e293b}
table{border-collapse:collapse;width:100%%}td{padding:4px 8px;border-bottom:1px solid #e2e8f0}
.s{text-align:right;color:#64748b;white-space:nowrap}a{color:#0369a1;text-decoration:none}</style>
</head><body><h1>Index of %s</h1><table>
%s
</table></body></html>
"""


def human(n):
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return ("%d %s" if unit == "B" else "%.1f %s") % (n, unit)
        n /= 1024.0


def tls_opts(args):
    if not (args.tls_cert and args.tls_key):
        raise CliError("%s needs --tls-cert and --tls-key" % args.listen)
    try:
        with open(args.tls_cert, "rb") as f:
            cert = f.read()
        with open(args.tls_key, "rb") as f:
            key = f.read()
    except OSError as e:
        raise CliError("cannot read %s: %s" % (e.filename, e.strerror)) from None
    return cm.TlsOpts(cert=cert, key=key)


def open_access_log(args):
    if not args.access_log:
        return None
    if args.access_log == "-":
        return sys.stdout
    try:
        return open(args.access_log, "a", buffering=1)
    except OSError as e:
        raise CliError("cannot open access log %s: %s" % (args.access_log, e.strerror)) from None


def run(args):
    root = os.path.realpath(args.dir)
    if not os.path.isdir(root):
        raise CliError("%s is not a directory" % args.dir)
    if not args.listen.startswith(("http://", "https://")):
        raise CliError("--listen takes http://HOST:PORT or https://HOST:PORT, not %s" % args.listen)
    tls = tls_opts(args) if args.listen.startswith("https://") else None
    server = StaticServer(root, args)
    log_file = open_access_log(args)
    kwargs = {}
    if log_file is not None:
        kwargs.update(access_log=log_file, access_log_format=args.log_format)
    extras = [name for name in ("gzip", "cors", "spa") if getattr(args, name)]
    extras = (" [%s]" % ", ".join(extras)) if extras else ""
    if args.workers < 1:
        raise CliError("--workers takes a number of processes, at least 1")
    if args.workers > 1:
        return run_workers(args, root, server, tls, kwargs, extras)
    with cm.Manager() as mgr:
        lst = listen(mgr, args.listen, server.handler, **kwargs)
        if tls is not None:
            lst.tls_init(tls)
        banner("serving %s on %s/%s" % (root, bound_url(args.listen, lst).rstrip("/"), extras))
        mgr.run()
    return 0


def run_workers(args, root, server, tls, kwargs, extras):
    """--workers N: N processes, each its own Manager on a listening socket
    the supervisor keeps (cymongoose._workers)."""
    from .._workers import serve_manager, supervise

    def main(worker):
        with cm.Manager() as mgr:
            lst = mgr.listen(args.listen, server.handler, fd=worker.sock, **kwargs)
            if tls is not None:
                lst.tls_init(tls)
            serve_manager(worker, mgr)

    def started(port, pids):
        scheme, _, rest = args.listen.partition("://")
        host = rest.split("/", 1)[0].rsplit(":", 1)[0]
        banner("serving %s on %s://%s:%d/%s (%d workers, pids %s)"
               % (root, scheme, host, port, extras, len(pids), " ".join(map(str, pids))))

    try:
        return supervise(main, args.listen, args.workers, on_started=started)
    except (OSError, ValueError, RuntimeError) as e:
        if getattr(e, "errno", None) == errno.EADDRINUSE:
            raise CliError("cannot listen on %s: the port is already in use; pick another with "
                           "--listen (port 0: any free port)" % args.listen) from None
        raise CliError(str(e)) from None
