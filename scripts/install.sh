#!/usr/bin/env bash
# Set up piphone on Debian 12 / Raspberry Pi OS Bookworm: system packages and a venv in .venv
# with the package. `--test` adds what the tests need: the test extras, Debian's chromium and
# graphviz, and Twilio's Voice SDK (pinned by tests/conformance/package-lock.json). Idempotent.
#
# `--system` installs the phone as a service instead: piphone in /opt/piphone/.venv, a
# `piphone` user in the audio and gpio groups, /etc/piphone/piphone.toml (0644) and
# secrets.toml (0600, owned by piphone) from the starters in systemd/ when missing, and
# systemd/piphone.service installed and enabled. `--uninstall` removes the units and
# /opt/piphone, keeping /etc/piphone and the user (`--purge`: those too). `--dry-run` prints
# what either would do.
set -euo pipefail
cd "$(dirname "$0")/.."

with_tests=0
system=0
uninstall=0
purge=0
dry_run=0
for arg in "$@"; do
    case "$arg" in
        --test) with_tests=1 ;;
        --system) system=1 ;;
        --uninstall) uninstall=1 ;;
        --purge) purge=1 ;;
        --dry-run) dry_run=1 ;;
        *) echo "usage: $0 [--test | --system [--dry-run] | --uninstall [--purge] [--dry-run]]" >&2
           exit 2 ;;
    esac
done
if [ "$dry_run" -eq 1 ] && [ "$system" -eq 0 ] && [ "$uninstall" -eq 0 ]; then
    echo "--dry-run goes with --system or --uninstall" >&2
    exit 2
fi
if [ "$purge" -eq 1 ] && [ "$uninstall" -eq 0 ]; then
    echo "--purge goes with --uninstall" >&2
    exit 2
fi
if [ "$uninstall" -eq 1 ]; then
    exec bash scripts/install_system.sh "$dry_run" uninstall "$purge"
fi

# 32-bit Raspberry Pi OS (armv7l): PyPI has no wheels there for numpy, av (PyPI's PyAV) or
# cryptography, so pip would compile them for an hour or more, or fail. piwheels builds them
# for that OS; without it configured, stop before touching anything.
if [ "$(uname -m)" = "armv7l" ] && ! scripts/piwheels_configured.sh; then
    cat >&2 <<'MSG'
piphone: this is 32-bit Raspberry Pi OS (armv7l). PyPI has no wheels here for numpy, av or
cryptography, so installing would compile them for an hour or more, or fail.
Flash 64-bit Raspberry Pi OS (Bookworm, arm64) instead: every native dependency installs
from a wheel there, on every Pi from the 3B+ and the Zero 2 W to the 5.
To go on with 32-bit anyway, configure piwheels for pip (Raspberry Pi OS ships it in
/etc/pip.conf: extra-index-url=https://www.piwheels.org/simple), then run this again.
MSG
    exit 3
fi

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

if [ "$system" -eq 1 ]; then
    exec bash scripts/install_system.sh "$dry_run"
fi

# python3-dev, gcc and libasound2-dev build pyalsaaudio; libspeexdsp1 is the handsfree echo
# canceller where pywebrtc-audio has no wheel (and the tests' and bench's reference); iproute2
# and util-linux give the tests their loopback-only network namespace; chromium runs Twilio's
# own SDK; graphviz draws the phone's diagram; systemd gives systemd-analyze to check the unit
# files (nothing starts).
packages=(python3 python3-venv python3-dev gcc libasound2-dev libspeexdsp1 iproute2 util-linux)
[ "$with_tests" -eq 1 ] && packages+=(chromium graphviz systemd)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# npm may come with a nodejs from elsewhere (NodeSource): Debian's npm only when there is none.
if [ "$with_tests" -eq 1 ] && ! command -v npm >/dev/null; then missing+=(npm); fi
if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing: ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
if [ "$with_tests" -eq 1 ]; then
    .venv/bin/python -m pip install -q -e '.[test]'
    if [ ! -f tests/conformance/node_modules/@twilio/voice-sdk/package.json ]; then
        (cd tests/conformance && npm ci --no-audit --no-fund --loglevel=error)
    fi
else
    .venv/bin/python -m pip install -q -e .
fi
echo "piphone installed in $(pwd)/.venv"
