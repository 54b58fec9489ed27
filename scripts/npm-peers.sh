#!/usr/bin/env bash
# Installs the npm packages tests use as peers into DIR (default build/npm),
# never into the source tree; prints DIR's node_modules path.  Idempotent:
# a package already there is not fetched again.
#   aedes 0.51   an MQTT broker (the demo page's MQTT client is tested through it)
set -euo pipefail
dir=${1:-build/npm}
mkdir -p "$dir"
packages=(aedes@0.51)
if [[ ! -f "$dir/node_modules/aedes/package.json" ]]; then
  npm install --prefix "$dir" --no-audit --no-fund --no-save --loglevel=error "${packages[@]}" >&2
fi
echo "$(cd "$dir" && pwd)/node_modules"
