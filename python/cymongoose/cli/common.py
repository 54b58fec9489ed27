"""What the subcommands share: errors, listening, banners, running until done."""
import sys
import time

import cymongoose as cm


class CliError(Exception):
    """An error the user can fix: printed as one line, exit status 1."""


def listen(mgr, url, handler, **kwargs):
    """mgr.listen(), with a busy or invalid address turned into a CliError that says what to do."""
    try:
        return mgr.listen(url, handler, **kwargs)
    except (RuntimeError, ValueError) as e:
        if "in use" in str(e):
            raise CliError("cannot listen on %s: the port is already in use; pick another with "
                           "--listen (port 0: any free port)" % url) from None
        raise CliError(str(e)) from None


def bound_url(url, listener):
    """url with the port the listener really has (useful when 0 was asked for)."""
    scheme, _, rest = url.partition("://")
    host = rest.rsplit(":", 1)[0] if ":" in rest else rest
    path = ""
    if "/" in rest:
        path = "/" + rest.split("/", 1)[1]
        host = rest.split("/", 1)[0].rsplit(":", 1)[0]
    return "%s://%s:%d%s" % (scheme, host, listener.local_addr[1], path)


def banner(text):
    """The one-line start banner, on stdout, flushed (scripts wait for it)."""
    print(text + " (Ctrl+C to stop)", flush=True)


def status(text):
    """Progress and diagnostics go to stderr, so stdout carries only the payload."""
    print(text, file=sys.stderr, flush=True)


def manager(args, **kwargs):
    """A Manager with the --dns server, if the subcommand has that option."""
    dns = getattr(args, "dns", None)
    if dns:
        kwargs["dns"] = dns
    try:
        return cm.Manager(**kwargs)
    except (RuntimeError, ValueError) as e:
        raise CliError(str(e)) from None


def poll_until(mgr, done, timeout_s, what):
    """Polls until done() is true; a CliError after timeout_s seconds (0: wait forever)."""
    end = time.monotonic() + timeout_s if timeout_s else None
    while not done():
        if end is not None and time.monotonic() > end:
            raise CliError("%s: no answer within %g s" % (what, timeout_s))
        mgr.poll(100)
