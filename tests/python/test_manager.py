"""Manager: lifecycle, poll rules, handler errors, the GIL around the wait."""
import socket
import sys
import threading

import pytest

import cymongoose as cm
from core_helpers import EventLog, poll_for, poll_until


def test_context_manager_closes_and_close_is_idempotent():
    log = EventLog()
    with cm.Manager(log) as mgr:
        lst = mgr.listen("tcp://127.0.0.1:0")
        assert mgr.closed is False
    assert mgr.closed is True
    assert log.of(lst) == [cm.MG_EV_OPEN, cm.MG_EV_CLOSE]
    assert "closed" in repr(lst) and lst.id == 1  # a closed connection keeps its id
    mgr.close()
    mgr.close()
    assert mgr.connections == ()


def test_exit_returns_false_so_exceptions_propagate():
    with pytest.raises(ZeroDivisionError):
        with cm.Manager() as mgr:
            1 / 0
    assert mgr.closed


def test_use_after_close_raises():
    mgr = cm.Manager()
    mgr.close()
    with pytest.raises(RuntimeError):
        mgr.poll(0)
    with pytest.raises(RuntimeError):
        mgr.listen("tcp://127.0.0.1:0")
    with pytest.raises(RuntimeError):
        mgr.connect("tcp://127.0.0.1:1")
    with pytest.raises(RuntimeError):
        mgr.timer_add(10, lambda: None)
    with pytest.raises(RuntimeError):
        mgr.run()
    assert mgr.wakeup(1, b"x") is False
    assert mgr.wakeup_id == 0


def test_reentrant_poll_raises():
    errors = []

    def handler(conn, ev, data):
        if ev == cm.MG_EV_POLL and not errors:
            try:
                mgr.poll(0)
            except RuntimeError as exc:
                errors.append(str(exc))

    with cm.Manager(handler) as mgr:
        mgr.listen("tcp://127.0.0.1:0")
        assert poll_until(mgr, lambda: errors)
    assert "poll() is not reentrant" in errors[0]


def test_reentrant_poll_from_timer_raises():
    errors = []

    def cb():
        try:
            mgr.poll(0)
        except RuntimeError as exc:
            errors.append(exc)

    with cm.Manager() as mgr:
        mgr.timer_add(0, cb)
        assert poll_until(mgr, lambda: errors)


def test_poll_arguments():
    with cm.Manager() as mgr:
        mgr.poll()
        mgr.poll(0)
        mgr.poll(timeout_ms=1)
        mgr.poll(-5)  # treated as 0
        with pytest.raises(TypeError):
            mgr.poll("1")
        with pytest.raises(TypeError):
            mgr.poll(1, 2)
        with pytest.raises(TypeError):
            mgr.poll(timeout=1)


def test_constructor_checks_arguments():
    with pytest.raises(TypeError):
        cm.Manager(5)
    with pytest.raises(TypeError):
        cm.Manager(error_handler="nope")
    mgr = cm.Manager(handler=None, enable_wakeup=True, error_handler=None)
    assert mgr.wakeup_id > 0
    mgr.close()


def test_handler_and_error_handler_attributes():
    def h(conn, ev, data):
        pass

    def eh(exc):
        pass

    with cm.Manager(h, error_handler=eh) as mgr:
        assert mgr.handler is h and mgr.error_handler is eh
        mgr.error_handler = None
        assert mgr.error_handler is None
        mgr.handler = None
        assert mgr.handler is None
        with pytest.raises(TypeError):
            mgr.handler = 1


def test_connections_excludes_internal_and_lists_oldest_first():
    with cm.Manager(enable_wakeup=True) as mgr:
        a = mgr.listen("tcp://127.0.0.1:0")
        b = mgr.listen("udp://127.0.0.1:0")
        assert mgr.connections == (a, b)
        assert mgr.wakeup_id not in (a.id, b.id)
        b.close()
        assert poll_until(mgr, lambda: mgr.connections == (a,))


