"""Connection: TCP/UDP/IPv6 over real loopback sockets, Python's socket module as the peer."""
import socket
import threading
import time

import pytest

import cymongoose as cm
from core_helpers import EventLog, poll_for, poll_until


def echo(conn, ev, data):
    if ev == cm.MG_EV_READ:
        conn.send(conn.recv_data())
        conn.recv_consume()


def read_exactly(sock, n, mgr):
    """Reads n bytes from a blocking-with-timeout socket while polling mgr."""
    sock.settimeout(0.005)
    got = b""

    def step():
        nonlocal got
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            return len(got) >= n
        if not chunk:
            return True
        got += chunk
        return len(got) >= n

    assert poll_until(mgr, step)
    return got


def test_tcp_echo_server_many_clients():
    with cm.Manager(echo) as mgr:
        lst = mgr.listen("tcp://127.0.0.1:0")
        port = lst.local_addr[1]
        assert lst.is_listening and port > 0
        assert lst.local_addr == ("127.0.0.1", port, False)
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(5)]
        for i, s in enumerate(clients):
            s.sendall(b"hello %d" % i)
        for i, s in enumerate(clients):
            assert read_exactly(s, len(b"hello %d" % i), mgr) == b"hello %d" % i
        # Consumed bytes are not echoed again.
        for i, s in enumerate(clients):
            s.sendall(b"again")
            assert read_exactly(s, 5, mgr) == b"again"
        assert len(mgr.connections) == 6
        server_side = [c for c in mgr.connections if not c.is_listening]
        assert {c.remote_addr[1] for c in server_side} == {s.getsockname()[1] for s in clients}
        assert all(not c.is_client and not c.is_udp for c in server_side)
        for s in clients:
            s.close()
        assert poll_until(mgr, lambda: len(mgr.connections) == 1)


def test_recv_data_keeps_bytes_until_consumed():
    log = EventLog()
    with cm.Manager(log) as mgr:
        port = mgr.listen("tcp://127.0.0.1:0").local_addr[1]
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"abcdef")
        assert poll_until(mgr, lambda: any(c.recv_len == 6 for c in mgr.connections))
        conn = [c for c in mgr.connections if not c.is_listening][0]
        assert conn.recv_data() == b"abcdef"
        assert conn.recv_data(2) == b"ab"
        assert conn.recv_data(100) == b"abcdef"
        assert conn.recv_data() == b"abcdef"  # copies: nothing consumed
        conn.recv_consume(2)
        assert conn.recv_data() == b"cdef" and conn.recv_len == 4
        conn.recv_consume()
        assert conn.recv_data() == b"" and conn.recv_len == 0
        conn.recv_consume(10)  # more than there is: harmless
        s.close()


def test_send_is_visible_before_poll_and_accepts_str():
    log = EventLog()
    with cm.Manager(log) as mgr:
        port = mgr.listen("tcp://127.0.0.1:0").local_addr[1]
        s = socket.create_connection(("127.0.0.1", port))
        assert poll_until(mgr, lambda: len(mgr.connections) == 2)
        conn = mgr.connections[1]
        assert conn.send(b"bytes ") is True
        assert conn.send("h\u00e9") is True
        assert conn.send(bytearray(b"!")) is True
        assert conn.send_data() == "bytes h\u00e9!".encode()
        assert conn.send_data(5) == b"bytes"
        assert conn.send_len == len("bytes h\u00e9!".encode())
        with pytest.raises(TypeError):
            conn.send(12)
        assert read_exactly(s, 10, mgr) == "bytes h\u00e9!".encode()
        s.close()


def test_udp_echo_server():
    with cm.Manager(echo) as mgr:
        lst = mgr.listen("udp://127.0.0.1:0")
        assert lst.is_udp
        port = lst.local_addr[1]
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(0.005)
        got = []

        def step():
            try:
                got.append(s.recvfrom(2048))
            except socket.timeout:
                pass
            return len(got) == 2

        s.sendto(b"one", ("127.0.0.1", port))
        s.sendto(b"two", ("127.0.0.1", port))
        assert poll_until(mgr, step)
        assert sorted(d for d, _ in got) == [b"one", b"two"]
        assert all(addr == ("127.0.0.1", port) for _, addr in got)
        s.close()


