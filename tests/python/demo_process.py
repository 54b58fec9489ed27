"""Runs the `make run` demo (examples/python/demo_server.py) as a subprocess on a free port."""
import contextlib
import os
import subprocess
import sys

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEMO = os.path.join(ROOT, "examples", "python", "demo_server.py")


@contextlib.contextmanager
def demo_process(*args):
    """Yields (proc, port, banner) once the banner has ended; kills it on exit if still running."""
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "python"))
    proc = subprocess.Popen([sys.executable, DEMO, "--port", "0", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    banner = []
    for line in proc.stdout:  # the banner ends with the Ctrl+C hint
        banner.append(line)
        if line.startswith("Ctrl+C"):
            break
    else:
        proc.wait(10)
        pytest.fail("demo did not start: %s" % proc.stderr.read())
    port = int(banner[0].rsplit(":", 1)[1].strip("/\n"))
    try:
        yield proc, port, "".join(banner)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
