"""Timers: one-shot, repeat, run_now, cancel (also from other threads), errors."""
import sys
import time
import threading

import pytest

import cymongoose as cm
from core_helpers import poll_for, poll_until


def test_one_shot_fires_once_and_becomes_inactive():
    calls = []
    with cm.Manager() as mgr:
        t = mgr.timer_add(20, lambda: calls.append(1))
        assert t.active
        assert poll_until(mgr, lambda: calls)
        poll_for(mgr, 0.1)
        assert calls == [1]
        assert not t.active
        t.cancel()  # harmless once done


def test_zero_ms_timer_fires_on_the_next_poll():
    calls = []
    with cm.Manager() as mgr:
        mgr.timer_add(0, lambda: calls.append(1))
        mgr.poll(0)
        assert calls == [1]


def test_repeat_until_cancelled_from_the_callback():
    calls = []
    with cm.Manager() as mgr:
        def cb():
            calls.append(1)
            if len(calls) == 3:
                timer.cancel()
        timer = mgr.timer_add(5, cb, repeat=True)
        assert poll_until(mgr, lambda: len(calls) == 3)
        poll_for(mgr, 0.1)
        assert len(calls) == 3 and not timer.active


def test_run_now_fires_at_the_first_poll():
    calls = []
    with cm.Manager() as mgr:
        t = mgr.timer_add(60_000, lambda: calls.append(1), repeat=True, run_now=True)
        mgr.poll(0)
        assert calls == [1]
        assert t.active  # and again in a minute
        t.cancel()
        assert not t.active
        once = mgr.timer_add(60_000, lambda: calls.append(2), run_now=True)
        mgr.poll(0)
        assert calls == [1, 2]
        assert not once.active  # once means once, even with run_now


def test_cancel_before_it_fires():
    calls = []
    with cm.Manager() as mgr:
        t = mgr.timer_add(30, lambda: calls.append(1))
        t.cancel()
        assert not t.active
        poll_for(mgr, 0.1)
        assert calls == []


def test_cancel_from_another_thread():
    calls = []
    with cm.Manager() as mgr:
        t = mgr.timer_add(1, lambda: calls.append(1), repeat=True)
        assert poll_until(mgr, lambda: calls)
        th = threading.Thread(target=t.cancel)
        th.start()
        while th.is_alive():
            mgr.poll(1)
        th.join()
        poll_for(mgr, 0.02)
        n = len(calls)
        poll_for(mgr, 0.1)
        assert len(calls) == n and not t.active


def test_callback_errors_go_to_error_handler():
    caught = []
    calls = []

    def bad():
        calls.append(1)
        raise ValueError("timer boom")

    with cm.Manager(error_handler=caught.append) as mgr:
        t = mgr.timer_add(1, bad, repeat=True)
        assert poll_until(mgr, lambda: len(calls) >= 2)  # keeps firing after an error
        t.cancel()
    assert all(isinstance(e, ValueError) for e in caught) and len(caught) == len(calls)


def test_callback_error_without_error_handler_is_printed(capsys):
    with cm.Manager() as mgr:
        mgr.timer_add(0, lambda: 1 / 0)
        mgr.poll(0)
    assert "ZeroDivisionError" in capsys.readouterr().err


def test_timer_can_close_the_manager():
    with cm.Manager() as mgr:
        mgr.timer_add(0, mgr.close)
        mgr.poll(0)
        assert mgr.closed


def test_close_releases_pending_timers_and_their_callbacks():
    class Callback:
        def __call__(self):
            pass

    cb = Callback()
    base = sys.getrefcount(cb)
    mgr = cm.Manager()
    timers = [mgr.timer_add(10_000, cb) for _ in range(10)]
    assert sys.getrefcount(cb) == base + 10
    mgr.close()
    assert not any(t.active for t in timers)
    del timers
    assert sys.getrefcount(cb) == base


def test_a_dropped_timer_object_still_fires():
    calls = []
    with cm.Manager() as mgr:
        mgr.timer_add(1, lambda: calls.append(1))  # Timer object not kept
        assert poll_until(mgr, lambda: calls)


def test_bad_arguments():
    with cm.Manager() as mgr:
        with pytest.raises(TypeError):
            mgr.timer_add(10, "not callable")
        with pytest.raises(ValueError):
            mgr.timer_add(-1, lambda: None)
        with pytest.raises(TypeError):
            mgr.timer_add(10, lambda: None, True)  # repeat is keyword-only
        with pytest.raises(TypeError):
            mgr.timer_add(10)
        with pytest.raises(TypeError):
            mgr.timer_add(10, lambda: None, bogus=1)
        t = mgr.timer_add(milliseconds=10, callback=lambda: None, repeat=True, run_now=False)
        assert t.active and "active" in repr(t)
        t.cancel()
    with pytest.raises(TypeError):
        cm.Timer()


def test_fire_and_forget_storm():
    # Each Timer dropped at once: the manager's reference is the last one, and
    # the core must not read the timer after releasing it (a use-after-free
    # that ASan shows with PYTHONMALLOC=malloc, a segfault here without it).
    fired = []
    with cm.Manager() as mgr:
        for i in range(100_000):
            mgr.timer_add(0, lambda: fired.append(1))
            if i % 5_000 == 0:
                mgr.poll(0)
        assert poll_until(mgr, lambda: len(fired) == 100_000)
        # The same through the cancel path and through close().
        for _ in range(1_000):
            mgr.timer_add(60_000, lambda: None, repeat=True)
    assert len(fired) == 100_000


def test_dropped_timer_cancelled_from_its_callback():
    calls = []
    with cm.Manager() as mgr:
        def cb():
            calls.append(1)
            holder.pop().cancel()  # the last reference goes with it
        holder = [mgr.timer_add(0, cb, repeat=True)]
        poll_for(mgr, 0.05)
    assert calls == [1]


def test_timer_add_and_cancel_from_many_threads():
    per_thread, nthreads = 2_000, 8
    fired = []
    lock = threading.Lock()

    def fire():
        with lock:
            fired.append(1)

    with cm.Manager() as mgr:
        start = threading.Barrier(nthreads + 1)
        leftovers = []

        def worker():
            start.wait()
            mine = []
            for i in range(per_thread):
                mgr.timer_add(0, fire)  # fire and forget
                mine.append(mgr.timer_add(60_000, fire, repeat=True))
                if i % 2:
                    mine.pop().cancel()
            leftovers.extend(mine)

        threads = [threading.Thread(target=worker) for _ in range(nthreads)]
        for th in threads:
            th.start()
        start.wait()
        while any(th.is_alive() for th in threads):
            mgr.poll(1)
        for th in threads:
            th.join()
        assert poll_until(mgr, lambda: len(fired) == per_thread * nthreads)
        assert len(leftovers) == per_thread * nthreads // 2
        assert all(t.active for t in leftovers)
        for t in leftovers:
            t.cancel()
        assert not any(t.active for t in leftovers)
        poll_for(mgr, 0.05)
    assert len(fired) == per_thread * nthreads  # the long ones never fired


def test_timer_added_from_another_thread_wakes_a_sleeping_poll():
    fired = threading.Event()
    missed = []
    with cm.Manager(enable_wakeup=True) as mgr:
        def worker():
            time.sleep(0.2)  # let the main thread block in poll()
            mgr.timer_add(0, fired.set)
            if not fired.wait(20):
                missed.append(True)
                mgr.wakeup(0)  # end the poll so the test can fail cleanly
        th = threading.Thread(target=worker)
        th.start()
        mgr.poll(600_000)  # returns once the new timer has run
        th.join()
    assert not missed and fired.is_set()
