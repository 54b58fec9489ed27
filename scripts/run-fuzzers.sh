#!/usr/bin/env bash
# Builds each libFuzzer harness with clang (ASan + UBSan) and runs it for a
# bounded time over its seed corpus (fuzz/corpus/<name>/).  Crashes fail the run.
set -euo pipefail
secs=$1; shift
out=build-fuzz
mkdir -p "$out"
srcs=$(ls src/*/*.c)
for h in "$@"; do
  name=$(basename "$h" .c)
  echo "== $name"
  clang -g -O1 -std=c11 -D_GNU_SOURCE -Iinclude -Isrc \
    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
    "$h" $srcs -o "$out/$name" -lssl -lcrypto -lcares -lz -lpthread
  corpus="fuzz/corpus/${name#fuzz_}"
  work="$out/corpus-$name"
  mkdir -p "$work"
  [[ -d "$corpus" ]] && seeds=("$corpus") || seeds=()
  "$out/$name" -max_total_time="$secs" -print_final_stats=0 "$work" "${seeds[@]}" \
    -artifact_prefix="$out/$name-" 2>&1 | tail -n 3
done
