"""The command line: `python3 -m cymongoose SUBCOMMAND ...`.

Each subcommand is a module with add_parser(subparsers) and run(args) -> exit
status.  Errors the user can fix end in one line on stderr (CliError), never a
traceback; Ctrl+C stops cleanly.  The MQTT subcommands (mqtt-broker, pub,
sub) are objects of the same shape from cli/mqtt.py.
"""
import argparse
import sys

from . import echo, get, mqtt, resolve, serve, sntp, ws
from .common import CliError


SUBCOMMANDS = [serve, echo, get, ws, sntp, resolve] + mqtt.SUBCOMMANDS


def build_parser():
    from .._version import __version__
    p = argparse.ArgumentParser(
        prog="python3 -m cymongoose",
        description="cymongoose from the command line: serve files, echo, fetch URLs, "
                    "talk WebSocket, ask for the time, resolve names.")
    p.add_argument("--version", action="version", version="cymongoose " + __version__)
    p.add_argument("-v", "--verbose", action="count", default=0,
                   help="library log lines on stderr (-v: info, -vv: debug, -vvv: verbose)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module in SUBCOMMANDS:
        module.add_parser(sub).set_defaults(run=module.run)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.verbose:
        import logging
        import cymongoose
        py_level = {1: logging.INFO, 2: logging.DEBUG}.get(args.verbose, 5)
        logging.basicConfig(format="%(asctime)s %(levelname)s %(filename)s:%(lineno)d %(message)s",
                            stream=sys.stderr, level=py_level)
        cymongoose.log_to_logging(min(cymongoose.MG_LL_ERROR + args.verbose, cymongoose.MG_LL_VERBOSE))
    try:
        return args.run(args)
    except CliError as e:
        print("cymongoose %s: %s" % (args.command, e), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    except BrokenPipeError:  # `... | head`: the reader has gone, nothing to report
        sys.stderr.close()
        return 0
