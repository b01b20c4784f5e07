"""What the phone remembers across restarts: its call log and its state file.

The call log (``[phone] call_log``) gives redial, call-back and the missed calls not yet seen;
the state file (``[phone] state_file``, state_file.py) the volumes and do-not-disturb. Either
may be off, or its folder missing (run by hand, without systemd's ``StateDirectory``): the
phone then works and forgets. Nothing here stops the phone: a log that fails is logged.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from . import state_file
from .config import AlertsConfig, PhoneConfig
from .phone import Phone

if TYPE_CHECKING:
    from ..calllog import CallLog
    from ..voice import Call

log = logging.getLogger(__name__)


class Memory:
    """The phone's call log and state file, opened from its config."""

    def __init__(self, phone: PhoneConfig, alerts: AlertsConfig) -> None:
        self._config = phone
        self.call_log: CallLog | None = self._open_call_log(phone.call_log)
        self.state_path = self._folder_exists(phone.state_file, "settings are not kept across "
                                              "restarts", "state_file")
        self.saved: state_file.Settings | None = None  # what the state file holds now
        self._phone: Phone[Call] | None = None
        if self.state_path is not None:
            defaults = state_file.Settings(call_volume=alerts.volume,
                                           ringer_volume=alerts.ringer_volume,
                                           dnd=phone.dnd_at_start)
            self.saved, problem = state_file.load(self.state_path, defaults)
            if problem is not None:
                state_file.save(self.state_path, self.saved)  # the bad file goes (logged)

    @staticmethod
    def _folder_exists(path: str | None, what: str, key: str) -> Path | None:
        if path is None:
            return None
        if not Path(path).parent.is_dir():
            log.warning("%s: %s does not exist ([phone] %s)", what, Path(path).parent, key)
            return None
        return Path(path)

    def _open_call_log(self, path: str | None) -> CallLog | None:
        from ..calllog import CallLog

        if self._folder_exists(path, "no call log", "call_log") is None:
            return None
        try:
            return CallLog(path or ":memory:")
        except Exception as exc:  # a broken log must not keep the phone from working
            log.warning("no call log at %s: %s", path, exc)
            return None

    def attach(self, phone: Phone[Call]) -> None:
        """Seed ``phone`` with what the log remembers: redial, call-back, missed calls."""
        self._phone = phone
        if self.call_log is None:
            return
        phone.on_seen = self.mark_seen
        try:
            phone.last_number = self.call_log.last_peer("OUTGOING")
            phone.last_caller = self.call_log.last_peer("INCOMING")
        except Exception:
            log.exception("call log: cannot read the last calls")
        self.refresh_missed()

    def keep_settings(self, phone: Phone[Call]) -> None:
        """Write the state file when a volume or DND changed (not at every event)."""
        if self.saved is None or self.state_path is None:
            return
        now = state_file.settings_of(phone)
        if now != self.saved and state_file.save(self.state_path, now):
            self.saved = now

    def log_call(self, call: Call, identity: str, name: str | None = None) -> None:
        from ..calllog import track

        if self.call_log is None:
            return
        try:
            track(self.call_log, call, identity=identity, name=name,
                  on_end=self.refresh_missed)
        except Exception:
            log.exception("call log: cannot record a call")

    def refresh_missed(self) -> None:
        """The missed-calls cue from the call log (at start, and as each call ends)."""
        if self.call_log is None or self._phone is None:
            return
        try:
            self._phone.set_missed(self.call_log.unseen_missed())
        except Exception:
            log.exception("call log: cannot count the missed calls")

    def mark_seen(self) -> None:
        if self.call_log is not None:
            try:
                self.call_log.mark_seen()
            except Exception:
                log.exception("call log: cannot mark the missed calls seen")

    def close(self) -> None:
        self._phone = None
        if self.call_log is not None:
            self.call_log.close()
            self.call_log = None