def test_udp_client_to_python_server():
    srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    srv.bind(("127.0.0.1", 0))
    srv.settimeout(10)
    log = EventLog()
    with cm.Manager(log) as mgr:
        conn = mgr.connect("udp://127.0.0.1:%d" % srv.getsockname()[1])
        assert conn.is_udp and conn.is_client
        assert poll_until(mgr, lambda: cm.MG_EV_CONNECT in log.of(conn))
        assert conn.send(b"ping") is True
        data, addr = srv.recvfrom(100)
        assert data == b"ping"
        srv.sendto(b"pong", addr)
        assert poll_until(mgr, lambda: conn.recv_data() == b"pong")
    srv.close()


def test_ipv6_loopback():
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        probe = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        probe.bind(("::1", 0))
        probe.close()
    except OSError:
        pytest.skip("::1 is not available")
    with cm.Manager(echo) as mgr:
        lst = mgr.listen("tcp://[::1]:0")
        ip, port, is_ipv6 = lst.local_addr
        assert (ip, is_ipv6) == ("::1", True)
        s = socket.create_connection(("::1", port))
        s.sendall(b"six")
        assert read_exactly(s, 3, mgr) == b"six"
        child = [c for c in mgr.connections if not c.is_listening][0]
        assert child.remote_addr == ("::1", s.getsockname()[1], True)
        s.close()


def test_client_connects_to_python_server():
    srv = socket.create_server(("127.0.0.1", 0))
    port = srv.getsockname()[1]
    log = EventLog()
    with cm.Manager() as mgr:
        conn = mgr.connect("tcp://127.0.0.1:%d" % port, log)
        assert conn.is_client
        peer, _ = srv.accept()
        assert poll_until(mgr, lambda: cm.MG_EV_CONNECT in log.of(conn))
        assert conn.remote_addr == ("127.0.0.1", port, False)
        conn.send(b"from client")
        assert read_exactly(peer, 11, mgr) == b"from client"
        peer.sendall(b"from server")
        assert poll_until(mgr, lambda: conn.recv_data() == b"from server")
        peer.close()  # the peer closes: our side gets CLOSE
        assert poll_until(mgr, lambda: cm.MG_EV_CLOSE in log.of(conn))
        assert log.of(conn)[0] == cm.MG_EV_OPEN and log.of(conn)[-1] == cm.MG_EV_CLOSE
    srv.close()


def test_connect_refused_gives_error_then_close():
    probe = socket.create_server(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there now
    log = EventLog()
    with cm.Manager(log) as mgr:
        conn = mgr.connect("tcp://127.0.0.1:%d" % port)
        assert poll_until(mgr, lambda: cm.MG_EV_CLOSE in log.of(conn))
        evs = log.of(conn)
        assert evs.count(cm.MG_EV_CLOSE) == 1 and evs[-1] == cm.MG_EV_CLOSE
        assert cm.MG_EV_CONNECT not in evs
        errors = log.data(cm.MG_EV_ERROR)
        assert len(errors) == 1 and isinstance(errors[0], str)
        assert "refused" in errors[0].lower()
        assert "closed" in repr(conn) and conn.is_closing


def test_bad_urls_raise_runtime_error():
    with cm.Manager() as mgr:
        with pytest.raises(RuntimeError):
            mgr.listen("tcp://not-an-ip-literal.invalid:0")
        with pytest.raises(ValueError, match="no port"):
            mgr.connect("tcp://127.0.0.1")  # no port
        busy = mgr.listen("tcp://127.0.0.1:0")
        with pytest.raises(RuntimeError):
            mgr.listen("tcp://127.0.0.1:%d" % busy.local_addr[1])
        with pytest.raises(TypeError):
            mgr.listen("tcp://127.0.0.1:0", 42)
        assert len(mgr.connections) == 1


def test_close_is_last_and_exactly_once_for_every_connection():
    log = EventLog(echo)
    mgr = cm.Manager(log)
    port = mgr.listen("tcp://127.0.0.1:0").local_addr[1]
    socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(4)]
    assert poll_until(mgr, lambda: len(mgr.connections) == 5)
    socks[0].close()
    socks[1].sendall(b"x")
    poll_for(mgr, 0.05)
    mgr.close()
    conns = {c for c, _, _ in log.events}
    assert len(conns) == 5
    for c in conns:
        evs = log.of(c)
        assert evs[0] == cm.MG_EV_OPEN
        assert evs.count(cm.MG_EV_CLOSE) == 1 and evs[-1] == cm.MG_EV_CLOSE
    for s in socks:
        s.close()


