#!/usr/bin/env bash
# Set up piphone on Debian 12 / Raspberry Pi OS Bookworm: system packages, a venv in .venv,
# the package with its test extras. Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

# python3-dev, gcc and libasound2-dev build pyalsaaudio; iproute2 and util-linux give the
# tests their loopback-only network namespace; chromium and npm run Twilio's own SDK for the
# conformance tests.
packages=(python3 python3-venv python3-dev gcc libasound2-dev iproute2 util-linux chromium)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# npm may come with a nodejs from elsewhere (NodeSource): Debian's npm only when there is none.
command -v npm >/dev/null || missing+=(npm)
if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing: ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test]'
# Twilio's Voice SDK, pinned by tests/conformance/package-lock.json.
if [ ! -f tests/conformance/node_modules/@twilio/voice-sdk/package.json ]; then
    (cd tests/conformance && npm ci --no-audit --no-fund --loglevel=error)
fi
echo "piphone installed in $(pwd)/.venv"
