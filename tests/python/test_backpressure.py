"""What one client that sends but never reads can make a server hold, and
refusals that must not pass silently: pipelined HTTP and WebSocket ping
floods against a server in a child process (its memory read from /proc),
send_limit, reply() refusals, the wakeup queue's bound."""
import os
import select
import socket
import subprocess
import sys
import textwrap

import pytest

import cymongoose as cm
from core_helpers import poll_until
from peers import measured_env

PYTHON_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "python")

SERVER = textwrap.dedent(
    """
    import sys
    import threading
    import cymongoose as cm

    BODY = b"r" * 4096

    def handler(conn, ev, data):
        if ev == cm.MG_EV_HTTP_MSG:
            if data.uri == "/ws":
                conn.ws_upgrade(data)
            else:
                conn.reply(200, BODY)

    mgr = cm.Manager(handler)
    lst = mgr.listen("http://127.0.0.1:0")
    print(lst.local_addr[1], flush=True)
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    while not stop.is_set():  # until the test closes our stdin
        mgr.poll(50)
    mgr.close()
    """
)


class Server:
    """A cymongoose HTTP/WebSocket server in a child process, so that the
    test can read the server's memory use from /proc."""

    def __init__(self):
        env = measured_env(PYTHONPATH=os.path.abspath(PYTHON_DIR))
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env
        )
        self.port = int(self.proc.stdout.readline())

    def rss_kib(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def stop(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=20)


@pytest.fixture
def server():
    s = Server()
    yield s
    s.stop()


def client(port):
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    s.setblocking(False)
    return s


def push_until_stalled(sock, data, quiet_s=1.5):
    """Sends data until it is all sent or the peer stops taking it (nothing
    accepted for quiet_s: the server paused reading).  Returns bytes sent.
    The pause only detects progress; nothing here asserts a duration."""
    sent = 0
    view = memoryview(data)
    while sent < len(data):
        _, w, _ = select.select([], [sock], [], quiet_s)
        if not w:
            break
        try:
            sent += sock.send(view[sent : sent + (1 << 20)])
        except BlockingIOError:
            pass
    return sent


def read_until(sock, data, done, pending=b"", sent=0):
    """Reads into bytearray got until done(got); keeps sending data[sent:]."""
    got = bytearray()
    view = memoryview(data)
    while not done(got):
        want_w = [sock] if sent < len(data) else []
        r, w, _ = select.select([sock], want_w, [], 20)
        assert r or w, "the server stopped answering"
        if w:
            try:
                sent += sock.send(view[sent : sent + (1 << 20)])
            except BlockingIOError:
                pass
        if r:
            chunk = sock.recv(1 << 20)
            assert chunk, "the server closed the connection"
            got += chunk
    return got


def test_pipelined_requests_never_read_keep_the_server_flat(server):
    base = server.rss_kib()
    request = b"GET / HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"p" * 990 + b"\r\n\r\n"
    n = (25 << 20) // len(request)  # 25 MiB of requests, 100 MiB of answers
    data = request * n
    sock = client(server.port)
    sent = push_until_stalled(sock, data)
    grown = server.rss_kib() - base
    assert sent < len(data)  # the server stopped reading ...
    assert grown < 40 * 1024, "server grew by %d KiB" % grown  # ... and holds little
    # Nothing lost: once read, every request has its answer.
    head = b"HTTP/1.1 200 OK\r\n"
    answer_len = None

    def all_answered(got):
        nonlocal answer_len
        if answer_len is None and got.find(b"\r\n\r\n") >= 0:
            answer_len = got.find(b"\r\n\r\n") + 4 + 4096
        return answer_len is not None and len(got) >= answer_len * n

    got = read_until(sock, data, all_answered, sent=sent)
    assert len(got) == answer_len * n
    assert got.count(head) == n
    assert server.rss_kib() - base < 40 * 1024
    sock.close()


def test_ping_flood_never_read_keeps_the_server_flat(server):
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.sendall(
        b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    sock.setblocking(False)
    base = server.rss_kib()
    ping = b"\x89\xfd" + b"\0" * 4 + b"x" * 125  # masked (zero key), 125 bytes
    n = (40 << 20) // len(ping)
    data = ping * n
    sent = push_until_stalled(sock, data)
    grown = server.rss_kib() - base
    assert sent < len(data)
    assert grown < 16 * 1024, "server grew by %d KiB" % grown
    pong = b"\x8a\x7d" + b"x" * 125
    got = read_until(sock, data, lambda g: len(g) >= len(pong) * n, sent=sent)
    assert len(got) == len(pong) * n
    assert got[: len(pong) * 3] == pong * 3
    assert server.rss_kib() - base < 16 * 1024
    sock.close()


def in_process_server(handler, **limits):
    mgr = cm.Manager(handler)
    for k, v in limits.items():
        setattr(mgr, k, v)
    port = mgr.listen("http://127.0.0.1:0").local_addr[1]
    return mgr, port


def test_send_limit_holds_pipelined_requests_instead_of_dropping_replies():
    def handler(conn, ev, data):
        if ev == cm.MG_EV_HTTP_MSG:
            conn.reply(200, b"b" * 8192)

    mgr, port = in_process_server(handler, send_limit=20000)
    try:
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setblocking(False)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 5)
        got = bytearray()

        def five():
            try:
                got.extend(sock.recv(1 << 20))
            except BlockingIOError:
                pass
            return got.count(b"HTTP/1.1 200") == 5 and got.endswith(b"b" * 100)

        assert poll_until(mgr, five), "got %d of 5 replies" % got.count(b"HTTP/1.1 200")
        sock.close()
    finally:
        mgr.close()


def test_refused_reply_raises_with_the_reason():
    seen = []

    def handler(conn, ev, data):
        if ev == cm.MG_EV_HTTP_MSG:
            try:
                conn.reply(200, b"abc", headers={"Content-Length": "5"})
            except ValueError as e:
                seen.append(str(e))
                conn.reply(200, b"fixed")

    mgr, port = in_process_server(handler)
    try:
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setblocking(False)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        got = bytearray()

        def answered():
            try:
                got.extend(sock.recv(65536))
            except BlockingIOError:
                pass
            return got.endswith(b"fixed")

        assert poll_until(mgr, answered)
        assert len(seen) == 1 and "Content-Length" in seen[0]
        sock.close()
    finally:
        mgr.close()


def test_reply_too_big_for_send_limit_fails_the_connection():
    errors = []

    def handler(conn, ev, data):
        if ev == cm.MG_EV_HTTP_MSG:
            conn.reply(200, b"b" * 50000)
        elif ev == cm.MG_EV_ERROR:
            errors.append(data)

    mgr, port = in_process_server(handler, send_limit=20000)
    try:
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setblocking(False)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        closed = []

        def gone():
            try:
                if sock.recv(65536) == b"":
                    closed.append(True)
            except BlockingIOError:
                pass
            return bool(closed)

        assert poll_until(mgr, gone)  # not left waiting for an answer
        assert len(errors) == 1 and "send_limit" in errors[0]
        sock.close()
    finally:
        mgr.close()


def test_wakeup_queue_is_bounded():
    mgr = cm.Manager(enable_wakeup=True)
    try:
        assert mgr.wakeup_max_bytes == 64 << 20
        assert mgr.wakeup_max_msgs == 100000
        assert mgr.send_hwm == 1 << 20
        got = []
        lst = mgr.listen("tcp://127.0.0.1:0", lambda c, ev, d: got.append(d) if ev == cm.MG_EV_WAKEUP else None)
        mgr.wakeup_max_msgs = 3
        assert [mgr.wakeup(lst.id, b"x") for _ in range(5)] == [True, True, True, False, False]
        assert poll_until(mgr, lambda: len(got) == 3)
        assert mgr.wakeup(lst.id, b"y")  # room again once the loop took the queue
        mgr.wakeup_max_msgs = 0
        mgr.wakeup_max_bytes = 100000
        big = b"z" * 40000
        assert [mgr.wakeup(lst.id, big) for _ in range(3)] == [True, True, False]
    finally:
        mgr.close()


def test_connection_send_hwm_and_is_send_full():
    mgr = cm.Manager()
    try:
        mgr.send_hwm = 1000
        lst = mgr.listen("tcp://127.0.0.1:0")
        c = mgr.connect("tcp://127.0.0.1:%d" % lst.local_addr[1])
        assert c.send_hwm == 0  # outbound: no pause unless asked for
        def accepted():
            return [x for x in mgr.connections if x is not c and not x.is_listening]

        assert poll_until(mgr, accepted)
        assert accepted()[0].send_hwm == 1000
        assert not c.is_send_full
        c.send_hwm = 10
        assert c.send(b"x" * 20)  # queued before the connect completes
        assert c.is_send_full
        c.send_hwm = 0
        assert not c.is_send_full
    finally:
        mgr.close()


def test_wakeup_from_eight_threads_stops_at_the_bound():
    import threading

    mgr = cm.Manager(enable_wakeup=True)
    try:
        mgr.wakeup_max_bytes = 8 << 20
        lst = mgr.listen("tcp://127.0.0.1:0")
        payload = b"p" * (256 << 10)
        accepted = [0] * 8
        refused = [0] * 8

        def flood(i):
            for _ in range(100):  # 200 MiB offered in all, loop not polling
                if mgr.wakeup(lst.id, payload):
                    accepted[i] += 1
                else:
                    refused[i] += 1

        threads = [threading.Thread(target=flood, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sum(refused) > 0
        assert sum(accepted) * len(payload) <= 8 << 20
    finally:
        mgr.close()