def test_same_object_and_userdata_for_every_event():
    seen = {}

    def handler(conn, ev, data):
        if ev == cm.MG_EV_ACCEPT:
            conn.userdata = {"n": 0}
        if conn.userdata is not None:
            conn.userdata["n"] += 1
        seen.setdefault(conn.id or "closed", set()).add(id(conn))

    with cm.Manager(handler) as mgr:
        port = mgr.listen("tcp://127.0.0.1:0").local_addr[1]
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"data")
        assert poll_until(mgr, lambda: len(mgr.connections) == 2)
        child = mgr.connections[1]
        assert poll_until(mgr, lambda: child.recv_len == 4)
        assert child.userdata["n"] >= 2
        assert seen[child.id] == {id(child)}
        s.close()


def test_handler_resolution():
    default = EventLog()
    own = EventLog()
    changed = EventLog()
    with cm.Manager(default) as mgr:
        lst = mgr.listen("tcp://127.0.0.1:0", own)
        assert lst.handler is own
        port = lst.local_addr[1]
        s1 = socket.create_connection(("127.0.0.1", port))
        assert poll_until(mgr, lambda: len(own.conns(cm.MG_EV_ACCEPT)) == 1)
        first = own.conns(cm.MG_EV_ACCEPT)[0]
        assert first.handler is own  # inherited from the listener
        lst.set_handler(changed)     # new children inherit this one
        s2 = socket.create_connection(("127.0.0.1", port))
        assert poll_until(mgr, lambda: len(changed.conns(cm.MG_EV_ACCEPT)) == 1)
        assert own.conns(cm.MG_EV_OPEN)[0] is lst  # the listener's OPEN went to its handler
        second = changed.conns(cm.MG_EV_ACCEPT)[0]
        first.handler = None         # back to the manager's default
        s1.sendall(b"x")
        assert poll_until(mgr, lambda: first in default.conns(cm.MG_EV_READ))
        assert second.handler is changed
        assert default.events and all(c is first for c, _, _ in default.events)
        with pytest.raises(TypeError):
            first.set_handler(3)
        s1.close()
        s2.close()


def test_close_from_inside_the_handler():
    log = EventLog()

    def handler(conn, ev, data):
        if ev == cm.MG_EV_READ:
            conn.send(b"bye")
            conn.close()

    log.on_event = handler
    with cm.Manager(log) as mgr:
        port = mgr.listen("tcp://127.0.0.1:0").local_addr[1]
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"hi")
        s.settimeout(10)
        assert poll_until(mgr, lambda: len(log.conns(cm.MG_EV_CLOSE)) == 1)
        child = log.conns(cm.MG_EV_CLOSE)[0]
        assert log.of(child)[-1] == cm.MG_EV_CLOSE
        rest = s.recv(100)
        assert rest in (b"", b"bye")  # close() is immediate: the reply may be dropped
        if rest:
            assert s.recv(100) == b""
        s.close()


def test_error_method_delivers_error_then_closes():
    log = EventLog()
    with cm.Manager(log) as mgr:
        port = mgr.listen("tcp://127.0.0.1:0").local_addr[1]
        s = socket.create_connection(("127.0.0.1", port))
        assert poll_until(mgr, lambda: len(mgr.connections) == 2)
        child = mgr.connections[1]
        child.error("custom failure \u2713")
        assert log.data(cm.MG_EV_ERROR) == ["custom failure \u2713"]
        assert child.is_closing
        assert poll_until(mgr, lambda: cm.MG_EV_CLOSE in log.of(child))
        s.close()


