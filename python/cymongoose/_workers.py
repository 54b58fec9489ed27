"""Worker processes: a small supervisor that pre-forks N servers.

Python runs one interpreter per process, so a server uses N cores with N
worker processes.  The supervisor creates the listening sockets (N sockets
on one port with SO_REUSEPORT, so that the kernel spreads new connections
across them) and keeps them open for its whole life; worker i serves socket
i (``Manager.listen(url, fd=sock)``) with its own Manager.  Because the
supervisor holds every socket, no accept queue is ever closed while it has
connections waiting in it, which is what makes the following lossless:

- a worker that dies is replaced (at once, then with a growing delay when
  it keeps dying young); meanwhile its socket queues new connections, and
  the replacement accepts them;
- SIGHUP reloads: for each socket a new worker starts and listens on it
  (both accept from the same queue for a moment), and only once it says it
  is ready is the old one told to drain (SIGTERM);
- SIGTERM / SIGINT stop: every worker drains, then the supervisor returns 0.

A worker drains by closing its copy of the listening socket (the socket
itself lives on), letting the requests under way finish, and ending
keep-alive (``Connection.http_end_keep_alive``): the reply to the last
request a client sent says ``Connection: close``, and a connection with
nothing under way closes after ``drain_idle_ms`` of silence.  It exits when
it has no connection left, or after ``drain_timeout`` seconds.

The worker is forked from the supervisor: the application object is
inherited, not imported again, so a reload renews the processes (memory,
connections, state) but not the code.  Everything here is POSIX fork(),
signals and waitpid(); serve() must run in the main thread.
"""
import asyncio
import os
import select
import signal
import socket
import sys
import time
import traceback

__all__ = ["serve_asgi", "serve_manager", "serve_wsgi", "supervise"]

DRAIN_TIMEOUT = 30.0   # seconds a draining worker may take
DRAIN_IDLE_MS = 2000   # a draining worker's idle keep-alive connection closes after this
YOUNG = 1.0            # a worker dying sooner than this after its start counts as a crash
BACKOFF_MAX = 10.0     # the longest wait before restarting a worker that keeps crashing
READY_TIMEOUT = 60.0   # a worker not listening this long after its start is killed


# The signals the supervisor handles (and a worker sets up its own way).
_HANDLED = (signal.SIGHUP, signal.SIGTERM, signal.SIGINT, signal.SIGCHLD)


def _log(text):
    print("cymongoose workers[%d]: %s" % (os.getpid(), text), file=sys.stderr, flush=True)


def _split_url(url):
    """(family, host, port) of a listening URL with an IP literal host."""
    rest = url.partition("://")[2] or url
    rest = rest.split("/", 1)[0]
    if rest.startswith("["):
        host, _, port = rest[1:].partition("]")
        port = port.lstrip(":")
        family = socket.AF_INET6
    else:
        host, _, port = rest.rpartition(":") if ":" in rest else (rest, "", "")
        family = socket.AF_INET
    host = host or ("::" if family == socket.AF_INET6 else "0.0.0.0")
    try:
        socket.inet_pton(family, host)
    except OSError:
        raise ValueError("listen %s: the host must be an IP address" % url) from None
    if not port.isdigit() or int(port) > 65535:
        raise ValueError("listen %s: the URL needs a port" % url)
    return family, host, int(port)


def listening_sockets(url, count):
    """count TCP sockets listening on url's address with SO_REUSEPORT; the
    first takes url's port (0: a free one), the others the same port."""
    family, host, port = _split_url(url)
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(family, socket.SOCK_STREAM)
            socks.append(s)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            s.bind((host, port))
            s.listen(socket.SOMAXCONN)
            port = s.getsockname()[1]
    except OSError:
        for s in socks:
            s.close()
        raise
    return socks


