"""MQTT on the command line: `python3 -m cymongoose mqtt-broker | pub | sub`.

    python3 -m cymongoose mqtt-broker --listen mqtt://127.0.0.1:1883 \\
        [--listen ws://127.0.0.1:8080/mqtt] [--config FILE] [--allow-anonymous] [-v]
    python3 -m cymongoose pub mqtt://127.0.0.1:1883 -t TOPIC -m MSG [-q QOS] [-r] [-V 4|5]
    python3 -m cymongoose sub mqtt://127.0.0.1:1883 -t FILTER [-t ...] [-q QOS] [-C COUNT]

Each subcommand is an object with add_parser(subparsers) and run(args) -> exit
status, the convention of the cm.cli package; SUBCOMMANDS lists them
and add_subcommands(subparsers) adds them all to an argparse parser.  The
broker takes the configuration file of the C program cymongoose-broker
(docs/mqtt-broker.md); errors a user can fix end in one line on stderr.
"""
import argparse
import os
import sys

from .. import _mongoose as cm

__all__ = ["SUBCOMMANDS", "add_subcommands", "main"]

DEFAULT_LISTEN = "mqtt://127.0.0.1:1883"


class MqttCliError(Exception):
    """An error the user can fix: printed as one line, exit status 1."""


def _fail(command, message):
    print("cymongoose %s: %s" % (command, message), file=sys.stderr)
    return 1


def _read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise MqttCliError("%s: %s" % (path, e.strerror)) from None


def _log_level(verbose):
    return {0: cm.MG_LL_INFO, 1: cm.MG_LL_DEBUG}.get(verbose, cm.MG_LL_VERBOSE)


# ------------------------------------------------------------------ broker

class _Command:
    """add_parser(subparsers) and run(args) -> exit status; errors a user can
    fix are one line on stderr and status 1."""
    name = ""

    def run(self, args):
        try:
            return self._run(args)
        except MqttCliError as e:
            return _fail(self.name, e)
        except (ValueError, RuntimeError, OSError) as e:  # bad URL, refused listen...
            return _fail(self.name, e)
        except KeyboardInterrupt:
            return 130


class _Broker(_Command):
    name = "mqtt-broker"

    def add_parser(self, subparsers):
        p = subparsers.add_parser(
            self.name, help="run an MQTT broker (3.1, 3.1.1, 5.0)",
            description="An MQTT broker on mqtt://, mqtts://, ws:// and wss:// listeners. "
                        "Without --listen nor listener lines in the config file it listens on "
                        + DEFAULT_LISTEN + ". SIGINT/SIGTERM stop it cleanly.")
        p.add_argument("--listen", action="append", default=[], metavar="URL",
                       help="mqtt://IP:PORT, mqtts://IP:PORT, ws://IP:PORT/PATH or wss://... "
                            "(repeatable; added to the config file's listeners)")
        p.add_argument("--config", metavar="FILE",
                       help="configuration file (the format of cymongoose-broker, "
                            "docs/mqtt-broker.md)")
        p.add_argument("--allow-anonymous", action="store_true", default=None,
                       help="accept clients without a user name (off unless configured)")
        p.add_argument("--certfile", help="PEM certificate of mqtts:// and wss:// --listen URLs")
        p.add_argument("--keyfile", help="PEM key of mqtts:// and wss:// --listen URLs")
        p.add_argument("--cafile", help="PEM CA: --listen TLS listeners require client "
                                        "certificates signed by it")
        p.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS,
                       help="more log lines (-v: debug, -vv: verbose)")
        return p

    def _run(self, args):
        verbose = getattr(args, "verbose", 0) or 0
        cm.log_set(_log_level(verbose))
        tls = None
        if args.certfile or args.keyfile or args.cafile:
            tls = cm.TlsOpts(cert=_read(args.certfile) if args.certfile else None,
                                     key=_read(args.keyfile) if args.keyfile else None,
                                     ca=_read(args.cafile) if args.cafile else None)
        if args.config is not None and not os.path.exists(args.config):
            raise MqttCliError("%s: no such file" % args.config)
        mgr = cm.Manager()
        try:
            try:
                broker = mgr.mqtt_broker(None, config=args.config, tls=tls,
                                         allow_anonymous=args.allow_anonymous)
                for url in args.listen:
                    broker.listen(url)
                if not broker.listeners:
                    broker.listen(DEFAULT_LISTEN)
            except (ValueError, OSError) as e:
                raise MqttCliError(str(e)) from None
            mgr.run()  # until SIGINT or SIGTERM; closes the broker, flushing persistence
        finally:
            mgr.close()
        print("mqtt-broker: stopped", file=sys.stderr, flush=True)
        return 0


