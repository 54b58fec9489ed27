"""Shared fixtures of the pytest suite."""
import os
import sys

# Tests import the package built in place under python/ (see the Makefile).
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "python"))

# scripts/python-asan.sh preloads the sanitizer runtime into this interpreter
# (the extension is built with ASan).  Peers started by the tests (curl,
# nginx, openssl, node...) must not inherit it; Python children, which import
# the same extension, must.
if "libasan" in os.environ.get("LD_PRELOAD", ""):
    import subprocess

    _popen_init = subprocess.Popen.__init__

    def _popen_init_without_asan(self, args, *rest, **kwargs):
        prog = args[0] if isinstance(args, (list, tuple)) else str(args).split()[0]
        if "python" not in os.path.basename(str(prog)):
            env = dict(kwargs.get("env") or os.environ)
            env.pop("LD_PRELOAD", None)
            kwargs["env"] = env
        _popen_init(self, args, *rest, **kwargs)

    subprocess.Popen.__init__ = _popen_init_without_asan
