"""Arguments whose conversion runs Python code that closes the manager.

A header mapping's items(), a body object's buffer or the data json.dumps
walks run application code while a Connection method converts its
arguments.  Called outside poll() (a reply given later, as an application
holding the connection does), a manager closed by that code is closed at
once and the connection freed: the method must then raise RuntimeError
(closed connection) instead of touching the freed connection
(heap-use-after-free under scripts/python-asan.sh, PYTHONMALLOC=malloc).
Inside a handler close() is deferred to the end of poll(), so serve_dir()'s
__fspath__ (a message lives only inside its handler) cannot free it.
"""
import socket

import pytest

import cymongoose as cm
from core_helpers import poll_until


class ClosesManager:
    """Calls mgr.close() when converted; stands for any user hook."""

    def __init__(self, mgr, value):
        self.mgr = mgr
        self.value = value

    def close_now(self):
        self.mgr.close()
        return self.value


class Headers(ClosesManager):
    def __getitem__(self, key):
        return dict(self.value)[key]

    def keys(self):
        return dict(self.value).keys()

    def __len__(self):
        return len(self.value)

    def items(self):
        return list(self.close_now())


def call_after_poll(call):
    """Answers a request outside the handler (after poll() returned, where
    close() is not deferred): call(mgr, conn); returns what it raised."""
    mgr = cm.Manager()
    got = []

    def handler(conn, ev, data):
        if ev == cm.MG_EV_HTTP_MSG:
            got.append(conn)

    port = mgr.listen("http://127.0.0.1:0", handler).local_addr[1]
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert poll_until(mgr, lambda: got)
    try:
        call(mgr, got[0])
        raised = None
    except Exception as e:  # noqa: BLE001 - returned to the test
        raised = e
    assert mgr.closed
    sock.close()
    return raised


def test_reply_with_header_mapping_that_closes_the_manager():
    e = call_after_poll(lambda mgr, conn: conn.reply(200, b"x", Headers(mgr, [("X-A", "b")])))
    assert isinstance(e, RuntimeError)


def test_reply_json_with_header_mapping_that_closes_the_manager():
    e = call_after_poll(
        lambda mgr, conn: conn.reply_json({"a": 1}, 200, Headers(mgr, [("X-A", "b")])))
    assert isinstance(e, RuntimeError)


def test_reply_json_whose_default_hook_closes_the_manager():
    class Data(dict):
        def __init__(self, mgr):
            super().__init__(a=1)
            self.mgr = mgr

        def items(self):
            self.mgr.close()
            return super().items()

    e = call_after_poll(lambda mgr, conn: conn.reply_json(Data(mgr)))
    assert e is None or isinstance(e, RuntimeError)


def test_http_chunk_with_body_that_closes_the_manager():
    class Body:
        def __init__(self, mgr):
            self.mgr = mgr

        def __buffer__(self, flags):
            self.mgr.close()
            return memoryview(b"abc")

    import sys
    if sys.version_info < (3, 12):
        pytest.skip("__buffer__ needs Python 3.12")
    e = call_after_poll(lambda mgr, conn: conn.http_chunk(Body(mgr)))
    assert isinstance(e, RuntimeError)
