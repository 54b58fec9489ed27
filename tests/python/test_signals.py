"""Signals: Ctrl+C and SIGTERM stop the loop promptly, run() restores handlers."""
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import cymongoose as cm

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
BASIC = os.path.join(ROOT, "examples", "python", "basic_pattern.py")
ENV = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "python"))
EXIT_TIMEOUT = 10  # generous: the loop polls every 100 ms


def _default_sigint():
    # A suite started as a background job of a script inherits SIGINT as
    # "ignored", and Python then installs no KeyboardInterrupt handler: the
    # children get the default a terminal gives them.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start(args):
    return subprocess.Popen([sys.executable, *args], env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=_default_sigint)


def wait_listening(proc, port, timeout=20):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail("exited early (%s): %s %s" % (proc.returncode, out, err))
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    proc.kill()
    pytest.fail("never listened on %d" % port)


def wait_line(proc, text, timeout=20):
    end = time.monotonic() + timeout
    line = ""
    while time.monotonic() < end and text not in line:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            break
    if text not in line:
        proc.kill()
        pytest.fail("no %r from the child: %s" % (text, proc.communicate()))


def stop_with(proc, signum):
    proc.send_signal(signum)
    try:
        out, err = proc.communicate(timeout=EXIT_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail("still running %ds after signal %d: %s" % (EXIT_TIMEOUT, signum, err))
    return out, err


def basic_pattern_on_free_port(tmp_path):
    """The Basic Pattern's text with its fixed port 8000 changed to a free
    one (another process may hold 8000): (path of the copy, port)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with open(BASIC) as f:
        text = f.read()
    assert text.count("0.0.0.0:8000") == 1
    path = tmp_path / "basic_pattern.py"
    path.write_text(text.replace("0.0.0.0:8000", "0.0.0.0:%d" % port))
    return str(path), port


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_seed_basic_pattern_exits_cleanly(signum, tmp_path):
    """The user guide's Basic Pattern, unchanged but for its port: its own
    signal handlers end the loop."""
    path, port = basic_pattern_on_free_port(tmp_path)
    proc = start([path])
    wait_listening(proc, port)
    out, err = stop_with(proc, signum)
    assert proc.returncode == 0, err
    assert "Shutting down..." in out
    assert "Traceback" not in err


SERVE_WITH_RUN = textwrap.dedent("""
    import signal, sys
    import cymongoose as cm
    mgr = cm.Manager()
    lst = mgr.listen("tcp://127.0.0.1:0")
    before = (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM))
    # "ready" once run() has installed its handlers: from inside the loop.
    mgr.timer_add(0, lambda: print("ready", lst.local_addr[1], flush=True))
    mgr.run(poll_ms=50)
    after = (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM))
    print("stopped closed=%s restored=%s" % (mgr.closed, before == after), flush=True)
""")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_run_stops_on_signal_and_restores_handlers(signum):
    proc = start(["-c", SERVE_WITH_RUN])
    wait_line(proc, "ready")
    out, err = stop_with(proc, signum)
    assert proc.returncode == 0, err
    assert "stopped closed=True restored=True" in out


PLAIN_POLL_LOOP = textwrap.dedent("""
    import cymongoose as cm
    mgr = cm.Manager()
    mgr.listen("tcp://127.0.0.1:0")
    try:
        print("ready", flush=True)
        while True:
            mgr.poll(60000)   # a long wait: Ctrl+C must still get through
    except KeyboardInterrupt:
        print("interrupted", flush=True)
    finally:
        mgr.close()
