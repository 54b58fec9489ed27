#!/usr/bin/env bash
# make test's phases in two lanes side by side: the sanitizer builds and runs
# (C tests under ASan+UBSan, then the pytest suite against an ASan build of
# the extension) beside everything else.  Each phase is mostly one process,
# so two lanes keep both cores of a CI machine busy; tests use ports the
# kernel picks and scratch directories of their own, so the lanes never meet.
# The sanitizer lane's output is kept in a file and printed when it ends.
#   MAKE=make scripts/test-lanes.sh
set -u
make=${MAKE:-make}
log=$(mktemp /tmp/cymongoose-lane.XXXXXX)
# Started with job control on (set -m): the lane gets a process group of
# its own, so a failure in the other lane stops all of it (make and test
# processes included) by that group; and it keeps SIGINT's default action,
# which a background command of a script would inherit as "ignored" (the
# signal tests send SIGINT to Python children).
set -m
(
  "$make" --no-print-directory test-asan && "$make" --no-print-directory test-python-asan
) >"$log" 2>&1 &
sanitizers=$!
set +m
stop_sanitizers() { kill -- "-$sanitizers" 2>/dev/null; }

rc=0
for phase in test-c test-install "fuzz FUZZ_TIME=2" test-python test-stubs test-docs; do
  # shellcheck disable=SC2086  # "fuzz FUZZ_TIME=2" is a target and a variable
  if ! "$make" --no-print-directory $phase; then
    echo "make test: $phase failed" >&2
    rc=1
    break
  fi
done
[ "$rc" = 0 ] || stop_sanitizers
wait "$sanitizers"
lane_rc=$?
echo "==== sanitizer lane (test-asan, test-python-asan)"
cat "$log"
rm -f "$log"
if [ "$lane_rc" != 0 ] && [ "$rc" = 0 ]; then
  echo "make test: sanitizer lane failed" >&2
  rc=1
fi
exit "$rc"