def test_handler_exception_goes_to_error_handler_and_loop_continues():
    caught = []
    events = []

    def handler(conn, ev, data):
        events.append(ev)
        if ev == cm.MG_EV_ACCEPT:
            raise ValueError("boom in handler")

    with cm.Manager(handler, error_handler=caught.append) as mgr:
        port = mgr.listen("tcp://127.0.0.1:0").local_addr[1]
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"x")
        assert poll_until(mgr, lambda: cm.MG_EV_READ in events)
        s.close()
    assert len(caught) == 1 and isinstance(caught[0], ValueError)
    assert str(caught[0]) == "boom in handler"
    assert caught[0].__traceback__ is not None


def test_handler_exception_without_error_handler_prints_traceback(capsys):
    def handler(conn, ev, data):
        if ev == cm.MG_EV_OPEN:
            raise KeyError("printed key")

    with cm.Manager(handler) as mgr:
        lst = mgr.listen("tcp://127.0.0.1:0")
        mgr.poll(0)
        assert lst.is_listening  # the loop goes on
    err = capsys.readouterr().err
    assert "Traceback" in err and "printed key" in err


def test_error_handler_that_raises_is_reported_not_fatal(monkeypatch, capsys):
    unraisable = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: unraisable.append(u.exc_value))

    def handler(conn, ev, data):
        if ev == cm.MG_EV_OPEN:
            raise ValueError("first")

    def bad_error_handler(exc):
        raise RuntimeError("second")

    with cm.Manager(handler, error_handler=bad_error_handler) as mgr:
        lst = mgr.listen("tcp://127.0.0.1:0")
        mgr.poll(0)
        assert lst.is_listening  # the loop goes on
    # Both tracebacks on stderr, as the original prints them; nothing is
    # routed to sys.unraisablehook.
    assert unraisable == []
    err = capsys.readouterr().err
    assert err.count("Traceback") == 2
    assert "ValueError: first" in err and "RuntimeError: second" in err
    assert err.index("ValueError: first") < err.index("RuntimeError: second")


def test_keyboard_interrupt_in_handler_surfaces_from_poll():
    def handler(conn, ev, data):
        if ev == cm.MG_EV_POLL:
            raise KeyboardInterrupt

    with cm.Manager(handler) as mgr:
        mgr.listen("tcp://127.0.0.1:0")
        with pytest.raises(KeyboardInterrupt):
            mgr.poll(0)
        mgr.handler = None
        mgr.poll(0)  # usable afterwards


def test_close_from_a_handler_is_deferred_to_the_end_of_poll():
    log = EventLog()

    def handler(conn, ev, data):
        if ev == cm.MG_EV_ACCEPT:
            mgr.close()

    log.on_event = handler
    mgr = cm.Manager(log)
    lst = mgr.listen("tcp://127.0.0.1:0")
    s = socket.create_connection(("127.0.0.1", lst.local_addr[1]))
    assert poll_until(mgr, lambda: mgr.closed)
    conns = {c for c, _, _ in log.events}
    assert len(conns) == 2
    for c in conns:
        assert log.of(c)[-1] == cm.MG_EV_CLOSE and "closed" in repr(c)
    with pytest.raises(RuntimeError):
        mgr.poll(0)
    s.close()


def test_close_from_a_close_handler_during_close():
    calls = []

    def handler(conn, ev, data):
        if ev == cm.MG_EV_CLOSE:
            calls.append(conn)
            mgr.close()  # re-entrant close: ignored
            with pytest.raises(RuntimeError):
                mgr.listen("tcp://127.0.0.1:0")

    mgr = cm.Manager(handler)
    mgr.listen("tcp://127.0.0.1:0")
    mgr.listen("tcp://127.0.0.1:0")
    mgr.close()
    assert len(calls) == 2