def test_closed_connection_behaves_as_in_the_original():
    with cm.Manager() as mgr:
        port = mgr.listen("tcp://127.0.0.1:0").local_addr[1]
        s = socket.create_connection(("127.0.0.1", port))
        assert poll_until(mgr, lambda: len(mgr.connections) == 2)
        child = mgr.connections[1]
        child.userdata = "kept"
        cid, local, remote = child.id, child.local_addr, child.remote_addr
        child.close()
        assert poll_until(mgr, lambda: child not in mgr.connections)
        # Sending raises; closing, draining and reading the buffers do not.
        for call in (lambda: child.send(b"x"), lambda: child.error("x"), child.recv_consume):
            with pytest.raises(RuntimeError, match="Connection has been closed"):
                call()
        assert child.close() is None and child.drain() is None
        assert child.recv_data() == b"" and child.send_data() == b""
        assert child.is_closing is True
        assert (child.id, child.local_addr, child.remote_addr) == (cid, local, remote)
        assert (child.recv_len, child.send_len, child.is_listening, child.is_full) == (0, 0, False, False)
        assert (child.is_client, child.is_udp) == (False, False)
        assert child.userdata == "kept"
        assert "closed" in repr(child)
        s.close()
    with pytest.raises(TypeError):
        cm.Connection()