class Worker:
    """What a worker process gets: its listening socket, ``ready()`` to call
    once it listens, ``stopping`` (set by SIGTERM/SIGINT), and the drain
    helpers for a Manager."""

    def __init__(self, index, sock, ready_fd, drain_timeout, drain_idle_ms):
        self.index = index
        self.sock = sock
        self.stopping = False
        self.drain_timeout = drain_timeout
        self.drain_idle_ms = drain_idle_ms
        self._ready_fd = ready_fd

    def ready(self):
        """Tells the supervisor this worker listens (an old one may drain)."""
        if self._ready_fd is not None:
            os.write(self._ready_fd, b"r")
            os.close(self._ready_fd)
            self._ready_fd = None

    def _stop(self, *_):
        self.stopping = True

    def begin_drain(self, manager):
        """Stops accepting: closes this process's listeners (the sockets
        stay open in the supervisor and the other workers)."""
        for conn in manager.connections:
            if conn.is_listening:
                conn.close()

    def drain_step(self, manager):
        """Ends keep-alive on every connection (again each time: one back
        from a streamed request body is HTTP anew); True once none is left
        but WebSockets, which never end by themselves (the server's stop()
        closes them with 1001)."""
        left = False
        for conn in manager.connections:
            if conn.is_websocket:
                continue
            if not conn.is_listening:
                conn.http_end_keep_alive(self.drain_idle_ms)
            left = True
        return not left

    def drain(self, manager, poll_ms=50):
        """Drains a Manager this process polls itself."""
        self.begin_drain(manager)
        end = time.monotonic() + self.drain_timeout
        while not self.drain_step(manager) and time.monotonic() < end:
            manager.poll(poll_ms)

    async def drain_async(self, manager, poll_s=0.05):
        """Drains a Manager that the running asyncio loop polls."""
        self.begin_drain(manager)
        end = time.monotonic() + self.drain_timeout
        while not self.drain_step(manager) and time.monotonic() < end:
            await asyncio.sleep(poll_s)


class _Proc:
    __slots__ = ("pid", "slot", "ready_fd", "started", "ready", "role", "killed")

    def __init__(self, pid, slot, ready_fd, role):
        self.pid, self.slot, self.ready_fd, self.role = pid, slot, ready_fd, role
        self.started = time.monotonic()
        self.ready = False
        self.killed = False


class _Slot:
    """One listening socket and the worker (plus, during a reload, its
    successor) serving it."""

    def __init__(self, index, sock):
        self.index = index
        self.sock = sock
        self.current = None     # the _Proc serving this socket
        self.next = None        # a reload's new worker, until it is ready
        self.failures = 0       # crashes in a row of young workers
        self.restart_at = None  # when to start a worker again (monotonic)