def test_gil_is_released_while_poll_waits():
    """A thread can call wakeup() while the main thread is blocked in one long poll."""
    got = []
    started = threading.Event()

    def handler(conn, ev, data):
        if ev == cm.MG_EV_WAKEUP:
            got.append(data)

    with cm.Manager(handler, enable_wakeup=True) as mgr:
        lst = mgr.listen("tcp://127.0.0.1:0")

        def worker():
            started.wait()
            mgr.wakeup(lst.id, b"while blocked")

        t = threading.Thread(target=worker)
        t.start()
        started.set()
        # If the GIL were held during the wait, the worker could not run and
        # this single poll would sit out its whole timeout (the test's deadline).
        for _ in range(3):
            mgr.poll(100_000)
            if got:
                break
        t.join()
    assert got == [b"while blocked"]


def test_protocol_connects_without_a_peer():
    # What each protocol entry point does, asserted: connects return a
    # Connection whose failure comes as events (ERROR, then CLOSE).
    log = []

    def handler(conn, ev, data):
        log.append((conn.id, ev))

    with cm.Manager(handler) as mgr:
        ws = mgr.ws_connect("ws://127.0.0.1:1/")  # nothing listens on port 1
        mqtt = mgr.mqtt_connect("mqtt://127.0.0.1:1")
        for c in (ws, mqtt):
            assert isinstance(c, cm.Connection) and c.is_client
        sntp = mgr.sntp_connect("udp://127.0.0.1:1")
        assert isinstance(sntp, cm.Connection) and sntp.is_udp
        broker = mgr.mqtt_listen("mqtt://127.0.0.1:0")
        assert broker.is_listening
        ws_id, mqtt_id, sntp_id = ws.id, mqtt.id, sntp.id
        for cid in (ws_id, mqtt_id):
            assert poll_until(mgr, lambda: (cid, cm.MG_EV_CLOSE) in log)
            assert (cid, cm.MG_EV_ERROR) in log  # connection refused
        if (sntp_id, cm.MG_EV_CLOSE) not in log:
            sntp.close()
        assert poll_until(mgr, lambda: (sntp_id, cm.MG_EV_CLOSE) in log)


def test_http_keyword_and_scheme_are_accepted():
    with cm.Manager() as mgr:
        a = mgr.listen("http://127.0.0.1:0")
        b = mgr.listen("tcp://127.0.0.1:0", http=True)
        c = mgr.listen("HTTP://127.0.0.1:0", http=False)
        assert a.is_listening and b.is_listening and c.is_listening
        poll_for(mgr, 0.01)


def test_limits_are_configurable():
    with cm.Manager() as mgr:
        assert mgr.recv_limit > 0
        mgr.send_limit = 1000
        mgr.max_conns = 10
        assert (mgr.send_limit, mgr.max_conns) == (1000, 10)
        with pytest.raises(ValueError):
            mgr.recv_limit = 0
        port = mgr.listen("tcp://127.0.0.1:0").local_addr[1]
        s = socket.create_connection(("127.0.0.1", port))
        assert poll_until(mgr, lambda: len(mgr.connections) == 2)
        child = mgr.connections[1]
        assert child.send(b"a" * 1000) is True
        assert child.send(b"b") is False  # over send_limit
        s.close()


def test_subclassing_manager():
    class Sub(cm.Manager):
        def __init__(self):
            super().__init__(None, True)
            self.extra = 1

    with Sub() as m:
        assert m.extra == 1 and m.wakeup_id > 0


def test_stub_declares_every_public_name():
    import ast
    import os
    stub = os.path.join(os.path.dirname(cm._mongoose.__file__), "_mongoose.pyi")
    tree = ast.parse(open(stub).read())
    declared = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            declared.add(node.name)
        elif isinstance(node, ast.AnnAssign):
            declared.add(node.target.id)
    public = {n for n in dir(cm._mongoose) if not n.startswith("_")}
    assert public - declared == set()
    for cls in ("Manager", "Connection", "Timer"):
        node = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls)
        members = {n.name for n in node.body if isinstance(n, ast.FunctionDef)}
        members |= {n.target.id for n in node.body if isinstance(n, ast.AnnAssign)}
        real = {n for n in dir(getattr(cm, cls)) if not n.startswith("_")}
        assert real - members == set(), cls


