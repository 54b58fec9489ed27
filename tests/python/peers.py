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
def udp_peer(name, argv, port, logdir):
    """Runs argv until it has bound UDP port on 127.0.0.1 (failing the test
    with its log if it exits or takes over 5 s); stops it by its pid on exit."""
    logpath = logdir / (name + ".log")
    with open(logpath, "w") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=log, env=peer_env())
        try:
            end = time.monotonic() + 5
            while not udp_port_taken(port):
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
