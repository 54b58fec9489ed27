"""Routing of exceptions raised by application code in the Python adapters."""
import sys
import traceback


def report(error_handler, exc):
    """Gives exc to error_handler, or prints its traceback on stderr when there
    is none or the handler itself fails: an error is never lost."""
    if error_handler is not None:
        try:
            error_handler(exc)
            return
        except Exception:  # a failing error handler: fall through to stderr
            pass
    traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
