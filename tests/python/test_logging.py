"""The library's log through Python's logging, and the HTTP access log from Python."""
import logging
import os
import threading

import pytest
import requests

import cymongoose as cm
from core_helpers import poll_until


@pytest.fixture
def restore_log():
    yield
    cm.log_to_stderr()
    cm.log_set(cm.MG_LL_NONE)


class Records(logging.Handler):
    def __init__(self):
        super().__init__(level=1)
        self.records = []

    def emit(self, record):
        self.records.append(record)


def get_in_thread(url, **kwargs):
    result = {}

    def run():
        result["response"] = requests.get(url, timeout=10, **kwargs)
    t = threading.Thread(target=run)
    t.start()
    return t, result


def serve_one_request(mgr, lst, path="/story"):
    t, result = get_in_thread("http://127.0.0.1:%d%s" % (lst.local_addr[1], path),
                              headers={"Connection": "close"})
    assert poll_until(mgr, lambda: "response" in result)
    t.join()
    poll_until(mgr, lambda: len(mgr.connections) == 1, timeout=2)  # its close
    return result["response"]


def reply_ok(conn, ev, data):
    if ev == cm.MG_EV_HTTP_MSG:
        conn.reply(200, "ok")


def test_debug_story_goes_to_the_cymongoose_logger(restore_log):
    logger = logging.getLogger("cymongoose")
    handler = Records()
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        assert cm.log_to_logging() == cm.MG_LL_DEBUG  # from the logger's level
        with cm.Manager(reply_ok) as mgr:
            lst = mgr.listen("http://127.0.0.1:0")
            assert serve_one_request(mgr, lst).text == "ok"
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    messages = [r.getMessage() for r in handler.records]
    assert all(r.levelno == logging.DEBUG for r in handler.records)
    assert any("listening on http://127.0.0.1:0" in m for m in messages)
    assert any("accepted from 127.0.0.1:" in m for m in messages)
    assert any("GET /story HTTP/1.1" in m for m in messages)
    assert any("closed (" in m for m in messages)
    # The record points at the C source that logged.
    assert any(r.filename == "access_log.c" and r.lineno > 0 for r in handler.records)


def test_error_level_maps_and_nothing_below_it(restore_log):
    handler = Records()
    logger = logging.getLogger("cymongoose.test")
    logger.addHandler(handler)
    try:
        assert cm.log_to_logging(cm.MG_LL_ERROR, logger="cymongoose.test") == cm.MG_LL_ERROR
        assert cm.log_get() == cm.MG_LL_ERROR
        with cm.Manager() as mgr:
            conn = mgr.connect("tcp://127.0.0.1:1")  # refused: an ERROR line
            assert poll_until(mgr, lambda: conn.is_closing or not mgr.connections)
            lst = mgr.listen("http://127.0.0.1:0", reply_ok)
            serve_one_request(mgr, lst)
    finally:
        logger.removeHandler(handler)
    assert [r.levelno for r in handler.records] == [logging.ERROR]
    assert "connect 127.0.0.1:1" in handler.records[0].getMessage()


def test_log_set_still_writes_to_stderr(restore_log, capfd):
    cm.log_to_logging(cm.MG_LL_DEBUG)
    cm.log_to_stderr()
    cm.log_set(cm.MG_LL_DEBUG)
    with cm.Manager() as mgr:
        mgr.listen("tcp://127.0.0.1:0")
    cm.log_set(cm.MG_LL_NONE)
    assert "DEBUG sock.c:" in capfd.readouterr().err


def test_a_failing_sink_is_reported_not_raised(restore_log):
    def boom(*args):
        raise ValueError("sink failed")
    seen = []
    old = __import__("sys").unraisablehook
    __import__("sys").unraisablehook = seen.append
    try:
        cm._mongoose._log_set_sink(boom)
        cm.log_set(cm.MG_LL_DEBUG)
        with cm.Manager() as mgr:
            mgr.listen("tcp://127.0.0.1:0")
    finally:
        __import__("sys").unraisablehook = old
    assert seen and isinstance(seen[0].exc_value, ValueError)


# ------------------------------------------------------------------ access log

def test_access_log_to_a_callable_a_file_and_a_descriptor(tmp_path):
    lines = []
    path = tmp_path / "access.log"
    fd_path = tmp_path / "fd.log"
    fd = os.open(fd_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    with open(path, "w") as f, cm.Manager(reply_ok) as mgr:
        a = mgr.listen("http://127.0.0.1:0", access_log=lines.append, access_log_format="common")
        b = mgr.listen("http://127.0.0.1:0", access_log=f)
        c = mgr.listen("http://127.0.0.1:0", access_log=fd)
        for lst in (a, b, c):
            serve_one_request(mgr, lst, "/x?y=1")
    os.close(fd)
    assert len(lines) == 1 and lines[0].endswith('] "GET /x?y=1 HTTP/1.1" 200 2')
    for p in (path, fd_path):
        text = p.read_text()
        assert text.count("\n") == 1 and '"GET /x?y=1 HTTP/1.1" 200 2 "-" "python-requests/' in text


def test_access_log_arguments_are_checked():
    with cm.Manager() as mgr:
        with pytest.raises(ValueError):
            mgr.listen("http://127.0.0.1:0", access_log=print, access_log_format="fancy")
        with pytest.raises(TypeError):
            mgr.listen("http://127.0.0.1:0", access_log=3.5)
        with pytest.raises(TypeError):
            mgr.connect("http://127.0.0.1:1", access_log=print)
