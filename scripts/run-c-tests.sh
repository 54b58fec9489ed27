#!/usr/bin/env bash
# Runs each C test binary; prints one summary line; fails if any test failed.
set -u
passed=0 failed=0 failed_names=()
for t in "$@"; do
  if "$t"; then passed=$((passed + 1)); else failed=$((failed + 1)); failed_names+=("$t"); fi
done
echo "C test programs: $passed passed, $failed failed"
[[ $failed -eq 0 ]] || { echo "failed: ${failed_names[*]}"; exit 1; }