class _Supervisor:
    def __init__(self, worker_main, socks, drain_timeout, drain_idle_ms, on_started):
        self.worker_main = worker_main
        self.slots = [_Slot(i, s) for i, s in enumerate(socks)]
        self.drain_timeout = drain_timeout
        self.drain_idle_ms = drain_idle_ms
        self.on_started = on_started
        self.procs = {}         # pid -> _Proc
        self.signals = []       # signal numbers received, in order
        self.stop_deadline = None
        self.started = False
        self.boot_failed = False

    # --------------------------------------------------------- the child
    def _child(self, slot, ready_w, wake):
        code = 1
        try:
            signal.set_wakeup_fd(-1)
            for fd in wake:
                os.close(fd)
            for p in self.procs.values():
                if p.ready_fd is not None:
                    os.close(p.ready_fd)
            for other in self.slots:
                if other is not slot:
                    other.sock.close()
            worker = Worker(slot.index, slot.sock, ready_w, self.drain_timeout,
                            self.drain_idle_ms)
            signal.signal(signal.SIGTERM, worker._stop)
            signal.signal(signal.SIGINT, worker._stop)
            signal.signal(signal.SIGHUP, signal.SIG_IGN)  # the supervisor's business
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _HANDLED)
            self.worker_main(worker)
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code)

    def _spawn(self, slot, role, wake):
        ready_r, ready_w = os.pipe()
        sys.stdout.flush()  # else the child would write the parent's buffer again
        sys.stderr.flush()
        # A signal sent to the child before it has its own handlers must
        # wait for them (pending), not run the parent's.
        signal.pthread_sigmask(signal.SIG_BLOCK, _HANDLED)
        try:
            pid = os.fork()
            if pid == 0:
                os.close(ready_r)
                self._child(slot, ready_w, wake)
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _HANDLED)
        os.close(ready_w)
        proc = _Proc(pid, slot, ready_r, role)
        self.procs[pid] = proc
        if role == "next":
            slot.next = proc
        else:
            slot.current = proc
        return proc

    # ------------------------------------------------------- the parent
    def _on_ready(self, proc):
        proc.ready = True
        slot = proc.slot
        if proc.role == "next" and slot.next is proc:
            # The new worker listens on the same socket: the old one may go.
            old, slot.current, slot.next = slot.current, proc, None
            proc.role = "current"
            if old is not None:
                old.role = "old"
                self._kill(old.pid, signal.SIGTERM)
        if not self.started and all(s.current is not None and s.current.ready
                                    for s in self.slots):
            self.started = True
            if self.on_started is not None:
                self.on_started(self.slots[0].sock.getsockname()[1],
                                [s.current.pid for s in self.slots])

    def _on_exit(self, pid, status):
        proc = self.procs.pop(pid, None)
        if proc is None:
            return
        if proc.ready_fd is not None:
            os.close(proc.ready_fd)
            proc.ready_fd = None
        slot = proc.slot
        code = os.waitstatus_to_exitcode(status)
        if not self.started and not proc.ready and self.stop_deadline is None:
            # A first worker that cannot start (an import error, a bad
            # option): restarting it would only repeat the failure.
            _log("worker %d exited (%s) before it was ready: stopping" % (pid, _describe(code)))
            slot.current = None
            self.boot_failed = True
            self._stop()
            return
        if slot.next is proc:
            slot.next = None
            _log("reload: the new worker %d exited (%s) before it was ready; worker %s "
                 "keeps serving" % (pid, _describe(code),
                                    slot.current.pid if slot.current else "none"))
        if slot.current is not proc:
            return  # an old worker done draining, or a failed successor
        slot.current = None
        if self.stop_deadline is not None:
            return
        young = time.monotonic() - proc.started < YOUNG
        slot.failures = slot.failures + 1 if young else 0
        delay = 0.0 if slot.failures == 0 else min(0.1 * 2 ** (slot.failures - 1), BACKOFF_MAX)
        _log("worker %d exited (%s); restarting%s" % (
            pid, _describe(code), " in %.1f s" % delay if delay else ""))
        slot.restart_at = time.monotonic() + delay

    def _kill(self, pid, sig):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass

    def _reload(self, wake):
        _log("reload: starting new workers")
        for slot in self.slots:
            if slot.next is not None:
                continue  # a reload of this slot is already under way
            if slot.current is None:
                slot.restart_at = time.monotonic()
            else:
                self._spawn(slot, "next", wake)

    def _stop(self):
        if self.stop_deadline is not None:
            return
        self.stop_deadline = time.monotonic() + self.drain_timeout + 5.0
        for slot in self.slots:
            slot.restart_at = None
        for pid in list(self.procs):
            self._kill(pid, signal.SIGTERM)

    def run(self):
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        wake = (wake_r, wake_w)
        old_wakeup = signal.set_wakeup_fd(wake_w)
        old = {s: signal.signal(s, lambda n, _f: self.signals.append(n)) for s in _HANDLED}
        try:
            for slot in self.slots:
                self._spawn(slot, "current", wake)
            while self.procs or (self.stop_deadline is None and
                                 any(s.restart_at is not None for s in self.slots)):
                self._turn(wake)
        finally:
            signal.set_wakeup_fd(old_wakeup)
            for s, h in old.items():
                signal.signal(s, h)
            for fd in wake:
                os.close(fd)
            for p in self.procs.values():  # only if an exception interrupted us
                self._kill(p.pid, signal.SIGKILL)
        if self.boot_failed:
            raise RuntimeError("a worker process failed to start (its error is above)")
        return 0

    def _turn(self, wake):
        now = time.monotonic()
        timeout = 1.0
        for slot in self.slots:
            if slot.restart_at is not None:
                timeout = min(timeout, max(0.0, slot.restart_at - now))
        if self.stop_deadline is not None:
            timeout = min(timeout, max(0.0, self.stop_deadline - now))
        fds = [wake[0]] + [p.ready_fd for p in self.procs.values() if p.ready_fd is not None]
        readable, _, _ = select.select(fds, [], [], timeout)
        if wake[0] in readable:
            try:
                while os.read(wake[0], 512):
                    pass
            except BlockingIOError:
                pass
        signals, self.signals = self.signals, []
        for signum in signals:
            if signum in (signal.SIGTERM, signal.SIGINT):
                self._stop()
            elif signum == signal.SIGHUP and self.stop_deadline is None:
                self._reload(wake)
        for p in list(self.procs.values()):
            if p.ready_fd is not None and p.ready_fd in readable:
                data = os.read(p.ready_fd, 16)
                os.close(p.ready_fd)
                p.ready_fd = None
                if data:
                    self._on_ready(p)
        while self.procs:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            self._on_exit(pid, status)
        now = time.monotonic()
        for slot in self.slots:
            if slot.restart_at is not None and now >= slot.restart_at:
                slot.restart_at = None
                self._spawn(slot, "current", wake)
        for p in self.procs.values():
            if not p.ready and not p.killed and now - p.started > READY_TIMEOUT:
                _log("worker %d not ready after %d s; killed" % (p.pid, READY_TIMEOUT))
                p.killed = True
                self._kill(p.pid, signal.SIGKILL)
        if self.stop_deadline is not None and now >= self.stop_deadline:
            for pid in list(self.procs):
                _log("worker %d still draining at the deadline; killed" % pid)
                self._kill(pid, signal.SIGKILL)
            while self.procs:  # they are dying: wait for them
                pid, status = os.waitpid(-1, 0)
                self._on_exit(pid, status)


