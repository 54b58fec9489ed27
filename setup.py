"""Builds cymongoose._mongoose: the C library and the CPython bindings in one extension."""
import glob
import os

from setuptools import Extension, setup

here = os.path.dirname(os.path.abspath(__file__))


def rel(pattern):
    return sorted(os.path.relpath(p, here) for p in glob.glob(os.path.join(here, pattern)))


ext = Extension(
    "cymongoose._mongoose",
    sources=rel("src/*/*.c") + rel("python/src/*.c"),
    include_dirs=["include", "src", "python/src"],
    define_macros=[("_GNU_SOURCE", "1")],
    extra_compile_args=["-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", "-Wshadow",
                        "-Wno-missing-field-initializers", "-Wno-cast-function-type"],
    libraries=["ssl", "crypto", "cares", "z", "pthread"],
)

setup(ext_modules=[ext])
