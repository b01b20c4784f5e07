#!/usr/bin/env bash
# Run every test inside a private network namespace that has only loopback, so that no test
# packet can reach another address even by mistake. Installs first (idempotent).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh --test
.venv/bin/ruff check firmware tests scripts
if [ "$(id -u)" -eq 0 ]; then netns=(unshare -n); else netns=(unshare -rn); fi
exec "${netns[@]}" sh -c 'ip link set lo up && exec .venv/bin/python -m pytest "$@"' pytest "$@"
