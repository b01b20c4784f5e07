"""Where piphone keeps its files on a phone: the directories systemd/piphone.service gives it.

Defined once here, light to import (the CLI's defaults and help texts name them).
"""

from __future__ import annotations

from pathlib import Path

CONFIG = Path("/etc/piphone/piphone.toml")  # the appliance's config; secrets.toml beside it
CALL_LOG = "/var/lib/piphone/calls.db"  # the phone's call log (StateDirectory=piphone)
RUNTIME = "/run/piphone"  # control socket, the kept call (RuntimeDirectory=piphone)
STATE_FILE = "/var/lib/piphone/state.json"  # volumes and do-not-disturb kept across restarts
