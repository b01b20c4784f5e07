#!/usr/bin/env bash
# Lint (ruff) and type-check (mypy, configured in pyproject.toml), then run every test inside a
# private network namespace that has only loopback, so that no test packet can reach another
# address even by mistake. Installs first (idempotent).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh --test
.venv/bin/ruff check firmware tests scripts
.venv/bin/mypy
# The one test that needs the package index (every native dependency has an aarch64 wheel)
# runs here, outside the namespace; inside it, it skips as unreachable.
.venv/bin/python -m pytest -q -p no:cacheprovider tests/unit/test_aarch64_wheels.py
if [ "$(id -u)" -eq 0 ]; then netns=(unshare -n); else netns=(unshare -rn); fi
exec "${netns[@]}" sh -c 'ip link set lo up && exec .venv/bin/python -m pytest "$@"' pytest "$@"
