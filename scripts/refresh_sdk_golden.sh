#!/usr/bin/env bash
# Record the frames the pinned Twilio Voice SDK sends (tests/conformance/golden/sdk-frames.json)
# after changing its version in tests/conformance/package.json. Runs the parity scenarios
# against the SDK in a loopback-only namespace; review the diff, then bring piphone in line.
set -euo pipefail
cd "$(dirname "$0")/.."
(cd tests/conformance && npm install --no-audit --no-fund --loglevel=error)
if [ "$(id -u)" -eq 0 ]; then netns=(unshare -n); else netns=(unshare -rn); fi
PIPHONE_REFRESH_GOLDEN=1 exec "${netns[@]}" sh -c 'ip link set lo up && exec .venv/bin/python \
    -m pytest -q tests/conformance/test_wire_parity.py -k golden_frames'
