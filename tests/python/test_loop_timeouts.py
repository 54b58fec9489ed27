"""MG_EV_POLL's cadence and the HTTP timeouts that live in the timer heap.

Real sockets on loopback; no assertion on timings: each test checks what
happened (which events, which error message, which status).
"""
import socket
import time

import pytest

import cymongoose as cm


def tcp_client(port):
    return socket.create_connection(("127.0.0.1", port), timeout=5)


class Counter:
    def __init__(self):
        self.polls = 0
        self.accepted = 0
        self.msgs = 0

    def __call__(self, conn, ev, data):
        if ev == cm.MG_EV_ACCEPT:
            self.accepted += 1
        elif ev == cm.MG_EV_POLL and not conn.is_listening:
            self.polls += 1
        elif ev == cm.MG_EV_HTTP_MSG:
            self.msgs += 1
            conn.reply(200, b"ok")


def open_idle(mgr, port, n, seen):
    socks = [tcp_client(port) for _ in range(n)]
    for _ in range(500):
        if seen.accepted >= n:
            break
        mgr.poll(10)
    assert seen.accepted == n
    return socks


def request(mgr, sock, seen):
    before = seen.msgs
    sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    for _ in range(100):
        if seen.msgs > before:
            break
        mgr.poll(1000)
    assert sock.recv(4096).startswith(b"HTTP/1.1 200 ")


def test_busy_polls_skip_idle_connections_and_idle_polls_reach_them():
    seen = Counter()
    with cm.Manager(seen, poll_interval_ms=3_600_000) as mgr:
        assert mgr.poll_events and mgr.poll_interval_ms == 3_600_000
        port = mgr.listen("http://127.0.0.1:0").local_addr[1]
        socks = open_idle(mgr, port, 200, seen)
        busy = tcp_client(port)
        socks.append(busy)
        seen.polls = 0
        for _ in range(50):
            request(mgr, busy, seen)
        assert seen.polls == 0
        mgr.poll(1)  # an idle call: its whole timeout, nothing to do
        assert seen.polls == 201
        mgr.poll_events = False
        mgr.poll(1)
        assert seen.polls == 201
        mgr.poll_events = True
        mgr.poll_interval_ms = 0  # every poll, as the original
        request(mgr, busy, seen)
        assert seen.polls >= 402
        for s in socks:
            s.close()


def test_manager_poll_options_are_checked():
    with pytest.raises(ValueError):
        cm.Manager(poll_interval_ms=-1)
    with cm.Manager(poll_events=False) as mgr:
        assert mgr.poll_events is False


def test_idle_timeout_closes_without_poll_events():
    seen = Counter()
    with cm.Manager(seen, poll_events=False) as mgr:
        port = mgr.listen("http://127.0.0.1:0", http_idle_timeout_ms=50).local_addr[1]
        socks = open_idle(mgr, port, 50, seen)
        closed = 0
        for s in socks:
            s.settimeout(0)
        for _ in range(500):
            mgr.poll(20)
            for s in list(socks):
                try:
                    if s.recv(1) == b"":
                        socks.remove(s)
                        s.close()
                        closed += 1
                except BlockingIOError:
                    pass
            if not socks:
                break
        assert closed == 50 and seen.polls == 0


class ClientEvents:
    def __init__(self):
        self.events = []
        self.errors = []

    def __call__(self, conn, ev, data):
        self.events.append(ev)
        if ev == cm.MG_EV_ERROR:
            self.errors.append(data)


def run_until_closed(mgr, client):
    for _ in range(1000):
        if cm.MG_EV_CLOSE in client.events:
            return
        mgr.poll(10)


def test_http_client_connect_timeout_against_a_full_backlog():
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(0)  # never accepted: one connection fills the queue
    port = lst.getsockname()[1]
    fillers = []
    for _ in range(4):
        f = socket.socket()
        f.setblocking(False)
        f.connect_ex(("127.0.0.1", port))
        fillers.append(f)
    time.sleep(0.1)
    client = ClientEvents()
    try:
        with cm.Manager() as mgr:
            mgr.connect("http://127.0.0.1:%d" % port, client, http_connect_timeout_ms=200)
            run_until_closed(mgr, client)
        assert client.errors == ["connect timed out"]
        assert cm.MG_EV_CONNECT not in client.events
    finally:
        for f in fillers:
            f.close()
        lst.close()


