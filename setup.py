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
from setuptools.command.build_clib import build_clib
from setuptools.command.build_ext import build_ext

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

CFLAGS = ["-std=c11", "-O2", "-Wall", "-Wextra", "-Wshadow",
          "-Wno-missing-field-initializers", "-Wno-cast-function-type"]
MACROS = [("_GNU_SOURCE", "1")]
HEADERS = rel("include/*.h") + rel("include/*/*.h") + rel("src/*/*.h")

# The C library is built first as a static archive, with its private
# headers (src/); the bindings are compiled against the public headers
# alone (include/), so a binding that reaches into the library's interior
# does not compile.
libcymongoose = ("cymongoose_static", {
    "sources": rel("src/*/*.c"),
    "include_dirs": ["include", "src"],
    "macros": MACROS,
    "cflags": CFLAGS,
    "obj_deps": {"": HEADERS},
})


class build_clib_fresh(build_clib):
    """build_clib that writes each archive afresh: ar only adds and
    replaces members, so a source file since deleted would leave a stale
    member behind (and a duplicate definition at link time)."""

    def build_libraries(self, libraries):
        for name, _ in libraries:
            archive = os.path.join(self.build_clib, self.compiler.library_filename(name))
            if os.path.exists(archive):
                os.unlink(archive)
        super().build_libraries(libraries)


class build_ext_with_lib(build_ext):
    """build_ext that first builds the static C library (build_ext alone,
    as `setup.py build_ext --inplace` runs it, would not), into build_ext's
    own temporary directory so builds with other CFLAGS do not share it."""

    def run(self):
        clib = self.get_finalized_command("build_clib")
        if not self.distribution.have_run.get("build_clib"):  # `build` runs it first
            clib.build_temp = clib.build_clib = self.build_temp
            clib.force = self.force
            self.run_command("build_clib")
        if clib.build_clib not in self.library_dirs:
            self.library_dirs.append(clib.build_clib)
        super().run()
        for ext in self.extensions:
            check_defined(self.get_ext_fullpath(ext.name))


def check_defined(path):
    """Fails the build when the extension leaves one of the project's own
    names (cm_...) undefined: a method table or call naming a function whose
    definition is missing or misspelt.  A shared object may link with
    undefined names (Python's own are resolved at import), so the linker
    alone would let this through to an ImportError at run time."""
    try:
        out = subprocess.run(["nm", "-u", "--format=just-symbols", path], check=True,
                             capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return  # no binutils: nothing to check with
    undefined = sorted(n for n in out.split() if n.startswith("cm_"))
    if undefined:
        os.unlink(path)
        sys.exit("cymongoose: undefined in the extension: %s" % " ".join(undefined))


ext = Extension(
    "cymongoose._mongoose",
    sources=rel("python/src/*.c"),
    include_dirs=["include", "python/src"],  # public headers only: no src/ internals
    define_macros=MACROS,
    extra_compile_args=CFLAGS,
    libraries=["cymongoose_static", "ssl", "crypto", "cares", "z", "pthread"],
    depends=rel("src/*/*.c") + HEADERS + rel("python/src/*.h"),
)

setup(ext_modules=[ext], libraries=[libcymongoose], cmdclass={"build_clib": build_clib_fresh, "build_ext": build_ext_with_lib})