def test_close_from_a_handler_run_by_listen_or_error():
    def close_on_open(conn, ev, data):
        if ev == cm.MG_EV_OPEN:
            mgr.close()  # inside listen(): deferred until listen() is back

    mgr = cm.Manager(close_on_open)
    lst = mgr.listen("tcp://127.0.0.1:0")
    assert mgr.closed and "closed" in repr(lst)

    def close_on_error(conn, ev, data):
        if ev == cm.MG_EV_ERROR:
            mgr.close()  # inside conn.error()

    mgr = cm.Manager(close_on_error)
    lst = mgr.listen("tcp://127.0.0.1:0")
    lst.error("stop")
    assert mgr.closed and "closed" in repr(lst)


def test_poll_event_reaches_every_connection_every_poll():
    polls = {}

    def handler(conn, ev, data):
        if ev == cm.MG_EV_POLL:
            assert data is None
            polls[conn] = polls.get(conn, 0) + 1

    with cm.Manager(handler, enable_wakeup=True) as mgr:
        conns = [mgr.listen("tcp://127.0.0.1:0") for _ in range(3)]
        conns.append(mgr.listen("udp://127.0.0.1:0"))
        for _ in range(5):
            mgr.poll(0)
        assert set(polls) == set(conns)  # the internal wakeup connection is not seen
        assert all(n == 5 for n in polls.values())


def test_http_flag_is_keyword_only():
    with cm.Manager() as mgr:
        with pytest.raises(TypeError):
            mgr.listen("tcp://127.0.0.1:0", None, True)
        with pytest.raises(TypeError):
            mgr.listen()



@pytest.mark.parametrize("call", ["send", "reply", "close", "ws_close", "http_chunk"])
def test_output_hook_may_close_the_manager_inside_a_call(call):
    # The output hook runs from inside the core (a connection got output
    # while no poll runs).  Closing the manager there used to free the
    # connection under the call still using it (ASan: heap-use-after-free);
    # every entry point is bracketed, so the close waits for the call.
    with cm.Manager() as mgr:
        port = mgr.listen("tcp://127.0.0.1:0", http=True).local_addr[1]
        conn = mgr.connect("http://127.0.0.1:%d" % port)
        closes = []

        def hook():
            closes.append(mgr.closed)
            mgr.close()
        mgr.output_hook = hook
        if call == "send":
            conn.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        elif call == "reply":
            conn.reply(200, b"x")
        elif call == "close":
            conn.close()
        elif call == "ws_close":
            conn.ws_close()  # not a WebSocket: nothing queued, no hook
        else:
            conn.http_chunk(b"x")
        if call == "ws_close":
            assert closes == [] and not mgr.closed
        else:
            assert closes == [False]  # the hook ran once, from inside the call
            assert mgr.closed  # and the close happened as the call returned
            assert conn.is_closing and "closed" in repr(conn)  # detached


def test_listen_reuse_port_lets_two_managers_share_a_port():
    """reuse_port=True (SO_REUSEPORT): a second Manager (in a worker process,
    typically) listens on the same port; without it the port is taken."""
    import socket as _socket

    served = []

    def handler(conn, ev, data):
        if ev == cm.MG_EV_HTTP_MSG:
            served.append(conn)
            conn.reply(200, b"ok")

    with cm.Manager(handler) as a, cm.Manager(handler) as b:
        la = a.listen("http://127.0.0.1:0", reuse_port=True)
        port = la.local_addr[1]
        with pytest.raises(RuntimeError):
            b.listen("http://127.0.0.1:%d" % port)
        lb = b.listen("http://127.0.0.1:%d" % port, reuse_port=True)
        assert lb.local_addr[1] == port
        with pytest.raises(TypeError):
            a.connect("http://127.0.0.1:%d" % port, reuse_port=True)
        with _socket.create_connection(("127.0.0.1", port), 5) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            s.setblocking(False)
            got = b""
            for _ in range(500):
                a.poll(5)
                b.poll(5)
                try:
                    chunk = s.recv(4096)
                except BlockingIOError:
                    continue
                if not chunk:
                    break
                got += chunk
        assert got.startswith(b"HTTP/1.1 200")
        assert len(served) == 1
