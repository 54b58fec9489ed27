"""Every snippet of the seed user guide runs unchanged: the programs under
examples/python/ that hold them (basic_pattern.py and seed_*.py) are started
as subprocesses and exercised with real requests."""
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import requests

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
EXAMPLES = os.path.join(ROOT, "examples", "python")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Program:
    def __init__(self, name, *args):
        env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "python"))
        self.proc = subprocess.Popen([sys.executable, os.path.join(EXAMPLES, name)] + [str(a) for a in args],
                                     env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def wait_port(self, port, host="127.0.0.1"):
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail("exited early: %s" % self.proc.stderr.read())
            try:
                socket.create_connection((host, port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        pytest.fail("not listening on %d" % port)

    def stop(self, signum=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
        try:
            out, err = self.proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
            pytest.fail("did not stop: %s" % err)
        assert "Traceback" not in err, err
        return self.proc.returncode, out


def raw_exchange(port, request):
    """Sends request, reads until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        s.sendall(request)
        chunks = []
        while True:
            b = s.recv(65536)
            if not b:
                return b"".join(chunks)
            chunks.append(b)


def basic_pattern_on_free_port(tmp_path):
    """The Basic Pattern's text with its fixed port 8000 changed to a free
    one (another process may hold 8000): (path of the copy, port)."""
    port = free_port()
    with open(os.path.join(EXAMPLES, "basic_pattern.py")) as f:
        text = f.read()
    assert text.count("0.0.0.0:8000") == 1
    path = tmp_path / "basic_pattern.py"
    path.write_text(text.replace("0.0.0.0:8000", "0.0.0.0:%d" % port))
    return str(path), port


def test_basic_pattern_serves_http_on_port_8000(tmp_path):
    """Basic Pattern: listens on 0.0.0.0:8000 (here a free port instead) with
    HTTP parsing on.  Its handler does nothing, so a request stays
    unanswered, but the HTTP layer is there: a malformed request gets its
    400."""
    path, port = basic_pattern_on_free_port(tmp_path)
    p = Program(path)  # absolute: os.path.join keeps it
    try:
        p.wait_port(port)
        got = raw_exchange(port, b"GET / HTTP/1.1\r\nHost : x\r\n\r\n")
        assert got.startswith(b"HTTP/1.1 400 ")
        with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # accepted, left unanswered
            s.settimeout(0.3)
            with pytest.raises(socket.timeout):
                s.recv(100)
    finally:
        rc, out = p.stop(signal.SIGINT)
    assert rc == 0 and "Shutting down..." in out


def test_event_handler_prints_http_and_websocket_messages():
    port = free_port()
    p = Program("seed_event_handler.py", port)
    try:
        p.wait_port(port)
        r = requests.post("http://127.0.0.1:%d/some/path?q=1" % port, data=b"x", timeout=10)
        assert r.status_code == 200 and r.text == "seen POST /some/path\n"
        ws_done = False
        try:
            import websocket
        except ImportError:
            websocket = None
        import cymongoose
        if websocket is not None and hasattr(cymongoose.Connection, "ws_upgrade"):
            ws = websocket.create_connection("ws://127.0.0.1:%d/ws" % port, timeout=10)
            ws.send("hi there")
            assert ws.recv() == "hi there"
            ws.close()
            ws_done = True
    finally:
        rc, out = p.stop()
    assert rc == 0
    assert "POST /some/path\n" in out
    if ws_done:
        assert "GET /ws\n" in out and "WebSocket: hi there\n" in out


def test_graceful_shutdown_replies_then_closes():
    port = free_port()
    p = Program("seed_graceful_shutdown.py", port)
    try:
        p.wait_port(port)
        # Keep-alive asked for, yet the server closes after flushing the reply.
        got = raw_exchange(port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n")
        assert got.startswith(b"HTTP/1.1 200 OK\r\n") and got.endswith(b"\r\n\r\nGoodbye!")
        assert b"Content-Length: 8\r\n" in got
        # A pipelined second request is never answered: the first reply drains and closes.
        got = raw_exchange(port, b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n")
        assert got.count(b"Goodbye!") == 1
        assert requests.get("http://127.0.0.1:%d/" % port, timeout=10).text == "Goodbye!"
    finally:
        rc, out = p.stop()
    assert rc == 0


def test_error_handling_turns_exceptions_into_500_and_prints_errors():
    port, refused = free_port(), free_port()  # nothing listens on `refused`
    p = Program("seed_error_handling.py", port, refused)
    try:
        p.wait_port(port)
        assert requests.get("http://127.0.0.1:%d/ok" % port, timeout=10).text == "fine"
        got = raw_exchange(port, b"GET /broken HTTP/1.1\r\nHost: x\r\n\r\n")
        assert got.startswith(b"HTTP/1.1 500 Internal Server Error\r\n")
        assert got.endswith(b"Internal Server Error")
    finally:
        rc, out = p.stop()
    assert rc == 0
    assert "Handler error: no route for /broken\n" in out
    assert "Error: " in out and "refused" in out.lower()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_handling_and_poll_timeout(signum):
    port = free_port()
    p = Program("seed_signals_and_polling.py", port)
    try:
        p.wait_port(port)
        assert requests.get("http://127.0.0.1:%d/" % port, timeout=10).text == "polled\n"
    finally:
        rc, out = p.stop(signum)
    assert rc == 0 and out.endswith("closed\n")
