#!/usr/bin/env bash
# Install or upgrade piphone on a Pi over ssh: `scripts/deploy.sh [--dry-run] [USER@]HOST`.
# Sends this clone's committed tree (git archive HEAD: what is not committed does not go),
# runs `install.sh --system` there with sudo, and restarts the phone if its config checks
# out (a fresh install waits for /etc/piphone/*.toml to be filled in). Idempotent.
#
# On the Pi the tree goes into a private folder that `mktemp -d` makes (a random name, mode
# 0700, owned by the user deploying) and that is removed when the install ends. Never a fixed
# folder in /tmp: another local user could make that folder first and choose what the
# installer runs as root.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { echo "usage: $0 [--dry-run] [USER@]HOST" >&2; exit 2; }
dry_run=0
host=""
for arg in "$@"; do
    case "$arg" in
        --dry-run) dry_run=1 ;;
        -*) usage ;;
        *) [ -z "$host" ] || usage
           host=$arg ;;
    esac
done
[ -n "$host" ] || usage

# First connection (POSIX sh on the Pi): the private folder, the tree in it; prints its path.
unpack='set -e; umask 077; d=$(mktemp -d "${TMPDIR:-/tmp}/piphone-deploy.XXXXXXXXXX"); '\
'if tar -x -C "$d"; then printf "%s\n" "$d"; else rm -rf -- "$d"; exit 1; fi'

# Second connection, with a terminal so that sudo can ask for a password: the folder must
# still be a directory (not a link) of ours, mode 0700; the installer runs from it as root,
# and the folder goes when this ends, whatever happens (as root if the install left files of
# root's in it).
install_in() {
    local d=$1
    printf '%s' "d='$d'; trap 'rm -rf -- \"\$d\" 2>/dev/null || sudo rm -rf -- \"\$d\"' EXIT; "\
"if [ ! -d \"\$d\" ] || [ -L \"\$d\" ] || [ \"\$(stat -c %u:%a \"\$d\")\" != \"\$(id -u):700\" ]; "\
"then echo \"\$d is not the private folder this deploy made; not installing\" >&2; exit 1; fi; "\
"sudo bash \"\$d/scripts/install.sh\" --system && "\
"if sudo /opt/piphone/.venv/bin/piphone check --config /etc/piphone/piphone.toml >/dev/null; "\
"then if systemctl is-active --quiet piphone; "\
"then sudo systemctl kill --signal=SIGUSR1 --kill-whom=main piphone && echo 'piphone restarting (a call in progress is kept)'; "\
"else sudo systemctl restart piphone && echo 'piphone restarted'; fi; "\
"else echo 'piphone installed; fill in /etc/piphone/piphone.toml and secrets.toml'; fi"
}

if [ "$dry_run" -eq 1 ]; then
    echo "+ git archive --format=tar HEAD | ssh $host '$unpack'"
    echo "+ ssh -t $host '$(install_in '<the folder printed above>')'"
    exit 0
fi
folder=$(git archive --format=tar HEAD | ssh "$host" "$unpack")
# The path goes into the next command: only what mktemp makes is let through.
if ! [[ "$folder" =~ ^/[A-Za-z0-9._/-]*/piphone-deploy\.[A-Za-z0-9]{10}$ ]]; then
    echo "deploy: unexpected answer from $host: $folder" >&2
    exit 1
fi
ssh -t "$host" "$(install_in "$folder")"
