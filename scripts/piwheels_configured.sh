#!/usr/bin/env bash
# Exit 0 when pip is configured to use piwheels (its index or an extra index names piwheels),
# as 32-bit Raspberry Pi OS needs (scripts/install.sh). It reads what pip reads, in pip's order,
# later settings overriding earlier ones: the global files ($XDG_CONFIG_DIRS/pip/pip.conf,
# /etc/pip.conf), the user's (~/.pip/pip.conf, ~/.config/pip/pip.conf), PIP_CONFIG_FILE (or
# none at all when it is /dev/null), then PIP_INDEX_URL and PIP_EXTRA_INDEX_URL. Python's
# configparser parses the files as pip does. No pip needed: the system python3 may have none
# before install.sh runs.
set -euo pipefail
exec python3 - <<'PY'
import configparser
import os
import sys

home = os.path.expanduser("~")
env_file = os.environ.get("PIP_CONFIG_FILE")
files = []
if env_file != os.devnull:
    xdg = os.environ.get("XDG_CONFIG_DIRS") or "/etc/xdg"
    files += [os.path.join(d, "pip", "pip.conf") for d in reversed(xdg.split(":")) if d]
    files += ["/etc/pip.conf", os.path.join(home, ".pip", "pip.conf"),
              os.path.join(os.environ.get("XDG_CONFIG_HOME") or os.path.join(home, ".config"),
                           "pip", "pip.conf")]
    if env_file:
        files.append(env_file)
effective: dict[str, str] = {}  # "install.extra-index-url" -> value, as pip merges them
for path in files:
    parser = configparser.RawConfigParser()
    try:
        parser.read(path)
    except (configparser.Error, UnicodeDecodeError):
        continue  # pip refuses such a file too
    for section in parser.sections():
        if section in ("global", "install", "download", "wheel"):
            for key, value in parser.items(section):
                effective[f"{section}.{key.replace('_', '-')}"] = value
for name in ("index-url", "extra-index-url"):
    from_env = os.environ.get("PIP_" + name.upper().replace("-", "_"))
    if from_env is not None:
        effective = {k: v for k, v in effective.items() if not k.endswith("." + name)}
        effective["env." + name] = from_env
sys.exit(0 if any("piwheels" in value for key, value in effective.items()
                  if key.endswith(("index-url",))) else 1)
PY
