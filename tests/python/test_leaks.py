"""Reference counts and memory come back after many connections, timers, wakeups."""
import ctypes
import gc
import os
import socket
import sys
import tracemalloc
import weakref

import pytest

import cymongoose as cm
from core_helpers import poll_until

_libc = ctypes.CDLL(None)


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                 "fsmblks", "uordblks", "fordblks", "keepcost")]


def c_heap_in_use():
    """Bytes malloc()ed and not freed (glibc), C allocations included."""
    if not hasattr(_libc, "mallinfo2"):
        pytest.skip("needs glibc mallinfo2")
    _libc.mallinfo2.restype = _MallInfo2
    info = _libc.mallinfo2()
    return info.uordblks + info.hblkhd


def open_fds():
    return len(os.listdir("/proc/self/fd"))


class Handler:
    """A handler whose reference count we watch; keeps nothing."""

    def __init__(self):
        self.closed = 0

    def __call__(self, conn, ev, data):
        if ev == cm.MG_EV_READ:
            conn.send(conn.recv_data())
            conn.recv_consume()
        elif ev == cm.MG_EV_ACCEPT:
            conn.userdata = [conn.id]  # a Python object owned by the connection
        elif ev == cm.MG_EV_CLOSE:
            self.closed += 1


def churn(mgr, port, count, batch=100):
    for _ in range(count // batch):
        socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(batch)]
        for s in socks:
            s.sendall(b"ping")
        assert poll_until(mgr, lambda: len(mgr.connections) == batch + 1)
        for s in socks:
            s.close()
        assert poll_until(mgr, lambda: len(mgr.connections) == 1)


def test_thousand_connections_leave_nothing_behind():
    handler = Handler()
    mgr = cm.Manager()
    port = mgr.listen("tcp://127.0.0.1:0", handler).local_addr[1]  # children inherit it
    churn(mgr, port, 100)  # warm-up: caches, interned strings, buffers
    gc.collect()
    refs = sys.getrefcount(handler)
    objects = len(gc.get_objects())
    fds = open_fds()
    heap = c_heap_in_use()
    tracemalloc.start()
    snap = tracemalloc.take_snapshot()
    churn(mgr, port, 1000)
    gc.collect()
    py_growth = sum(s.size_diff for s in tracemalloc.take_snapshot().compare_to(snap, "filename"))
    tracemalloc.stop()
    assert handler.closed == 1100
    assert sys.getrefcount(handler) == refs
    assert len(gc.get_objects()) - objects < 50
    assert open_fds() == fds
    assert py_growth < 64 * 1024, py_growth
    assert c_heap_in_use() - heap < 1024 * 1024
    mgr.close()
    assert sys.getrefcount(handler) == refs - 1  # the listener's reference is gone too


def test_connection_objects_die_after_close():
    alive = weakref.WeakSet()

    def handler(conn, ev, data):
        alive.add(conn)

    with cm.Manager(handler) as mgr:
        port = mgr.listen("tcp://127.0.0.1:0").local_addr[1]
        socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(20)]
        assert poll_until(mgr, lambda: len(mgr.connections) == 21)
        for s in socks:
            s.close()
        assert poll_until(mgr, lambda: len(mgr.connections) == 1)
        assert len(alive) == 1  # only the listener is still referenced (by the core)
    assert len(alive) == 0


def test_unclosed_manager_in_a_cycle_is_collected_and_closed():
    closes = []

    class App:
        def __init__(self):
            self.mgr = cm.Manager(self.handler)  # cycle: mgr -> bound method -> app -> mgr
            self.mgr.listen("tcp://127.0.0.1:0")
            self.mgr.timer_add(60_000, self.tick, repeat=True)

        def handler(self, conn, ev, data):
            if ev == cm.MG_EV_CLOSE:
                closes.append(conn)

        def tick(self):
            pass

    fds = open_fds()
    app = App()
    ref = weakref.ref(app.mgr)
    del app
    gc.collect()
    assert ref() is None
    assert len(closes) == 1
    gc.collect()
    assert open_fds() <= fds


def test_timer_and_callback_cycle_is_collected():
    class Tick:
        def fire(self):
            pass

    mgr = cm.Manager()
    tick = Tick()
    # timer -> bound method -> tick -> mgr -> (the manager's reference) timer
    tick.timer = mgr.timer_add(60_000, tick.fire, repeat=True)
    tick.mgr = mgr
    probe = weakref.ref(tick)
    del tick, mgr
    gc.collect()
    assert probe() is None


def test_managers_created_and_dropped_do_not_leak():
    def once():
        with cm.Manager(enable_wakeup=True) as mgr:
            lst = mgr.listen("tcp://127.0.0.1:0")
            mgr.timer_add(1000, lambda: None)
            mgr.wakeup(lst.id, b"x" * 1000)
            mgr.poll(0)
        cm.Manager()  # dropped without close()

    for _ in range(20):
        once()
    gc.collect()
    fds = open_fds()
    heap = c_heap_in_use()
    objects = len(gc.get_objects())
    for _ in range(300):
        once()
    gc.collect()
    assert open_fds() == fds
    assert len(gc.get_objects()) - objects < 50
    assert c_heap_in_use() - heap < 512 * 1024


def test_big_wakeups_free_their_memory():
    got = []

    def handler(conn, ev, data):
        if ev == cm.MG_EV_WAKEUP:
            got.append(len(data))

    with cm.Manager(handler, enable_wakeup=True) as mgr:
        target = mgr.listen("tcp://127.0.0.1:0").id
        mgr.wakeup(target, b"w" * (1 << 20))
        assert poll_until(mgr, lambda: got)
        gc.collect()
        heap = c_heap_in_use()
        for _ in range(50):
            mgr.wakeup(target, b"w" * (1 << 20))
        assert poll_until(mgr, lambda: len(got) == 51)
        gc.collect()
        assert c_heap_in_use() - heap < 2 * 1024 * 1024
