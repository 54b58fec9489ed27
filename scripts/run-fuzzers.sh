#!/usr/bin/env bash
# Builds the library once with clang for fuzzing (ASan + UBSan + coverage),
# links each libFuzzer harness against it, and runs each for a bounded time
# over its seed corpus (fuzz/corpus/<name>/).  A crash fails the run; its
# input is kept as build-fuzz/<harness>-crash-*.
set -euo pipefail
secs=$1; shift
out=build-fuzz
san="-fsanitize=address,undefined -fno-sanitize-recover=all"
make --no-print-directory -s -j"$(nproc)" BUILD="$out" CC=clang \
  CFLAGS="-g -O1 -fsanitize=fuzzer-no-link $san" "$out/libcymongoose.a"
for h in "$@"; do
  name=$(basename "$h" .c)
  echo "== $name"
  clang -g -O1 -std=c11 -D_GNU_SOURCE -Iinclude -Isrc -fsanitize=fuzzer $san \
    "$h" "$out/libcymongoose.a" -o "$out/$name" -lssl -lcrypto -lcares -lz -lpthread
  corpus="fuzz/corpus/${name#fuzz_}"
  work="$out/corpus-$name"
  mkdir -p "$work"
  [[ -d "$corpus" ]] && seeds=("$corpus") || seeds=()
  "$out/$name" -max_total_time="$secs" -print_final_stats=0 "$work" "${seeds[@]}" \
    -artifact_prefix="$out/$name-" 2>&1 | tail -n 1
done
