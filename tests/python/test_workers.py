"""Worker processes (cymongoose._workers) over real loopback sockets: the
WSGI and ASGI servers and `python3 -m cymongoose serve --workers N`, run as
subprocesses, signalled as an operator would (SIGKILL a worker, SIGHUP to
reload under load, SIGTERM to stop)."""
import http.client
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ENV = dict(os.environ, PYTHONPATH=os.path.join(HERE, "..", "..", "python"))
WAIT = 30.0  # seconds before giving up on something that should happen


def children(pid):
    """The pids of pid's live children (its workers)."""
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return set(map(int, f.read().split()))
    except FileNotFoundError:
        return set()


def wait_for(predicate, what):
    end = time.monotonic() + WAIT
    while not predicate():
        if time.monotonic() > end:
            pytest.fail("gave up waiting for " + what)
        time.sleep(0.02)


class Served:
    """workers_app.py (or the CLI) running in a subprocess."""

    def __init__(self, argv, tmp_path):
        self.dir = str(tmp_path)
        self.proc = subprocess.Popen(argv, env=ENV, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line:
            self.proc.kill()
            pytest.fail("did not start: %s" % self.proc.stderr.read())
        self.banner = line

    @classmethod
    def app(cls, kind, count, tmp_path):
        s = cls([sys.executable, os.path.join(HERE, "workers_app.py"), kind, str(count),
                 str(tmp_path)], tmp_path)
        words = s.banner.split()
        assert words[0] == "READY", s.banner
        s.port = int(words[1])
        s.pids = set(map(int, words[2:]))
        return s

    def get(self, path="/", conn=None):
        """One request (on conn, else on a new connection): (status, body)."""
        c = conn or http.client.HTTPConnection("127.0.0.1", self.port, timeout=WAIT)
        try:
            c.request("GET", path)
            r = c.getresponse()
            return r.status, r.read()
        finally:
            if conn is None:
                c.close()

    def pid_of(self, conn=None):
        status, body = self.get("/", conn)
        assert status == 200
        return int(body)

    def workers(self):
        return children(self.proc.pid)

    def stop(self):
        """SIGTERM: returns (exit status, stderr)."""
        self.proc.send_signal(signal.SIGTERM)
        _, err = self.proc.communicate(timeout=WAIT + 20)
        return self.proc.returncode, err

    def kill(self):
        if self.proc.poll() is None:
            for pid in self.workers():
                os.kill(pid, signal.SIGKILL)
            self.proc.kill()
            self.proc.communicate(timeout=WAIT)


@pytest.fixture
def served(tmp_path):
    started = []

    def start(kind, count=2):
        s = Served.app(kind, count, tmp_path)
        started.append(s)
        return s
    yield start
    for s in started:
        s.kill()


@pytest.mark.parametrize("kind", ["wsgi", "asgi"])
def test_requests_spread_over_workers(served, kind):
    s = served(kind)
    assert len(s.pids) == 2 and s.workers() == s.pids
    seen = set()
    for _ in range(400):  # new connections: the kernel spreads them by hash
        seen.add(s.pid_of())
        if seen == s.pids:
            break
    assert seen == s.pids
    if kind == "wsgi":
        assert s.get("/multiprocess") == (200, b"True")


def test_worker_that_cannot_start_stops_the_supervisor(tmp_path):
    # An ASGI app whose lifespan startup fails: restarting it would only
    # repeat the failure, so serve() raises once the workers have exited.
    script = tmp_path / "boot.py"
    script.write_text(
        "from cymongoose.asgi import serve\n"
        "async def app(scope, receive, send):\n"
        "    await receive()\n"
        "    await send({'type': 'lifespan.startup.failed', 'message': 'no database'})\n"
        "serve(app, 'http://127.0.0.1:0', workers=2, lifespan='on')\n")
    r = subprocess.run([sys.executable, str(script)], env=ENV, capture_output=True, text=True,
                       timeout=WAIT)
    assert r.returncode == 1
    assert "lifespan startup failed: no database" in r.stderr
    assert "RuntimeError: a worker process failed to start" in r.stderr


@pytest.mark.parametrize("kind", ["wsgi", "asgi"])
def test_sigterm_drains_in_flight_request_and_exits_0(served, kind, tmp_path):
    s = served(kind)
    result = {}

    def slow():
        result["reply"] = s.get("/slow")
    t = threading.Thread(target=slow)
    t.start()
    wait_for(lambda: os.path.exists(tmp_path / "started"), "the slow request")
    s.proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)  # let the worker begin draining while the request is under way
    (tmp_path / "release").touch()
    t.join(WAIT)
    assert result["reply"][0] == 200 and int(result["reply"][1]) in s.pids
    _, err = s.proc.communicate(timeout=WAIT + 20)
    assert s.proc.returncode == 0, err
    assert "Traceback" not in err
    assert not s.workers()


