"""Routing of exceptions raised by application code in the Python adapters."""
import sys
import traceback


def report(error_handler, exc):
    """Gives exc to error_handler, or prints its traceback on stderr when there
    is none; when the handler itself fails, both tracebacks are printed (exc
    as the context of the handler's), as the Manager does: an error is never
    lost."""
    if error_handler is not None:
        try:
            error_handler(exc)
            return
        except Exception as handler_exc:
            if handler_exc is not exc and handler_exc.__context__ is None:
                handler_exc.__context__ = exc
            exc = handler_exc
    traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
