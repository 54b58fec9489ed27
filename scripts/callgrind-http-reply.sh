#!/bin/bash
# Instructions per request of the C HTTP server's parse and reply paths, with
# callgrind on a fixed workload: build/bench/c/http_bench serving N keep-alive
# "GET /" (cm_http_reply, no header block) and N "GET /mem" (a Content-Type
# block), one request at a time.  Deterministic: use it for before/after of
# a change to src/http/parse.c or src/http/reply.c.
# Usage: scripts/callgrind-http-reply.sh [N]   (after `make build/bench/c/http_bench`)
set -euo pipefail
N=${1:-2000}
BIN=${BIN:-build/bench/c/http_bench}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
printf 'Hello, World!' > "$TMP/body"
valgrind --tool=callgrind --callgrind-out-file="$TMP/cg.out" "$BIN" http://127.0.0.1:0 \
  --file "$TMP/body" > "$TMP/srv.log" 2> "$TMP/vg.log" &
VG=$!
for _ in $(seq 100); do grep -q listening "$TMP/srv.log" && break; sleep 0.2; done
PORT=$(awk '/listening/{print $2}' "$TMP/srv.log")
/usr/bin/python3 - "$PORT" "$N" <<'PY'
import socket, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
for path in ("/", "/mem"):
    s = socket.create_connection(("127.0.0.1", port))
    req = ("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path).encode()
    for _ in range(n):
        s.sendall(req)
        got = b""
        while b"Hello, World!" not in got:
            got += s.recv(4096)
    s.close()
PY
kill -INT "$VG"
wait "$VG"
callgrind_annotate --inclusive=yes "$TMP/cg.out" 2>/dev/null |
  awk -v reqs=$((2 * N)) '$NF ~ /^\[/ && $0 ~ /(reply\.c:(cm_http_reply|build_head[.a-z0-9]*|cm__http_scan_block)|parse\.c:cm_http_parse_request) / {
    gsub(",", "", $1); for (k = 2; k <= NF; k++) if ($k ~ /\.c:/) { sub(/.*\.c:/, "", $k); fn = $k }
    printf "%-28s %8.1f Ir per request\n", fn, $1 / reqs }'
