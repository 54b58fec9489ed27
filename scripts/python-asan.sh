#!/usr/bin/env bash
# Runs Python tests against an ASan+UBSan build of the extension, in a scratch
# tree so the normal in-place build is untouched.
#   scripts/python-asan.sh [pytest args...]     (default: the whole suite)
# PYTHONMALLOC=malloc: Python's own allocator (pymalloc) recycles freed
# objects inside its arenas, where ASan cannot see a use after free; with
# malloc every object is a heap block that ASan watches.
# ASan reports go to files and are printed at the end: pytest captures the
# test's stderr, and a report written there is lost when ASan aborts.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
py=${PY:-/usr/bin/python3}
work=$(mktemp -d /tmp/cymongoose-asan.XXXXXX)
report() {
  local rc=$? found=0
  for f in "$work"/asan.*; do
    [ -e "$f" ] || continue
    found=1
    echo "==== $f" >&2
    cat "$f" >&2
  done
  rm -rf "$work"
  if [ "$found" = 1 ] && [ "$rc" = 0 ]; then rc=1; fi
  exit "$rc"
}
trap report EXIT
cd "$root"
CFLAGS="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -O1 -g" \
LDFLAGS="-fsanitize=address,undefined" \
  "$py" setup.py -q build_ext --build-lib "$work/lib" --build-temp "$work/tmp" >/dev/null
# conftest.py puts <tests>/../../python first on sys.path: mirror that layout.
mkdir -p "$work/tree/tests"
cp -r python "$work/tree/python"
rm -f "$work/tree/python/cymongoose/"*.so
cp "$work/lib/cymongoose/"*.so "$work/tree/python/cymongoose/"
cp -r tests/python "$work/tree/tests/python"
[ -d examples ] && cp -r examples "$work/tree/examples"
# Some tests build the plain C library (ctypes, examples) or run setup.py:
# give them the sources.
cp -r Makefile cymongoose.pc.in include src scripts bench setup.py pyproject.toml README.md "$work/tree/"
[ -d cmake ] && cp -r cmake "$work/tree/"  # the CMake package files make lib writes
cd "$work/tree/tests/python"
export LD_PRELOAD="$(gcc -print-file-name=libasan.so):$(gcc -print-file-name=libubsan.so)"
export NPM_PEERS_DIR="${NPM_PEERS_DIR:-$root/build/npm}"  # the npm peers stay where they are
export CM_BUILD="${CM_BUILD:-$root/build}"  # the C programs (cymongoose-broker, -passwd) too
export PYTHONMALLOC=malloc
export ASAN_OPTIONS="detect_leaks=0:log_path=$work/asan" UBSAN_OPTIONS="print_stacktrace=1:log_path=$work/asan"
# The sanitizers and malloc make Python several times slower (hypothesis's
# pure-Python work most of all): the per-test hang guard gets room to match.
"$py" -m pytest -q -p no:cacheprovider -o timeout=600 "$@"
