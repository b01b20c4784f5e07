#!/usr/bin/env bash
# Set up piphone on Debian 12 / Raspberry Pi OS Bookworm: system packages, a venv in .venv,
# the package with its test extras. Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

# python3-dev, gcc and libasound2-dev build pyalsaaudio; iproute2 and util-linux give the
# tests their loopback-only network namespace.
packages=(python3 python3-venv python3-dev gcc libasound2-dev iproute2 util-linux)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
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
echo "piphone installed in $(pwd)/.venv"