# ---------------------------------------------------------------- clients

def _client_args(p):
    p.add_argument("url", help="mqtt://HOST:PORT, mqtts://..., ws://HOST:PORT/PATH, wss://...")
    p.add_argument("-q", "--qos", type=int, choices=(0, 1, 2), default=0)
    p.add_argument("-V", "--protocol-version", type=int, choices=(3, 4, 5), default=4,
                   dest="version", help="3: MQTT 3.1, 4: 3.1.1 (default), 5: 5.0")
    p.add_argument("-i", "--id", default="", help="client id (default: assigned)")
    p.add_argument("-u", "--username", default="")
    p.add_argument("-P", "--pw", default="", dest="password")
    p.add_argument("-k", "--keepalive", type=int, default=60)
    p.add_argument("--cafile", help="PEM CA to verify an mqtts:// or wss:// broker")
    p.add_argument("--timeout", type=float, default=10.0,
                   help="seconds to wait for the broker (default 10)")


class _Session:
    """One client connection driven until done: records what the handler saw."""

    def __init__(self, args, command):
        self.command = command
        self.mgr = cm.Manager()
        self.opened = False
        self.error = None
        self.closed = False
        self.acked = set()
        self.suback = set()
        self.messages = []
        kw = {}
        if args.cafile:
            kw["tls"] = cm.TlsOpts(ca=_read(args.cafile))
        elif args.url.startswith(("mqtts://", "wss://")):
            raise MqttCliError("%s needs --cafile to verify the broker" % args.url)
        self.conn = self.mgr.mqtt_connect(
            args.url, self.handler, client_id=args.id, username=args.username,
            password=args.password, clean_session=True, keepalive=args.keepalive,
            version=args.version, **kw)

    def handler(self, conn, ev, data):
        if ev == cm.MG_EV_MQTT_OPEN:
            self.opened = True
        elif ev == cm.MG_EV_MQTT_CMD:
            if data.cmd in (4, 7):  # PUBACK, PUBCOMP
                self.acked.add(data.id)
            elif data.cmd == 9:  # SUBACK
                codes = data.codes()
                if any(c >= 0x80 for c in codes):
                    self.error = "subscription refused (codes %s)" % codes
                self.suback.add(data.id)
        elif ev == cm.MG_EV_MQTT_MSG:
            self.messages.append((data.topic, bytes(data.data)))
        elif ev == cm.MG_EV_ERROR:
            if self.error is None:
                self.error = str(data)
        elif ev == cm.MG_EV_CLOSE:
            self.closed = True

    def wait(self, cond, timeout):
        """Polls until cond() (True), an error or the connection's end (False),
        or timeout seconds (None: forever)."""
        deadline = None if timeout is None else cm.millis() + int(timeout * 1000)
        while not cond():
            if self.error is not None or self.closed:
                return False
            if deadline is not None and cm.millis() >= deadline:
                self.error = self.error or "timed out"
                return False
            self.mgr.poll(50)
        return True

    def finish(self):
        if not self.closed and self.opened:
            self.conn.mqtt_disconnect()
            self.wait(lambda: self.closed, 2)
        self.mgr.close()