def _describe(code):
    return "signal %s" % signal.Signals(-code).name if code < 0 else "status %d" % code


def supervise(worker_main, url, workers, *, drain_timeout=DRAIN_TIMEOUT,
              drain_idle_ms=DRAIN_IDLE_MS, on_started=None):
    """Runs worker_main(worker) in `workers` processes on listening sockets
    for url, until SIGTERM/SIGINT; returns 0 once all have drained.
    worker_main listens on worker.sock, calls worker.ready(), serves until
    worker.stopping, then drains (Worker.drain / drain_async) and returns.
    on_started(port, pids) runs in the supervisor once every first worker
    is ready.  Raises RuntimeError when a first worker exits before it is
    ready.  Must run in the main thread."""
    if workers < 1:
        raise ValueError("workers must be at least 1")
    socks = listening_sockets(url, workers)
    try:
        return _Supervisor(worker_main, socks, drain_timeout, drain_idle_ms, on_started).run()
    finally:
        for s in socks:
            s.close()


def serve_manager(worker, manager, poll_ms=100):
    """The loop of a worker that polls its Manager itself: serves until
    SIGTERM/SIGINT, then drains."""
    worker.ready()
    while not worker.stopping:
        manager.poll(poll_ms)
    worker.drain(manager)


def serve_wsgi(app, url, processes, *, threads=4, error_handler=None, stream_timeout=5.0,
               poll_ms=100, drain_timeout=DRAIN_TIMEOUT, drain_idle_ms=DRAIN_IDLE_MS,
               on_started=None):
    """cymongoose.wsgi.serve(..., processes=N): N processes of WSGIServer."""
    def main(worker):
        from .wsgi import WSGIServer
        server = WSGIServer(app, workers=threads, error_handler=error_handler,
                            stream_timeout=stream_timeout)
        server.multiprocess = True  # PEP 3333: other processes run the app too
        try:
            server.listen(url, fd=worker.sock)
            serve_manager(worker, server.manager, poll_ms)
        finally:
            server.close()
    return supervise(main, url, processes, drain_timeout=drain_timeout,
                     drain_idle_ms=drain_idle_ms, on_started=on_started)


def serve_asgi(app, url, workers, *, drain_timeout=DRAIN_TIMEOUT, drain_idle_ms=DRAIN_IDLE_MS,
               on_started=None, **server_kwargs):
    """cymongoose.asgi.serve(..., workers=N): N processes of ASGIServer."""
    def main(worker):
        from .asgi import ASGIServer

        async def run():
            server = ASGIServer(app, **server_kwargs)
            loop = asyncio.get_running_loop()
            stop = asyncio.Event()

            def on_signal():
                worker.stopping = True
                stop.set()
            for s in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(s, on_signal)
            try:
                await server.start(url, fd=worker.sock)
                worker.ready()
                if not worker.stopping:
                    await stop.wait()
                await worker.drain_async(server.manager)
            finally:
                await server.stop()
        asyncio.run(run())
    return supervise(main, url, workers, drain_timeout=drain_timeout,
                     drain_idle_ms=drain_idle_ms, on_started=on_started)
