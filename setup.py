"""Builds cymongoose._mongoose: the C library and the CPython bindings in one extension.

The C dependencies are checked first: without their headers the build stops
at once with one line naming the Debian packages to install, instead of
pages of compiler errors.  Warnings are not errors here (a newer compiler
must not break a user's install); `make python` and CI add -Werror through
CFLAGS.
"""
import glob
import os
import shlex
import subprocess
import sys
import sysconfig
import tempfile

from setuptools import Extension, setup

here = os.path.dirname(os.path.abspath(__file__))

# header -> the Debian package that provides it
C_DEPENDENCIES = {
    "Python.h": "python3-dev",
    "openssl/ssl.h": "libssl-dev",
    "ares.h": "libc-ares-dev",
    "zlib.h": "zlib1g-dev",
}


def rel(pattern):
    return sorted(os.path.relpath(p, here) for p in glob.glob(os.path.join(here, pattern)))


def missing_headers():
    """The Debian packages whose headers the C compiler cannot find."""
    cc = shlex.split(os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc")
    include = ["-I" + sysconfig.get_paths()["include"]]
    missing = []
    with tempfile.TemporaryDirectory() as tmp:
        for header, package in C_DEPENDENCIES.items():
            src = os.path.join(tmp, "probe.c")
            with open(src, "w") as f:
                f.write("#include <%s>\n" % header)
            try:
                probe = subprocess.run(cc + include + ["-E", src, "-o", os.devnull],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            except OSError:
                return ["build-essential"]  # no C compiler at all
            if probe.returncode != 0:
                missing.append(package)
    return missing


def check_dependencies():
    if os.environ.get("CYMONGOOSE_SKIP_DEP_CHECK"):
        return
    missing = missing_headers()
    if missing:
        sys.exit("cymongoose: missing C headers; on Debian/Ubuntu run: "
                 "sudo apt-get install %s" % " ".join(missing))


if {"build_ext", "build", "bdist_wheel", "install", "develop", "editable_wheel"} & set(sys.argv):
    check_dependencies()

ext = Extension(
    "cymongoose._mongoose",
    sources=rel("src/*/*.c") + rel("python/src/*.c"),
    include_dirs=["include", "src", "python/src"],
    define_macros=[("_GNU_SOURCE", "1")],
    extra_compile_args=["-std=c11", "-O2", "-Wall", "-Wextra", "-Wshadow",
                        "-Wno-missing-field-initializers", "-Wno-cast-function-type"],
    libraries=["ssl", "crypto", "cares", "z", "pthread"],
)

setup(ext_modules=[ext])
