#!/usr/bin/env bash
# Installs into a scratch DESTDIR and checks what a C user of the installed
# library gets: only cm_ symbols exported, a soname, and programs that build
# with pkg-config and with CMake (shared and static), then run.  Also keeps
# the public headers clean as C99 -pedantic and as C++ -Wextra.
# Usage: scripts/test-install.sh BUILD_DIR
set -euo pipefail
build=${1:-build}
root=$(pwd)
stage=$root/$build/stage
prefix=$stage/usr/local
lib=$prefix/lib
cc=${CC:-cc}
warn=(-Wall -Wextra -Werror -pedantic)

rm -rf "$stage"
make --no-print-directory -s install DESTDIR="$stage" PREFIX=/usr/local BUILD="$build"
for p in cymongoose-broker cymongoose-passwd; do
  [[ -x "$stage/usr/local/bin/$p" ]] || { echo "test-install: bin/$p not installed" >&2; exit 1; }
done
"$stage/usr/local/bin/cymongoose-broker" --help | grep -q -- --listen \
  || { echo "test-install: cymongoose-broker --help" >&2; exit 1; }

# Exports: the public API, all of it (every public header marks its
# declarations for export) and nothing else.
for h in include/cymongoose.h include/cymongoose/*.h; do
  grep -q '^#pragma GCC visibility push(default)' "$h" \
    || { echo "test-install: $h does not mark its declarations for export" >&2; exit 1; }
done
extra=$(nm -D --defined-only "$lib/libcymongoose.so" | awk '{print $3}' | grep -v '^cm_' \
        | grep -v -E '^(_init|_fini)$' || true)
internal=$(nm -D --defined-only "$lib/libcymongoose.so" | awk '{print $3}' | grep '^cm__' || true)
if [[ -n "$extra$internal" ]]; then
  echo "test-install: the shared library exports non-public symbols:" $extra $internal >&2
  exit 1
fi
soname=$(readelf -d "$lib/libcymongoose.so" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[[ "$soname" == libcymongoose.so.0 ]] || { echo "test-install: soname is '$soname'" >&2; exit 1; }

export PKG_CONFIG_SYSROOT_DIR=$stage PKG_CONFIG_PATH=$lib/pkgconfig
out=$stage/bin
mkdir -p "$out"
src=$root/tests/install

# pkg-config, shared (with an rpath, as the README explains) and static.
$cc -std=c99 "${warn[@]}" "$src/hello.c" -o "$out/hello_pc" \
  $(pkg-config --cflags --libs cymongoose) -Wl,-rpath,"$lib"
$cc -std=c99 "${warn[@]}" "$src/hello.c" -o "$out/hello_pc_static" \
  $(pkg-config --cflags cymongoose) "$lib/libcymongoose.a" $(pkg-config --libs-only-l --static cymongoose | sed 's/-lcymongoose//')
${CXX:-c++} -std=c++11 "${warn[@]}" "$src/headers.cpp" -o "$out/headers_cxx" \
  $(pkg-config --cflags --libs cymongoose) -Wl,-rpath,"$lib"
"$out/hello_pc" && "$out/hello_pc_static" && "$out/headers_cxx"

# The example from the README's C section builds the same way.
$cc examples/c/echo_server.c -o "$out/echo_server" $(pkg-config --cflags --libs --static cymongoose)

# CMake: find_package(cymongoose) and the imported targets.
if command -v cmake >/dev/null; then
  cmake -S "$src" -B "$stage/cmake" -DCMAKE_PREFIX_PATH="$prefix" \
    -DCMAKE_BUILD_RPATH="$lib" -DCMAKE_C_FLAGS="${warn[*]}" -DCMAKE_CXX_FLAGS="${warn[*]}" >/dev/null
  cmake --build "$stage/cmake" >/dev/null
  "$stage/cmake/hello_shared" && "$stage/cmake/hello_static" && "$stage/cmake/headers_cxx"
else
  echo "test-install: cmake missing (scripts/deps.sh installs it)" >&2
  exit 1
fi
echo "install: cm_ exports only, soname $soname; pkg-config and CMake consumers (shared, static, C++) build and run"
