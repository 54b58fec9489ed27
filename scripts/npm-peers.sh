#!/usr/bin/env bash
# Installs the npm peers of the MQTT tests into build/npm (never committed):
#   aedes  an MQTT broker, run with a WebSocket listener (tests/python/node/aedes_broker.mjs)
#   ws     the WebSocket server under that listener
#   mqtt   MQTT.js, a client peer over TCP and WebSocket (tests/python/node/mqttjs_client.js)
# Idempotent: does nothing when the pinned versions are already there.  When the
# registry cannot be reached it says so and exits 0: the tests that need these
# peers skip with that reason.
set -uo pipefail

cd "$(dirname "$0")/.."
dir=${NPM_PEERS_DIR:-build/npm}
packages=(aedes@1.2.0 ws@8.23.0 mqtt@5.16.0)

have() {  # have NAME@VERSION: installed at exactly that version
  local name=${1%@*} version=${1##*@} pj
  pj="$dir/node_modules/$name/package.json"
  [[ -f "$pj" ]] && node -e 'process.exit(require(process.argv[1]).version === process.argv[2] ? 0 : 1)' \
    "$PWD/$pj" "$version"
}

missing=()
for p in "${packages[@]}"; do have "$p" || missing+=("$p"); done
[[ ${#missing[@]} -eq 0 ]] && exit 0

if ! command -v npm >/dev/null; then
  echo "npm-peers: npm is not installed (scripts/deps.sh installs it); the npm peer tests will skip" >&2
  exit 0
fi
mkdir -p "$dir"
echo "npm-peers: installing ${missing[*]} into $dir"
if ! npm install --prefix "$dir" --no-audit --no-fund --loglevel=error "${packages[@]}"; then
  echo "npm-peers: npm install failed (no registry?); the npm peer tests will skip" >&2
fi
exit 0
