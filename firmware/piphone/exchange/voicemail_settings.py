"""The exchange's voicemail settings (``[voicemail]`` in exchange.toml), checked at load.

Everything a caller can make the exchange keep is bounded here: how long one message may be,
how many messages one mailbox holds, how many mailboxes there are (a caller could otherwise
dial identity after identity), and how much disk they all take (a Pi's SD card is small).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..tomlconfig import TomlFile, positive


@dataclass(frozen=True)
class VoicemailSettings:
    enabled: bool = False  # calls to an identity nobody answers are recorded
    ring_timeout: float = 20.0  # seconds a call to an identity rings before voicemail takes it
    max_seconds: float = 120.0  # a message is cut here (the caller is hung up)
    max_messages: int = 20  # per mailbox; a full mailbox takes no more (the call ends as before)
    max_mailboxes: int = 64  # identities with messages; a new one over it gets no voicemail
    max_megabytes: int = 256  # all messages together (16 kHz: about 2 MB a minute); then none
    directory: str | None = None  # where messages are kept; None: <state folder>/voicemail
    # also take calls to a phone that is busy (its refusal while in another call, or no
    # device free) and to one that is not registered; a rejected call always goes there
    when_busy: bool = True
    when_offline: bool = True


KEYS = {"enabled", "ring_timeout", "max_seconds", "max_messages", "max_mailboxes",
        "max_megabytes", "directory", "when_busy", "when_offline"}


def load(toml: TomlFile, state_folder: Path) -> VoicemailSettings:
    """The ``[voicemail]`` table; a relative ``directory`` is under ``state_folder`` (the
    service's state directory under systemd, else the config file's folder)."""
    sec, d = "voicemail", VoicemailSettings()
    toml.unknown_keys(sec, KEYS)
    directory = toml.get(sec, "directory", str, "voicemail",
                         lambda v: None if v.strip() else "must not be empty")
    return VoicemailSettings(
        enabled=toml.get(sec, "enabled", bool, d.enabled),
        ring_timeout=float(toml.get(sec, "ring_timeout", (int, float), d.ring_timeout,
                                    positive)),
        max_seconds=float(toml.get(sec, "max_seconds", (int, float), d.max_seconds,
                                   lambda v: None if 1 <= v <= 600 else "must be 1-600 seconds")),
        max_messages=toml.get(sec, "max_messages", int, d.max_messages,
                              lambda v: None if 1 <= v <= 1000 else "must be 1-1000"),
        max_mailboxes=toml.get(sec, "max_mailboxes", int, d.max_mailboxes,
                               lambda v: None if 1 <= v <= 10000 else "must be 1-10000"),
        max_megabytes=toml.get(sec, "max_megabytes", int, d.max_megabytes,
                               lambda v: None if 1 <= v <= 100_000 else "must be 1-100000"),
        directory=str(state_folder / directory),  # an absolute one stays as it is
        when_busy=toml.get(sec, "when_busy", bool, d.when_busy),
        when_offline=toml.get(sec, "when_offline", bool, d.when_offline),
    )


STARTER = """
[voicemail]                 # a call to an identity nobody answers is recorded here
enabled = true
ring_timeout = 20           # seconds it rings before voicemail answers (the caller hears a beep)
max_seconds = 120           # a message is cut at this length
max_messages = 20           # per mailbox; a full one takes no more (the call ends unanswered)
max_mailboxes = 64          # identities with messages at once
max_megabytes = 256         # all messages together (about 2 MB a minute); then no more
directory = "voicemail"     # under the state directory (or beside this file)
when_busy = true            # a busy phone's callers leave a message too
when_offline = true         # and the callers of one that is not registered
"""