""")


def test_ctrl_c_interrupts_a_long_poll():
    proc = start(["-c", PLAIN_POLL_LOOP])
    wait_line(proc, "ready")
    time.sleep(0.2)  # let it block in the 60 s wait
    out, err = stop_with(proc, signal.SIGINT)
    assert proc.returncode == 0, err
    assert "interrupted" in out


def test_run_in_process_restores_handlers():
    before = (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM))
    fired = []
    with cm.Manager() as mgr:
        mgr.listen("tcp://127.0.0.1:0")

        def send_sigint():
            fired.append(1)
            os.kill(os.getpid(), signal.SIGINT)

        mgr.timer_add(20, send_sigint)
        mgr.run(poll_ms=10)
        assert fired and mgr.closed
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_run_outside_the_main_thread_ends_with_close():
    result = []

    def worker():
        mgr = cm.Manager()
        mgr.timer_add(20, mgr.close)
        mgr.run(poll_ms=10)
        result.append(mgr.closed)

    t = threading.Thread(target=worker)
    t.start()
    t.join(EXIT_TIMEOUT)
    assert result == [True]


def test_run_propagates_handler_keyboard_interrupt_and_closes():
    def handler(conn, ev, data):
        if ev == cm.MG_EV_POLL:
            raise KeyboardInterrupt

    mgr = cm.Manager(handler)
    mgr.listen("tcp://127.0.0.1:0")
    with pytest.raises(KeyboardInterrupt):
        mgr.run(poll_ms=10)
    assert mgr.closed


# _thread.interrupt_main() does what Python's C-level signal handler does
# (marks SIGINT caught, writes to the wakeup descriptor) without an OS
# signal, so no system call is interrupted: exactly a signal that came in
# after run() last checked and before it went to sleep.  Only the wakeup
# descriptor can end that hour-long wait.
RUN_LONG_WAIT = textwrap.dedent("""
    import _thread, threading, time
    import cymongoose as cm
    mgr = cm.Manager()
    mgr.listen("tcp://127.0.0.1:0")
    def poke():
        time.sleep(0.3)  # let run() fall asleep
        _thread.interrupt_main()
    mgr.timer_add(0, lambda: threading.Thread(target=poke).start())
    mgr.run(poll_ms=3600000)
    print("stopped", mgr.closed, flush=True)
""")


def test_run_wakes_for_a_signal_caught_before_its_wait():
    proc = start(["-c", RUN_LONG_WAIT])
    try:
        out, err = proc.communicate(timeout=EXIT_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail("run() slept through a caught signal: %s" % err)
    assert proc.returncode == 0, err
    assert "stopped True" in out


def _wakeup_fd_seen_inside_run():
    seen = []
    with cm.Manager() as mgr:
        mgr.listen("tcp://127.0.0.1:0")

        def look():
            prev = signal.set_wakeup_fd(-1)
            if prev != -1:
                signal.set_wakeup_fd(prev)
            seen.append(prev)
            os.kill(os.getpid(), signal.SIGINT)  # ends run()

        mgr.timer_add(10, look)
        mgr.run(poll_ms=10)
    return seen


def test_run_points_the_wakeup_fd_at_its_pipe_then_gives_it_back():
    assert signal.set_wakeup_fd(-1) == -1
    seen = _wakeup_fd_seen_inside_run()
    assert len(seen) == 1 and seen[0] >= 0
    assert signal.set_wakeup_fd(-1) == -1  # given back


def test_run_leaves_a_wakeup_fd_it_does_not_own():
    r, w = os.pipe()
    os.set_blocking(w, False)
    try:
        signal.set_wakeup_fd(w)  # as asyncio's add_signal_handler does
        seen = _wakeup_fd_seen_inside_run()
        assert seen == [w]
        assert signal.set_wakeup_fd(-1) == w
    finally:
        signal.set_wakeup_fd(-1)
        os.close(r)
        os.close(w)


# poll() claims the wakeup descriptor on every call where the interpreter
# exports PySignal_SetWakeupFd (3.13+); elsewhere _claim_wakeup_per_poll
# makes it do the same through signal.set_wakeup_fd, so that the logic is
# tested on every interpreter.
from cymongoose import _mongoose  # noqa: E402


def _c_api_claims():
    prev = _mongoose._claim_wakeup_per_poll(False)
    return _mongoose._claim_wakeup_per_poll(prev)  # True after False: the C API


@pytest.fixture(params=["native", "forced"])
def per_poll(request):
    if request.param == "native" and not _c_api_claims():
        pytest.skip("PySignal_SetWakeupFd is not exported by this interpreter")
    prev = _mongoose._claim_wakeup_per_poll(True)
    yield request.param
    _mongoose._claim_wakeup_per_poll(prev)


def _slot():
    """The descriptor in Python's signal wakeup slot, left in place."""
    prev = signal.set_wakeup_fd(-1)
    if prev != -1:
        signal.set_wakeup_fd(prev)
    return prev


