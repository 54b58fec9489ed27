#!/usr/bin/env bash
# Installs the Debian packages the build, the tests and the benchmarks need.
# Idempotent: asks dpkg first and runs apt-get only for what is missing.
set -euo pipefail

packages=(
  build-essential pkg-config cmake clang libclang-rt-14-dev
  libssl-dev libc-ares-dev zlib1g-dev libcmocka-dev openssl
  python3 python3-dev python3-setuptools python3-pip
  python3-pytest python3-pytest-timeout python3-pytest-asyncio python3-hypothesis
  python3-requests python3-websocket python3-websockets python3-aiohttp
  python3-paho-mqtt python3-trustme python3-dnslib python3-ntplib python3-starlette
  python3-mypy python3-uvicorn gunicorn python3-fastapi python3-django
  mosquitto mosquitto-clients dnsmasq-base chrony
  curl wrk nginx-light nodejs node-ws
)
# npm (for the npm peers of the MQTT tests, scripts/npm-peers.sh): Debian's
# package, unless the installed node already bundles it (NodeSource builds do).
command -v npm >/dev/null || packages+=(npm)

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
echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
