"""Starting and stopping the third-party peers that tests talk to (dnsmasq,
chronyd, ...): each on its own free port on 127.0.0.1, stopped by its pid."""
import contextlib
import errno
import os
import shutil
import subprocess
import time

import pytest


def find_exe(name):
    """The path of a peer program (also looked for in /usr/sbin), or None."""
    path = shutil.which(name) or "/usr/sbin/" + name
    return path if os.path.exists(path) else None


def peer_env():
    """The environment for a peer program: without the sanitizer runtime
    that scripts/python-asan.sh preloads into this interpreter."""
    return {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}


def measured_env(**extra):
    """The environment for a child process of ours whose memory a test reads
    from /proc: under scripts/python-asan.sh, freed memory would sit in
    ASan's quarantine and read as growth, so the child keeps none.  What is
    measured is then what is held, not churn."""
    env = dict(os.environ, **extra)
    if "libasan" in env.get("LD_PRELOAD", ""):
        opts = env.get("ASAN_OPTIONS", "") + ":quarantine_size_mb=0:thread_local_quarantine_size_kb=0"
        env["ASAN_OPTIONS"] = opts.lstrip(":")
    return env


def udp_port_taken(port):
    import socket
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind(("127.0.0.1", port))
        return False
    except OSError as e:
        return e.errno == errno.EADDRINUSE
    finally:
        s.close()


@contextlib.contextmanager
def _peer_process(name, argv, logdir, ready, timeout, env=None):
    """Runs argv (output to logdir/name.log) until ready() is true, failing
    the test with its log if it exits first or takes over timeout seconds;
    stops it by its pid on exit."""
    logpath = logdir / (name + ".log")
    with open(logpath, "w") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=log, env=env or peer_env())
        try:
            end = time.monotonic() + timeout
            while not ready():
                if proc.poll() is not None or time.monotonic() > end:
                    pytest.fail("%s did not start: %s" % (name, logpath.read_text()))
                time.sleep(0.02)
            yield proc
        finally:
            proc.terminate()  # our own child, by its pid
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def udp_peer(name, argv, port, logdir):
    """Runs argv until it has bound UDP port on 127.0.0.1 (failing the test
    with its log if it exits or takes over 5 s); stops it by its pid on exit."""
    return _peer_process(name, argv, logdir, lambda: udp_port_taken(port), 5)


class ScriptedUdpPeer:
    """A UDP responder thread on 127.0.0.1 for the bad cases real servers
    will not produce: subclasses answer each datagram in handle(data, peer)."""

    def __init__(self, mode):
        import socket
        import threading
        self.mode = mode
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.url = "udp://127.0.0.1:%d" % self.sock.getsockname()[1]
        self.stop = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def handle(self, data, peer):
        raise NotImplementedError

    def run(self):
        import socket
        while not self.stop:
            try:
                data, peer = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            self.handle(data, peer)

    def close(self):
        self.stop = True
        self.thread.join()
        self.sock.close()


def scripted_fixture(cls):
    """A pytest fixture giving make(mode) -> cls(mode), all closed afterwards."""
    @pytest.fixture
    def scripted():
        servers = []

        def make(mode):
            servers.append(cls(mode))
            return servers[-1]

        yield make
        for s in servers:
            s.close()
    return scripted


def free_tcp_port():
    """A TCP port on 127.0.0.1 that was free a moment ago (for peers that
    cannot report the port they picked)."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tcp_port_listening(port):
    import socket
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def tcp_peer(name, argv, port, logdir, env=None):
    """Runs argv until it accepts TCP connections on 127.0.0.1:port (failing
    the test with its log if it exits or takes over 10 s); stops it by its
    pid on exit."""
    return _peer_process(name, argv, logdir, lambda: tcp_port_listening(port), 10, env)