def test_drain_flushes_a_large_send_to_a_slow_reader():
    size = 8 * 1024 * 1024
    payload = bytes(range(256)) * (size // 256)

    def handler(conn, ev, data):
        if ev == cm.MG_EV_ACCEPT:
            conn.send(payload)
            conn.drain()

    received = bytearray()
    done = threading.Event()

    def reader(port):
        s = socket.create_connection(("127.0.0.1", port))
        s.settimeout(30)
        time.sleep(0.05)  # let the server fill the socket buffers first
        try:
            while True:
                chunk = s.recv(16384)  # small, slow reads: the server must wait for us
                if not chunk:
                    break
                received.extend(chunk)
                time.sleep(0.0005)
        finally:
            s.close()
            done.set()

    log = EventLog(handler)
    with cm.Manager(log) as mgr:
        port = mgr.listen("tcp://127.0.0.1:0").local_addr[1]
        t = threading.Thread(target=reader, args=(port,))
        t.start()
        assert poll_until(mgr, lambda: len(log.conns(cm.MG_EV_ACCEPT)) == 1)
        child = log.conns(cm.MG_EV_ACCEPT)[0]
        assert child.is_draining
        assert poll_until(mgr, done.is_set, timeout=60)
        t.join()
        assert poll_until(mgr, lambda: cm.MG_EV_CLOSE in log.of(child))
    assert len(received) == size and bytes(received) == payload


def test_backpressure_full_until_consumed():
    total = 256 * 1024
    log = EventLog()
    with cm.Manager(log) as mgr:
        mgr.recv_limit = 8192
        assert mgr.recv_limit == 8192
        port = mgr.listen("tcp://127.0.0.1:0").local_addr[1]
        s = socket.create_connection(("127.0.0.1", port))
        sender = threading.Thread(target=s.sendall, args=(b"z" * total,))
        sender.start()
        assert poll_until(mgr, lambda: len(mgr.connections) == 2)
        child = mgr.connections[1]
        assert child.recv_limit == 8192
        assert poll_until(mgr, lambda: child.is_full)
        assert child.recv_len >= 8192
        poll_for(mgr, 0.05)
        assert child.is_full  # nothing consumed: still paused
        seen = child.recv_len
        assert seen < total   # and it stopped reading
        child.recv_consume()
        assert not child.is_full
        consumed = seen

        def step():
            nonlocal consumed
            n = child.recv_len
            if n:
                assert child.recv_data() == b"z" * n
                child.recv_consume(n)
                consumed += n
            return consumed >= total

        assert poll_until(mgr, step)
        assert consumed == total
        sender.join()
        child.recv_limit = 1 << 20
        assert child.recv_limit == 1 << 20
        with pytest.raises(ValueError):
            child.recv_limit = 0
        s.close()


def test_flags_and_sizes_are_readable():
    with cm.Manager() as mgr:
        lst = mgr.listen("tcp://127.0.0.1:0")
        for name in ("is_listening", "is_closing", "is_client", "is_tls", "is_udp",
                     "is_websocket", "is_readable", "is_writable", "is_full", "is_draining"):
            assert isinstance(getattr(lst, name), bool), name
        for name in ("recv_len", "send_len", "recv_size", "send_size"):
            assert isinstance(getattr(lst, name), int), name
        assert lst.id > 0
        assert repr(lst).startswith("<Connection id=")


def test_idle_keepalive_connection_holds_no_buffers_and_knows_its_address():
    """After a keep-alive request is answered the connection gives its
    buffers back (recv_size and send_size 0), and local_addr of a
    connection accepted on a wildcard listener is read on demand."""
    accepted = []

    def handler(conn, ev, data):
        if ev == cm.MG_EV_ACCEPT:
            accepted.append(conn)
        elif ev == cm.MG_EV_HTTP_MSG:
            conn.reply(200, b"hi")

    with cm.Manager(handler) as mgr:
        listener = mgr.listen("http://0.0.0.0:0", http=True)
        port = listener.local_addr[1]
        with socket.create_connection(("127.0.0.1", port), 5) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            got = b""

            def answered():
                nonlocal got
                s.setblocking(False)
                try:
                    got += s.recv(4096)
                except BlockingIOError:
                    pass
                return got.endswith(b"hi")

            poll_until(mgr, answered)
            mgr.poll(0)
            c = accepted[0]
            assert c.recv_size == 0 and c.send_size == 0
            assert c.local_addr[0] == "127.0.0.1"
            assert c.local_addr[1] == port


def _one_connection(port):
    """A client connects and closes at once."""
    socket.create_connection(("127.0.0.1", port)).close()


def test_reused_connection_object_starts_fresh():
    # A closed Connection that nothing refers to any more is reused for a
    # later connection (one allocation fewer per connection): it must not
    # carry anything from its previous life.
    seen, closes, ids = [], [], []

    def handler(conn, ev, data):
        if conn.is_listening:
            return
        if ev == cm.MG_EV_OPEN:
            ids.append(id(conn))
            seen.append((conn.id, conn.userdata, conn.handler, conn.is_closing,
                         conn.is_client, conn.is_listening, conn.remote_addr[1] != 0))
            # leave state behind for the next life to (not) find
            conn.userdata = {"previous": conn.id}
        if ev == cm.MG_EV_ACCEPT:
            # a handler of its own from now on: still sees CLOSE
            conn.set_handler(lambda c, e, d: closes.append(c.id) if e == cm.MG_EV_CLOSE else None)

    with cm.Manager(handler) as mgr:
        port = mgr.listen("tcp://127.0.0.1:0").local_addr[1]
        for n in range(1, 6):
            _one_connection(port)
            assert poll_until(mgr, lambda: len(closes) == n)
    conn_ids = [s[0] for s in seen]
    assert len(set(conn_ids)) == 5  # each life has its own id
    for conn_id, userdata, h, closing, client, listening, has_peer in seen:
        assert userdata is None and h is None
        assert not closing and not client and not listening and has_peer
    assert len(set(ids)) < len(ids)  # the object was reused at least once


def test_kept_or_weakly_referenced_connection_is_not_reused():
    import weakref

    kept, refs, objs = [], [], []

    def handler(conn, ev, data):
        if conn.is_listening or ev != cm.MG_EV_OPEN:
            return
        objs.append(id(conn))
        if len(objs) == 1:
            kept.append(conn)          # the application keeps the first
        elif len(objs) == 2:
            refs.append(weakref.ref(conn))  # and a weak reference to the second
        conn.userdata = len(objs)

    with cm.Manager(handler) as mgr:
        port = mgr.listen("tcp://127.0.0.1:0").local_addr[1]
        for n in range(1, 5):
            _one_connection(port)
            assert poll_until(mgr, lambda: len(mgr.connections) == 1 and len(objs) == n)
        first = kept[0]
        assert first.is_closing and first.userdata == 1  # as the original: state kept
        assert id(first) not in objs[1:]
        second = refs[0]()
        # Either freed (the reference is dead) or still the closed second
        # connection: never a later one.
        assert second is None or second.userdata == 2
