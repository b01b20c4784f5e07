#!/usr/bin/env bash
# `scripts/install.sh --system [--dry-run]`: piphone as a systemd service (see install.sh), and
# `--uninstall [--purge]`. Arguments: DRY_RUN (1: only print the commands), then `uninstall`
# and PURGE (1: also /etc/piphone and the user). PIPHONE_PREFIX, PIPHONE_ETC and PIPHONE_UNIT_DIR
# move /opt/piphone, /etc/piphone and /etc/systemd/system (the tests' dry runs). Idempotent:
# existing config files are kept as they are, except that secrets.toml and the exchange's
# private files are made 0600 and piphone's again.
set -euo pipefail
cd "$(dirname "$0")/.."

dry_run=${1:-0}
action=${2:-install}
purge=${3:-0}
PREFIX=${PIPHONE_PREFIX:-/opt/piphone}
ETC=${PIPHONE_ETC:-/etc/piphone}
UNIT_DIR=${PIPHONE_UNIT_DIR:-/etc/systemd/system}
USER_NAME=piphone

run() {
    if [ "$dry_run" -eq 1 ]; then
        printf '+ %s\n' "$*"
    else
        "$@"
    fi
}

if [ "$dry_run" -ne 1 ] && [ "$(id -u)" -ne 0 ]; then
    echo "install.sh --system changes /opt, /etc and users: run it as root (sudo)" >&2
    exit 1
fi

systemctl_() {  # with no running systemd (a container, a chroot): by the unit files alone
    if [ -d /run/systemd/system ]; then run systemctl "$@"; else run systemctl --root=/ "$@"; fi
}

if [ "$action" = uninstall ]; then
    units=()
    for unit in piphone.service piphone-exchange.service; do
        [ -e "$UNIT_DIR/$unit" ] && units+=("$unit")
    done
    if [ "${#units[@]}" -gt 0 ]; then
        if [ -d /run/systemd/system ]; then
            run systemctl disable --now "${units[@]}"
        else
            run systemctl --root=/ disable "${units[@]}"
        fi
        for unit in "${units[@]}"; do run rm -f "$UNIT_DIR/$unit"; done
        [ -d /run/systemd/system ] && run systemctl daemon-reload
    fi
    [ -e "$PREFIX" ] && run rm -rf "$PREFIX"
    if [ "$purge" -eq 1 ]; then
        [ -e "$ETC" ] && run rm -rf "$ETC"
        id "$USER_NAME" >/dev/null 2>&1 && run userdel "$USER_NAME"
    else
        echo "kept $ETC and the $USER_NAME user (--purge removes them too)"
    fi
    [ "$dry_run" -eq 1 ] && echo "(dry run: nothing was changed)"
    exit 0
fi

# What the service needs to build and run: pyalsaaudio's build tools, a venv; libspeexdsp1 is
# the handsfree echo canceller where pywebrtc-audio has no wheel (32-bit ARM).
packages=(python3 python3-venv python3-dev gcc libasound2-dev libspeexdsp1)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    run apt-get update -qq
    run env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

# The program: a copy of this clone in its own venv (not an editable link to the clone).
run install -d -m 0755 "$PREFIX"
[ -x "$PREFIX/.venv/bin/python" ] || run python3 -m venv "$PREFIX/.venv"
run "$PREFIX/.venv/bin/python" -m pip install -q --upgrade pip
# [pi]: gpiozero's pin library (lgpio), only on the Pi's ARM machines (an environment marker).
run "$PREFIX/.venv/bin/python" -m pip install -q "$(pwd)[pi]"

# The user: a system account in audio (ALSA) and gpio (the header's pins).
getent group gpio >/dev/null || run groupadd --system gpio
if id "$USER_NAME" >/dev/null 2>&1; then
    run usermod -a -G audio,gpio "$USER_NAME"
else
    run useradd --system --user-group --home-dir /var/lib/piphone --no-create-home \
        --shell /usr/sbin/nologin --groups audio,gpio "$USER_NAME"
fi

# The config: readable by all; the secrets only by piphone.
run install -d -m 0755 "$ETC"
[ -e "$ETC/piphone.toml" ] || run install -m 0644 systemd/piphone.toml.example "$ETC/piphone.toml"
if [ -e "$ETC/secrets.toml" ]; then
    run chown "$USER_NAME:$USER_NAME" "$ETC/secrets.toml"
    run chmod 0600 "$ETC/secrets.toml"
else
    run install -m 0600 -o "$USER_NAME" -g "$USER_NAME" systemd/secrets.toml.example \
        "$ETC/secrets.toml"
fi

# The local exchange's private files, if it has some (`piphone exchange --init-config`): its
# config, its phones' keys and its TLS keys, 0600 and piphone's like secrets.toml (the
# certificates stay readable by all).
for file in exchange.toml exchange-phones.toml exchange-ca.key exchange-cert.key; do
    if [ -e "$ETC/$file" ]; then
        run chown "$USER_NAME:$USER_NAME" "$ETC/$file"
        run chmod 0600 "$ETC/$file"
    fi
done

# The units, enabled for the next boot; started by hand once the config is filled in. The
# local exchange is enabled only where it has a config (`piphone exchange --init-config`).
run install -m 0644 systemd/piphone.service "$UNIT_DIR/piphone.service"
run install -m 0644 systemd/piphone-exchange.service "$UNIT_DIR/piphone-exchange.service"
units=(piphone.service)
[ -e "$ETC/exchange.toml" ] && units+=(piphone-exchange.service)
[ -d /run/systemd/system ] && run systemctl daemon-reload
systemctl_ enable "${units[@]}"
[ "$dry_run" -eq 1 ] && echo "(dry run: nothing was changed)"
echo "piphone installed in $PREFIX; edit $ETC/piphone.toml and $ETC/secrets.toml, then:"
echo "  $PREFIX/.venv/bin/piphone check --config $ETC/piphone.toml && systemctl restart piphone"
