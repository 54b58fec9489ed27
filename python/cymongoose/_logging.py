"""The C library's log lines through Python's logging module.

    import logging, cymongoose
    logging.basicConfig(level=logging.DEBUG)
    cymongoose.log_to_logging()          # level taken from the "cymongoose" logger

Lines go to the logger "cymongoose" (ERROR, INFO, DEBUG; the library's VERBOSE
maps to level 5, named VERBOSE); a record's filename and lineno are those of
the C source.  The C level decides what is formatted at all, so nothing is
paid for lines below it; log_to_stderr() restores the default sink.
"""
import atexit
import logging

from . import _mongoose

VERBOSE = 5
_TO_PY = {_mongoose.MG_LL_ERROR: logging.ERROR, _mongoose.MG_LL_INFO: logging.INFO,
          _mongoose.MG_LL_DEBUG: logging.DEBUG, _mongoose.MG_LL_VERBOSE: VERBOSE}


def _c_level_for(py_level):
    """The C level that produces every line py_level would let through."""
    if py_level <= VERBOSE:
        return _mongoose.MG_LL_VERBOSE
    if py_level <= logging.DEBUG:
        return _mongoose.MG_LL_DEBUG
    if py_level <= logging.INFO:
        return _mongoose.MG_LL_INFO
    if py_level <= logging.CRITICAL:
        return _mongoose.MG_LL_ERROR
    return _mongoose.MG_LL_NONE


def log_to_logging(level=None, logger="cymongoose"):
    """Sends the C library's log lines to logging.getLogger(logger).

    level is a C level (MG_LL_ERROR..MG_LL_VERBOSE); None takes it from the
    logger's effective level (logging.DEBUG gives MG_LL_DEBUG, and so on).
    Returns the C level set.
    """
    log = logging.getLogger(logger)
    if logging.getLevelName(VERBOSE) == "Level %d" % VERBOSE:
        logging.addLevelName(VERBOSE, "VERBOSE")

    def sink(c_level, filename, lineno, message):
        py_level = _TO_PY.get(c_level, logging.ERROR)
        if log.isEnabledFor(py_level):
            log.handle(log.makeRecord(log.name, py_level, filename, lineno, message, None, None))

    if level is None:
        level = _c_level_for(log.getEffectiveLevel())
    _mongoose._log_set_sink(sink)
    _mongoose.log_set(level)
    return level


def log_to_stderr():
    """Back to the default: C log lines on stderr, at the level log_set() sets."""
    _mongoose._log_set_sink(None)


# No Python call may come from the C library once the interpreter is going away.
atexit.register(log_to_stderr)