def test_http_client_response_timeout_against_a_silent_server():
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(8)  # the kernel completes the handshake; nobody ever answers
    client = ClientEvents()
    try:
        with cm.Manager() as mgr:
            c = mgr.connect("http://127.0.0.1:%d" % lst.getsockname()[1], client,
                            http_response_timeout_ms=200)
            c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            run_until_closed(mgr, client)
        assert client.errors == ["response timed out"]
        assert cm.MG_EV_CONNECT in client.events
    finally:
        lst.close()


def test_client_and_server_timeouts_are_not_mixed_up():
    with cm.Manager() as mgr:
        with pytest.raises(TypeError):
            mgr.listen("http://127.0.0.1:0", http_connect_timeout_ms=10)
        with pytest.raises(TypeError):
            mgr.connect("http://127.0.0.1:1", http_body_timeout_ms=10)
        with pytest.raises(ValueError):
            mgr.listen("http://127.0.0.1:0", http_body_min_rate=0)


def test_a_trickled_body_is_cut_off_with_408():
    seen = Counter()
    with cm.Manager(seen) as mgr:
        port = mgr.listen("http://127.0.0.1:0", http_body_timeout_ms=1000,
                          http_body_min_rate=1_000_000).local_addr[1]
        s = tcp_client(port)
        s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 200\r\n\r\n")
        s.settimeout(0)
        got = b""
        sent = 0
        # one byte per >= 20 ms: the 200 bytes would take >= 4 s, the
        # deadline (1 s, as nothing extends it at this rate) comes first
        while sent < 200 and not got:
            try:
                s.send(b"x")
            except OSError:
                break
            sent += 1
            time.sleep(0.02)
            mgr.poll(0)
            mgr.poll(0)
            try:
                got = s.recv(4096)
            except BlockingIOError:
                pass
        for _ in range(100):
            if got:
                break
            mgr.poll(10)
            try:
                got = s.recv(4096)
            except BlockingIOError:
                pass
        s.close()
        assert sent < 199
        assert got.startswith(b"HTTP/1.1 408 ") and b"too slow" in got
        assert seen.msgs == 0


def test_timeout_zero_turns_the_idle_timeout_off():
    # Two listeners, one with a short idle timeout, one with it off (0): once
    # the first has closed its idle connection, the second's is still open.
    seen = Counter()
    with cm.Manager(seen) as mgr:
        short = mgr.listen("http://127.0.0.1:0", http_idle_timeout_ms=50).local_addr[1]
        off = mgr.listen("http://127.0.0.1:0", http_idle_timeout_ms=0,
                         http_header_timeout_ms=0, http_body_timeout_ms=0).local_addr[1]
        a, b = tcp_client(short), tcp_client(off)
        request(mgr, a, seen)
        request(mgr, b, seen)
        a.settimeout(0)
        b.settimeout(0)
        for _ in range(500):
            mgr.poll(20)
            try:
                if a.recv(1) == b"":
                    break
            except BlockingIOError:
                pass
        else:
            pytest.fail("the short idle timeout never closed its connection")
        for _ in range(10):  # ten more turns of the loop: the other stays
            mgr.poll(20)
        with pytest.raises(BlockingIOError):
            b.recv(1)
        request(mgr, b, seen)  # and still answers
        a.close()
        b.close()


def test_client_timeouts_zero_means_off_negative_is_refused():
    with cm.Manager() as mgr:
        c = mgr.connect("http://127.0.0.1:1", http_connect_timeout_ms=0,
                        http_response_timeout_ms=0)
        c.close()
        with pytest.raises((ValueError, OverflowError)):
            mgr.listen("http://127.0.0.1:0", http_idle_timeout_ms=-1)
        with pytest.raises(ValueError):
            mgr.listen("http://127.0.0.1:0", http_max_body=0)