POLL_LONG_WAIT = textwrap.dedent("""
    import _thread, sys, threading, time
    import cymongoose as cm
    from cymongoose import _mongoose
    _mongoose._claim_wakeup_per_poll(sys.argv[1] == "forced")
    mgrs = [cm.Manager() for _ in range(int(sys.argv[2]))]
    def poke():
        time.sleep(0.3)  # let poll() fall asleep
        _thread.interrupt_main()
    for mgr in mgrs:  # polled in turn: each one's wait must end
        mgr.poll(1)
        threading.Thread(target=poke).start()
        try:
            mgr.poll(60000)  # far past EXIT_TIMEOUT: only the wakeup ends it
            print("slept through", flush=True)
        except KeyboardInterrupt:
            print("interrupted", flush=True)
    for mgr in mgrs:
        mgr.close()
""")


@pytest.mark.parametrize("managers", [1, 2])
def test_poll_wakes_for_a_signal_caught_before_its_wait(per_poll, managers):
    proc = start(["-c", POLL_LONG_WAIT, per_poll, str(managers)])
    try:
        out, err = proc.communicate(timeout=EXIT_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail("poll() slept through a caught signal: %s" % err)
    assert proc.returncode == 0, err
    assert out.split() == ["interrupted"] * managers


def _slot_seen_inside_poll(mgr):
    seen = []
    mgr.timer_add(0, lambda: seen.append(_slot()))
    mgr.poll(10)
    while not seen:
        mgr.poll(10)
    return seen[0]


def test_poll_points_the_wakeup_fd_at_its_pipe_then_gives_it_back(per_poll):
    assert _slot() == -1
    mgr = cm.Manager()
    ours = _slot_seen_inside_poll(mgr)
    assert ours >= 0
    assert _slot() == ours  # kept between polls: no work per call
    mgr.close()
    assert _slot() == -1


def test_two_managers_polled_in_turn_each_wait_with_their_own(per_poll):
    a, b = cm.Manager(), cm.Manager()
    fd_a = _slot_seen_inside_poll(a)
    fd_b = _slot_seen_inside_poll(b)
    assert fd_a >= 0 and fd_b >= 0 and fd_a != fd_b
    assert _slot_seen_inside_poll(a) == fd_a
    a.close()  # b's is not a's to give back
    assert _slot_seen_inside_poll(b) == fd_b
    b.close()
    assert _slot() == -1


def _foreign_pipe():
    r, w = os.pipe()
    os.set_blocking(w, False)
    return r, w


def test_poll_leaves_a_wakeup_fd_installed_before(per_poll):
    r, w = _foreign_pipe()
    try:
        signal.set_wakeup_fd(w)  # as asyncio's add_signal_handler does
        with cm.Manager() as mgr:
            assert _slot_seen_inside_poll(mgr) == w
            assert _slot_seen_inside_poll(mgr) == w
        assert _slot() == w
        os.fstat(w)  # still open: never ours to close
    finally:
        signal.set_wakeup_fd(-1)
        os.close(r)
        os.close(w)


def test_poll_leaves_a_wakeup_fd_installed_after(per_poll):
    r, w = _foreign_pipe()
    try:
        mgr = cm.Manager()
        ours = _slot_seen_inside_poll(mgr)
        assert ours >= 0 and ours != w
        assert signal.set_wakeup_fd(w) == ours  # installed between two polls
        assert _slot_seen_inside_poll(mgr) == w
        mgr.close()
        assert _slot() == w
        os.fstat(w)
    finally:
        signal.set_wakeup_fd(-1)
        os.close(r)
        os.close(w)


def test_poll_outside_the_main_thread_leaves_the_slot_alone(per_poll):
    done = []

    def worker():
        with cm.Manager() as mgr:
            for _ in range(3):
                mgr.poll(10)
        done.append(1)

    t = threading.Thread(target=worker)
    t.start()
    t.join(EXIT_TIMEOUT)
    assert done == [1]
    assert _slot() == -1


def test_run_nested_in_a_callback_leaves_the_outer_run_its_wakeup_fd():
    seen = []
    with cm.Manager() as outer:
        outer.listen("tcp://127.0.0.1:0")

        def inner_run():
            seen.append(_slot())
            inner = cm.Manager()
            inner.timer_add(10, inner.close)
            inner.run(poll_ms=10)

        def look_and_stop():
            seen.append(_slot())
            os.kill(os.getpid(), signal.SIGINT)  # ends outer.run()

        outer.timer_add(10, inner_run)
        outer.timer_add(60, look_and_stop)
        outer.run(poll_ms=10)
    assert len(seen) == 2 and seen[0] >= 0 and seen[1] == seen[0]
    assert _slot() == -1
