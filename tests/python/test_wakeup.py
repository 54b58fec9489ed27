"""Cross-thread wakeup: every payload delivered once, in order per thread, any size."""
import socket
import threading

import cymongoose as cm
from core_helpers import poll_for, poll_until


def test_wakeup_needs_enabling():
    with cm.Manager() as mgr:
        lst = mgr.listen("tcp://127.0.0.1:0")
        assert mgr.wakeup_id == 0
        assert mgr.wakeup(lst.id, b"x") is False
        mgr.enable_wakeup()
        mgr.enable_wakeup()  # idempotent
        assert mgr.wakeup_id > 0
        assert mgr.wakeup(lst.id, b"x") is True


def test_wakeup_delivers_bytes_and_str():
    got = []

    def handler(conn, ev, data):
        if ev == cm.MG_EV_WAKEUP:
            got.append((conn, data))

    with cm.Manager(handler, enable_wakeup=True) as mgr:
        lst = mgr.listen("tcp://127.0.0.1:0")
        assert mgr.wakeup(lst.id) is True
        assert mgr.wakeup(lst.id, "caf\u00e9") is True
        assert mgr.wakeup(connection_id=lst.id, data=bytearray(b"ba")) is True
        assert poll_until(mgr, lambda: len(got) == 3)
        assert [d for _, d in got] == [b"", "caf\u00e9".encode(), b"ba"]
        assert all(c is lst for c, _ in got)


def test_wakeup_to_a_dead_connection_is_dropped():
    with cm.Manager(enable_wakeup=True) as mgr:
        assert mgr.wakeup(999_999, b"nobody") in (True, False)
        poll_for(mgr, 0.02)


def test_four_threads_every_payload_once_in_order():
    per_thread = 200
    big = 1024 * 1024
    got = {}

    def handler(conn, ev, data):
        if ev == cm.MG_EV_WAKEUP:
            tid, seq = data[0], int.from_bytes(data[1:5], "big")
            if len(data) > 5:
                assert len(data) == 5 + big and data[5:] == bytes([tid]) * big
            got.setdefault(tid, []).append(seq)

    with cm.Manager(handler, enable_wakeup=True) as mgr:
        target = mgr.listen("tcp://127.0.0.1:0").id
        failures = []

        def producer(tid):
            for seq in range(per_thread):
                head = bytes([tid]) + seq.to_bytes(4, "big")
                payload = head + bytes([tid]) * big if seq % 50 == 0 else head
                if not mgr.wakeup(target, payload):
                    failures.append((tid, seq))

        threads = [threading.Thread(target=producer, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        assert poll_until(mgr, lambda: sum(map(len, got.values())) == 4 * per_thread
                          and not any(t.is_alive() for t in threads), timeout=60)
        for t in threads:
            t.join()
        poll_for(mgr, 0.05)
    assert failures == []
    assert sorted(got) == [0, 1, 2, 3]
    for tid, seqs in got.items():
        assert seqs == list(range(per_thread)), tid


def test_wakeup_racing_with_close_is_safe():
    for _ in range(20):
        mgr = cm.Manager(enable_wakeup=True)
        target = mgr.listen("tcp://127.0.0.1:0").id
        stop = threading.Event()

        def spam():
            while not stop.is_set():
                mgr.wakeup(target, b"y" * 100_000)

        t = threading.Thread(target=spam)
        t.start()
        mgr.poll(1)
        mgr.close()
        stop.set()
        t.join()
        assert mgr.wakeup(target, b"after") is False


def test_wakeup_reaches_an_accepted_connection():
    got = []

    def handler(conn, ev, data):
        if ev == cm.MG_EV_ACCEPT:
            threading.Thread(target=mgr.wakeup, args=(conn.id, b"to child")).start()
        elif ev == cm.MG_EV_WAKEUP:
            conn.send(data)

    with cm.Manager(handler, enable_wakeup=True) as mgr:
        port = mgr.listen("tcp://127.0.0.1:0").local_addr[1]
        s = socket.create_connection(("127.0.0.1", port))
        s.settimeout(0.005)

        def step():
            try:
                got.append(s.recv(100))
            except socket.timeout:
                pass
            return b"".join(got) == b"to child"

        assert poll_until(mgr, step)
        s.close()


def test_wakeup_bad_arguments():
    import pytest
    with cm.Manager(enable_wakeup=True) as mgr:
        with pytest.raises(OverflowError):
            mgr.wakeup(-1, b"x")
        with pytest.raises(TypeError):
            mgr.wakeup("1", b"x")
        with pytest.raises(TypeError):
            mgr.wakeup(1, 5)
