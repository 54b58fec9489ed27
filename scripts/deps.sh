#!/usr/bin/env bash
# Installs the Debian packages a task needs, by group:
#   deps.sh run     building the library and the extension, running the demo
#   deps.sh test    run + the peers the tests talk to, the browser, the docs tool
#   deps.sh bench   test + the load generators and servers compared against
# (no argument = test). Idempotent: asks dpkg first, runs apt-get only for what is missing.
set -euo pipefail

group=${1:-test}

run=(
  build-essential pkg-config
  libssl-dev libc-ares-dev zlib1g-dev
  python3 python3-dev python3-setuptools
)
test=(
  cmake clang libclang-rt-14-dev libcmocka-dev openssl python3-pip
  python3-pytest python3-pytest-timeout python3-pytest-asyncio python3-hypothesis
  python3-requests python3-websocket python3-websockets python3-aiohttp
  python3-paho-mqtt python3-trustme python3-dnslib python3-ntplib python3-starlette
  python3-mypy python3-uvicorn gunicorn python3-fastapi python3-django
  mosquitto mosquitto-clients dnsmasq-base chrony
  curl nginx-light nodejs node-ws
  chromium chromium-driver python3-selenium mkdocs
)
# uvicorn picks httptools and uvloop up when they are installed: the ASGI
# suites measure it as people run it (uvicorn[standard]), not on h11.
bench=(wrk python3-uvloop python3-httptools)

case "$group" in
  run) packages=("${run[@]}") ;;
  test) packages=("${run[@]}" "${test[@]}") ;;
  bench) packages=("${run[@]}" "${test[@]}" "${bench[@]}") ;;
  *) echo "usage: $0 [run|test|bench]" >&2; exit 2 ;;
esac
# npm (for the npm peers of the tests, scripts/npm-peers.sh): Debian's
# package, unless the installed node already bundles it (NodeSource builds do).
if [[ "$group" != run ]] && ! command -v npm >/dev/null; then packages+=(npm); fi

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

if [[ $(id -u) -ne 0 ]]; then
  echo "missing packages (run as root to install): ${missing[*]}" >&2
  exit 1
fi
echo "installing ($group): ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