class _Pub(_Command):
    name = "pub"

    def add_parser(self, subparsers):
        p = subparsers.add_parser(self.name, help="publish one MQTT message",
                                  description="Connects, publishes one message, waits for its "
                                              "acknowledgement at QoS 1/2, disconnects.")
        _client_args(p)
        p.add_argument("-t", "--topic", required=True)
        g = p.add_mutually_exclusive_group(required=True)
        g.add_argument("-m", "--message", help="the payload (UTF-8)")
        g.add_argument("-f", "--file", help="the payload: the contents of FILE")
        g.add_argument("-n", "--null-message", action="store_true",
                       help="an empty payload (with -r: clears the retained message)")
        g.add_argument("-s", "--stdin-file", action="store_true", help="the payload: stdin")
        p.add_argument("-r", "--retain", action="store_true")
        return p

    def _run(self, args):
        if args.message is not None:
            payload = args.message.encode()
        elif args.file is not None:
            payload = _read(args.file)
        elif args.stdin_file:
            payload = sys.stdin.buffer.read()
        else:
            payload = b""
        s = _Session(args, self.name)
        try:
            if not s.wait(lambda: s.opened, args.timeout):
                raise MqttCliError("%s: %s" % (args.url, s.error or "connection closed"))
            pid = s.conn.mqtt_pub(args.topic, payload, args.qos, args.retain)
            if args.qos > 0 and not s.wait(lambda: pid in s.acked, args.timeout):
                raise MqttCliError("no acknowledgement: %s" % (s.error or "connection closed"))
        finally:
            s.finish()
        return 0


class _Sub(_Command):
    name = "sub"

    def add_parser(self, subparsers):
        p = subparsers.add_parser(self.name, help="subscribe and print MQTT messages",
                                  description="Prints each message's payload on a line "
                                              "(--topics: 'TOPIC PAYLOAD').")
        _client_args(p)
        p.add_argument("-t", "--topic", action="append", required=True, metavar="FILTER",
                       help="topic filter (repeatable)")
        p.add_argument("-C", "--count", type=int, default=0,
                       help="exit after COUNT messages (default: run until Ctrl+C)")
        p.add_argument("-W", "--wait", type=float, default=None,
                       help="exit with status 1 after this many seconds")
        p.add_argument("--topics", action="store_true", help="print the topic before the payload")
        return p

    def _run(self, args):
        s = _Session(args, self.name)
        out = sys.stdout.buffer
        printed = 0
        try:
            if not s.wait(lambda: s.opened, args.timeout):
                raise MqttCliError("%s: %s" % (args.url, s.error or "connection closed"))
            for f in args.topic:
                s.conn.mqtt_sub(f, args.qos)
            deadline = None if args.wait is None else cm.millis() + int(args.wait * 1000)
            while args.count == 0 or printed < args.count:
                left = None if deadline is None else max(0.0, (deadline - cm.millis()) / 1000)
                got = s.wait(lambda: len(s.messages) > printed, left)
                for topic, payload in s.messages[printed:]:
                    if args.count and printed >= args.count:
                        break
                    line = (topic.encode() + b" " if args.topics else b"") + payload + b"\n"
                    out.write(line)
                    out.flush()
                    printed += 1
                if not got:
                    raise MqttCliError(s.error or "connection closed")
        finally:
            s.finish()
        return 0


SUBCOMMANDS = [_Broker(), _Pub(), _Sub()]


def add_subcommands(subparsers):
    """Adds mqtt-broker, pub and sub to an argparse subparsers object; each
    parser gets run= its command's run(args) (returns the exit status, raises
    MqttCliError for a one-line error)."""
    for cmd in SUBCOMMANDS:
        cmd.add_parser(subparsers).set_defaults(run=cmd.run)


def main(argv=None):
    """A parser with only the MQTT subcommands (used by __main__ until the
    full command line of cm.cli takes them in)."""
    p = argparse.ArgumentParser(prog="python3 -m cymongoose")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    add_subcommands(sub)
    args = p.parse_args(argv)
    return args.run(args)
