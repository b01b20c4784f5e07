#!/usr/bin/env bash
# Install or upgrade piphone on a Pi over ssh: `scripts/deploy.sh [--dry-run] [USER@]HOST`.
# Sends this clone's committed tree (git archive HEAD: what is not committed does not go),
# runs `install.sh --system` there with sudo, and restarts the phone if its config checks
# out (a fresh install waits for /etc/piphone/*.toml to be filled in). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

dry_run=0
host=""
for arg in "$@"; do
    case "$arg" in
        --dry-run) dry_run=1 ;;
        -*) echo "usage: $0 [--dry-run] [USER@]HOST" >&2; exit 2 ;;
        *) [ -z "$host" ] || { echo "usage: $0 [--dry-run] [USER@]HOST" >&2; exit 2; }
           host=$arg ;;
    esac
done
[ -n "$host" ] || { echo "usage: $0 [--dry-run] [USER@]HOST" >&2; exit 2; }

SRC=/tmp/piphone-src  # on the Pi
unpack="rm -rf $SRC && mkdir -p $SRC && tar -x -C $SRC"
# A second connection with a terminal, so that sudo can ask for a password.
install="sudo bash $SRC/scripts/install.sh --system && \
if sudo /opt/piphone/.venv/bin/piphone check --config /etc/piphone/piphone.toml >/dev/null; \
then sudo systemctl restart piphone && echo 'piphone restarted'; \
else echo 'piphone installed; fill in /etc/piphone/piphone.toml and secrets.toml'; fi"

if [ "$dry_run" -eq 1 ]; then
    echo "+ git archive --format=tar HEAD | ssh $host '$unpack'"
    echo "+ ssh -t $host '$install'"
    exit 0
fi
git archive --format=tar HEAD | ssh "$host" "$unpack"
ssh -t "$host" "$install"
