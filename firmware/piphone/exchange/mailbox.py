"""Voicemail messages on disk: one folder per mailbox, a WAV file and a JSON note per message.

A mailbox's folder is named by a hash of its identity (an identity may hold any character;
a file name may not), under the ``[voicemail] directory``. A message's id is the exchange's
(``VM`` + 32 hex), never a caller's or a phone's, and an id a client sends is checked against
that shape before it is joined to any path. Audio is written as it comes (``Recording``:
16 kHz mono 16-bit WAV, about 32 KB a second) to a ``.part`` file that becomes the message
only when the call ends, so a message is never half there. The bounds (voicemail_settings.py):
``max_seconds`` per message, ``max_messages`` per mailbox, ``max_mailboxes``, and
``max_megabytes`` for them all (a message under way counts at its full length).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import secrets
import time
import wave
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..pcm import SAMPLE_RATE, Samples
from .voicemail_settings import VoicemailSettings

log = logging.getLogger(__name__)

RATE = 16_000  # Hz of what is kept: a phone call's band, a third of the decoded 48 kHz
MESSAGE_ID = re.compile(r"VM[0-9a-f]{32}")
MIN_SECONDS = 0.5  # shorter: the caller hung up at the beep; nothing is kept


@dataclass(frozen=True)
class Message:
    sid: str
    caller: str  # From, as the exchange knows it ("client:alice")
    received: float  # seconds since the epoch
    seconds: float
    heard: bool = False


class Recording:
    """One message being recorded: ``push`` 20 ms blocks of 48 kHz mono (a PcmTarget, as the
    media port decodes into); at ``limit`` seconds it stops taking more (``full``)."""

    def __init__(self, path: Path, limit: float) -> None:
        self.path = path
        self.limit_samples = int(limit * RATE)
        self.samples = 0
        self._wav: wave.Wave_write | None = wave.open(str(path), "wb")
        self._wav.setnchannels(1)
        self._wav.setsampwidth(2)
        self._wav.setframerate(RATE)

    @property
    def full(self) -> bool:
        return self.samples >= self.limit_samples

    @property
    def seconds(self) -> float:
        return self.samples / RATE

    def push(self, samples: Samples) -> None:
        if self._wav is None or self.full:
            return
        step = SAMPLE_RATE // RATE
        usable = len(samples) - len(samples) % step
        # the mean of each three samples: a crude low-pass before keeping every third
        block = samples[:usable].astype(np.int32).reshape(-1, step).mean(axis=1)
        block = block[:self.limit_samples - self.samples].astype("<i2")
        self._wav.writeframes(block.tobytes())
        self.samples += len(block)

    def close(self) -> None:
        if self._wav is not None:
            self._wav.close()
            self._wav = None


class Mailboxes:
    """Every mailbox under ``settings.directory``."""

    def __init__(self, settings: VoicemailSettings) -> None:
        self.settings = settings
        assert settings.directory is not None
        self.root = Path(settings.directory)
        if self.root.is_dir():  # what a run that stopped mid-message left
            for part in self.root.glob("*/VM*.wav.part"):
                part.unlink(missing_ok=True)

    def _folder(self, identity: str) -> Path:
        return self.root / hashlib.sha256(identity.encode()).hexdigest()[:32]

    def messages(self, identity: str) -> list[Message]:
        """The mailbox's messages, newest first (notes that cannot be read are skipped)."""
        found = []
        folder = self._folder(identity)
        for note in folder.glob("VM*.json") if folder.is_dir() else ():
            try:
                data = json.loads(note.read_text(encoding="utf-8"))
                found.append(Message(**data))
            except (OSError, ValueError, TypeError) as exc:
                log.warning("voicemail: %s unreadable: %s", note, exc)
        return sorted(found, key=lambda m: m.received, reverse=True)

    def counts(self, identity: str) -> tuple[int, int]:
        """(messages, unheard)."""
        messages = self.messages(identity)
        return len(messages), sum(1 for m in messages if not m.heard)

    def can_take(self, identity: str, recording: int = 0) -> bool:
        """Whether a new message for ``identity`` fits within the limits (``recording``: how
        many messages are being recorded now, each counted at its longest)."""
        if not self.root.is_dir():
            return True
        used = sum(p.stat().st_size for p in self.root.glob("*/VM*.wav*"))
        longest = 44 + 2 * RATE * self.settings.max_seconds
        if used + (recording + 1) * longest > self.settings.max_megabytes * 1024 * 1024:
            return False
        folder = self._folder(identity)
        if folder.is_dir():
            return len(list(folder.glob("VM*.json"))) < self.settings.max_messages
        mailboxes = sum(1 for p in self.root.iterdir() if p.is_dir()) if self.root.is_dir() \
            else 0
        return mailboxes < self.settings.max_mailboxes

    def record(self, identity: str) -> Recording:
        folder = self._folder(identity)
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        sid = "VM" + secrets.token_hex(16)
        return Recording(folder / f"{sid}.wav.part", self.settings.max_seconds)

    def keep(self, identity: str, recording: Recording, caller: str) -> Message | None:
        """The call ended: the recording becomes a message (None: too short, dropped)."""
        recording.close()
        if recording.seconds < MIN_SECONDS:
            recording.path.unlink(missing_ok=True)
            return None
        sid = recording.path.name.split(".", 1)[0]
        message = Message(sid=sid, caller=caller[:128], received=time.time(),
                          seconds=round(recording.seconds, 2))
        folder = recording.path.parent
        os.replace(recording.path, folder / f"{sid}.wav")
        self._write_note(identity, message)
        log.info("voicemail: %.1f s message %s for a mailbox", message.seconds, sid)
        return message

    def _write_note(self, identity: str, message: Message) -> None:
        note = self._folder(identity) / f"{message.sid}.json"
        temporary = note.with_suffix(".tmp")
        temporary.write_text(json.dumps(asdict(message)), encoding="utf-8")
        os.replace(temporary, note)

    def find(self, identity: str, sid: str) -> Message | None:
        """``identity``'s message ``sid`` (a client's text: checked before any path)."""
        if not MESSAGE_ID.fullmatch(sid):
            return None
        return next((m for m in self.messages(identity) if m.sid == sid), None)

    def audio_path(self, identity: str, message: Message) -> Path:
        return self._folder(identity) / f"{message.sid}.wav"

    def mark_heard(self, identity: str, message: Message) -> None:
        if not message.heard:
            self._write_note(identity, Message(**{**asdict(message), "heard": True}))

    def delete(self, identity: str, message: Message) -> None:
        folder = self._folder(identity)
        for name in (f"{message.sid}.json", f"{message.sid}.wav"):
            (folder / name).unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # not empty: other messages are there
            folder.rmdir()