@pytest.mark.parametrize("kind", ["wsgi", "asgi"])
def test_killed_worker_is_replaced(served, kind):
    s = served(kind)
    victim = min(s.pids)
    os.kill(victim, signal.SIGKILL)
    # Connections hashed to the victim's socket wait in its accept queue
    # (the supervisor holds the socket) until the replacement takes them:
    # every request succeeds, none is served by the victim.
    wait_for(lambda: len(s.workers()) == 2 and victim not in s.workers(), "a replacement")
    seen = set()
    for _ in range(400):
        pid = s.pid_of()
        assert pid != victim
        seen.add(pid)
        if len(seen) == 2:
            break
    assert seen == s.workers()
    code, err = s.stop()
    assert code == 0, err
    assert "worker %d exited (signal SIGKILL); restarting" % victim in err


def run_load(s, total, on_progress):
    """Requests from 4 threads until `total` are done and on_progress says
    stop: 3 threads on keep-alive connections (reconnecting every 100
    requests), 1 on a new connection per request.  Returns (pids in order
    of completion, errors)."""
    lock = threading.Lock()
    pids, errors = [], []
    done = threading.Event()

    def client(new_each_time):
        conn, used = None, 0
        while not done.is_set():
            if conn is None or new_each_time or used == 100:
                if conn is not None:
                    conn.close()
                conn, used = http.client.HTTPConnection("127.0.0.1", s.port, timeout=WAIT), 0
            try:
                conn.request("GET", "/")
                r = conn.getresponse()
                body = r.read()
                if r.status != 200:
                    raise AssertionError("status %d" % r.status)
            except Exception as exc:  # a request lost or reset: the failure we look for
                with lock:
                    errors.append(repr(exc))
                conn.close()
                conn = None
                continue
            used += 1
            with lock:
                pids.append(int(body))
                n = len(pids)
            if on_progress(n) and n >= total:
                done.set()
            if n >= 5 * total:  # a bound, whatever happens
                done.set()
        if conn is not None:
            conn.close()

    threads = [threading.Thread(target=client, args=(i == 3,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return pids, errors


@pytest.mark.parametrize("kind,total", [("wsgi", 20000), ("asgi", 10000)])
def test_reload_under_load_loses_nothing(served, kind, total):
    s = served(kind)
    old = set(s.pids)
    state = {"sent": False, "done_at": None}
    lock = threading.Lock()

    def on_progress(n):
        # SIGHUP once a quarter of the load is done; the reload is complete
        # when the supervisor's workers are all new (and the old ones gone).
        with lock:
            if not state["sent"] and n >= total // 4:
                state["sent"] = True
                s.proc.send_signal(signal.SIGHUP)
            if state["sent"] and state["done_at"] is None and n % 20 == 0:
                w = s.workers()
                if len(w) == 2 and not w & old:
                    state["done_at"] = n
            return state["done_at"] is not None

    pids, errors = run_load(s, total, on_progress)
    assert errors == []
    assert len(pids) >= total
    assert state["done_at"] is not None
    new = s.workers()
    assert len(new) == 2 and not new & old
    assert set(pids[:total // 8]) <= old  # before the reload: old workers
    assert set(pids[state["done_at"] + 100:]) <= new  # after it: only the new ones
    assert {s.pid_of() for _ in range(50)} <= new
    code, err = s.stop()
    assert code == 0, err
    assert "Traceback" not in err


def test_cli_serve_workers(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "hello.txt").write_text("hello\n")
    s = Served([sys.executable, "-m", "cymongoose", "serve", str(site), "--listen",
                "http://127.0.0.1:0", "--workers", "2"], tmp_path)
    try:
        assert "(2 workers, pids" in s.banner, s.banner
        url = next(w for w in s.banner.split() if "://" in w)
        s.port = int(url.split("://")[1].split("/")[0].rsplit(":", 1)[1])
        old = s.workers()
        assert len(old) == 2
        assert s.get("/hello.txt") == (200, b"hello\n")
        s.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: len(s.workers()) == 2 and not s.workers() & old, "new workers")
        for _ in range(20):
            assert s.get("/hello.txt") == (200, b"hello\n")
        code, err = s.stop()
        assert code == 0, err
        assert "reload: starting new workers" in err
    finally:
        s.kill()


# ------------------------------------------------ the building blocks, in-process

def poll_until(mgr, predicate, what):
    end = time.monotonic() + WAIT
    while not predicate():
        if time.monotonic() > end:
            pytest.fail("gave up waiting for " + what)
        mgr.poll(10)


def test_listen_fd_serves_a_socket_the_caller_keeps():
    import socket
    import cymongoose as cm
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    got = []

    def handler(conn, ev, data):
        if ev == cm.MG_EV_HTTP_MSG:
            got.append(data.uri)
            conn.reply(200, "ok")
    with cm.Manager(handler) as mgr:
        lst = mgr.listen("http://127.0.0.1:0", fd=sock)  # the url gives the scheme
        assert lst.is_listening and lst.local_addr[1] == port
        # A client queued while no manager listens is served by the next one:
        # the socket the caller keeps is never closed in between.
        lst.close()
        mgr.poll(0)
        client = socket.create_connection(("127.0.0.1", port))
        client.sendall(b"GET /queued HTTP/1.1\r\nHost: x\r\n\r\n")
        mgr.listen("http://127.0.0.1:0", fd=sock.fileno())
        poll_until(mgr, lambda: got, "the queued request")
        assert got == ["/queued"]
        client.settimeout(WAIT)
        assert client.recv(4096).startswith(b"HTTP/1.1 200 OK\r\n")
        client.close()
        with pytest.raises(TypeError):
            mgr.connect("http://127.0.0.1:1", fd=sock)
        with pytest.raises(TypeError):
            mgr.listen("http://127.0.0.1:0", fd=sock, reuse_port=True)
        unbound = socket.socket()
        with pytest.raises(RuntimeError):
            mgr.listen("http://127.0.0.1:0", fd=unbound)  # not listening
        assert unbound.fileno() >= 0  # the caller's descriptor is left alone
        unbound.close()
    # the caller's socket is still open and listening after the manager closed
    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1
    sock.close()


def test_http_end_keep_alive():
    import socket
    import cymongoose as cm

    def handler(conn, ev, data):
        if ev == cm.MG_EV_HTTP_MSG:
            conn.reply(200, "ok")
    with cm.Manager(handler) as mgr:
        lst = mgr.listen("http://127.0.0.1:0")
        assert lst.http_end_keep_alive() is False  # a listener: nothing to do
        client = socket.create_connection(("127.0.0.1", lst.local_addr[1]))
        client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        poll_until(mgr, lambda: len(mgr.connections) == 2 and
                   mgr.connections[1].send_len == 0 and mgr.connections[1].recv_len == 0,
                   "the reply")
        conn = mgr.connections[1]
        with pytest.raises(ValueError):
            conn.http_end_keep_alive(-5)
        assert conn.http_end_keep_alive(idle_ms=60000) is True
        client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # within the grace: answered
        client.setblocking(False)
        data = b""
        end = time.monotonic() + WAIT
        while time.monotonic() < end:
            mgr.poll(10)
            try:
                chunk = client.recv(4096)
            except BlockingIOError:
                continue
            if not chunk:
                break
            data += chunk
        assert data.count(b"HTTP/1.1 200 OK\r\n") == 2
        assert data.count(b"Connection: close\r\n") == 1
        assert data.rindex(b"Connection: close") > data.rindex(b"HTTP/1.1 200 OK")
        client.close()
