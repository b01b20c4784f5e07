"""Voicemail on the phone: the message-waiting cue, and the messages played in the handset.

The local exchange records the calls nobody answered (exchange/voicemail.py) and tells the
phone with a ``voicemail`` frame, which the Device emits: how many messages, how many unheard,
and where to fetch them. ``PhoneMailbox`` follows it (the cue: display()'s ``voicemail``,
lit while any message is unheard) and keeps the list (voice/voicemail.py's client, with the
Device's token). The VOICEMAIL key (table.py's rows, ``VoicemailKeys`` here) plays them in
the earpiece, newest first, one after another; the key again or ``#`` skips to the next, ``7``
deletes the one playing (as desk voicemail does), hanging up (or REJECT) stops. A message
played to its end is marked heard at the exchange, so the cue goes out when none are left
unheard.

On Twilio there is no such frame: the phone's Function records what it does not answer
(twilio_setup/function.py), and the phone reads the recordings through Twilio's REST API with
its API key (voice/recordings.py) every POLL seconds, and after what it changes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from transitions import EventData

from ..pcm import SAMPLE_RATE, Samples
from ..voice.tasks import TaskSet
from ..voice.voicemail import MailboxClient, VoicemailError, VoicemailMessage

if TYPE_CHECKING:
    from ..voice import Device
    from .config import AccountConfig

log = logging.getLogger(__name__)

GAP = 0.6  # seconds of quiet between two messages
POLL = 60.0  # seconds between two reads of Twilio's recordings
HEARD_FILE = "voicemail-heard.json"  # on Twilio: the recordings played, in the state folder
DELETE_KEY, NEXT_KEY = "7", "#"


class MailboxLike(Protocol):
    """What the phone's rows use of the mailbox (PhoneMailbox, or NoMailbox)."""

    messages: int
    unheard: int

    def start(self) -> None: ...

    def skip(self) -> None: ...

    def delete_current(self) -> None: ...

    def stop(self) -> None: ...


class NoMailbox:
    """A phone whose exchange has no voicemail (Twilio, or voicemail off): nothing waits."""

    messages = 0
    unheard = 0

    def start(self) -> None:
        pass

    skip = delete_current = stop = start


class VoicemailKeys:
    """The Phone's conditions and actions for voicemail (phone.py mixes it in)."""

    mailbox: MailboxLike

    def has_messages(self, _event: EventData) -> bool:
        return self.mailbox.messages > 0

    def play_messages(self, _event: EventData) -> None:
        self.mailbox.start()

    def next_message(self, _event: EventData) -> None:
        self.mailbox.skip()

    def message_key(self, event: EventData) -> None:
        digit = event.kwargs.get("digit")
        if digit == DELETE_KEY:
            self.mailbox.delete_current()
        elif digit == NEXT_KEY:
            self.mailbox.skip()

    def stop_messages(self, _event: EventData) -> None:
        self.mailbox.stop()


class MailboxSource(Protocol):
    """Where the messages are: the local exchange (voice/voicemail.py's MailboxClient) or
    Twilio's recordings (voice/recordings.py's TwilioRecordings)."""

    url: str | None

    async def list(self) -> list[VoicemailMessage]: ...

    async def audio(self, sid: str) -> Samples: ...

    async def heard(self, sid: str) -> None: ...

    async def delete(self, sid: str) -> None: ...


class PhoneLike(Protocol):
    mailbox: MailboxLike

    def fire(self, trigger: str, **kwargs: Any) -> bool: ...

    def after_event(self, event: EventData | None) -> None: ...


class PhoneMailbox:
    """The phone's mailbox at the exchange. ``play(samples)``: into the earpiece (None:
    stop). One per Device (a reload keeps both); ``attach`` gives it the phone of the run."""

    def __init__(self, client: MailboxSource, play: Callable[[Samples | None], None]) -> None:
        self.client = client
        self.play = play
        self.messages = 0
        self.unheard = 0
        self.listing: list[VoicemailMessage] = []  # newest first, as last fetched
        self.index = 0  # of the message playing (or next to)
        self.playing: VoicemailMessage | None = None
        self.last_error: str | None = None
        self.phone: PhoneLike | None = None
        self._player: asyncio.Task[None] | None = None
        self._tasks = TaskSet(self)
        self.polled = False  # Twilio: the counts come from the list, read every POLL s

    @classmethod
    def of(cls, device: Device, play: Callable[[Samples | None], None],
           account: AccountConfig, state_folder: Path | None = None) -> PhoneMailbox:
        """The local exchange's mailbox (its frames), or on Twilio's edge with an API key
        the recordings of the phone's Function (read every POLL s)."""
        if account.signaling_url is None and account.account_sid and account.api_key_sid \
                and account.api_key_secret:
            from ..voice.recordings import TwilioRecordings

            mailbox = cls(TwilioRecordings(
                account.account_sid, account.api_key_sid, account.api_key_secret,
                account.identity, state_folder / HEARD_FILE if state_folder else None), play)
            mailbox.polled = True
            mailbox._tasks.spawn(mailbox._poll())
            return mailbox
        mailbox = cls(MailboxClient(lambda: device.token, lambda: device.options.ssl_context),
                      play)
        device.on("voicemail", mailbox.on_notice)
        return mailbox

    async def _poll(self) -> None:
        while True:
            await self.refresh()
            await asyncio.sleep(POLL)

    def attach(self, phone: PhoneLike) -> None:
        self.phone = phone
        phone.mailbox = self
        phone.after_event(None)

    def on_notice(self, payload: dict[str, Any]) -> None:
        """The exchange's ``voicemail`` frame (checked by protocol.py)."""
        self.client.url = payload.get("url") or self.client.url
        self.messages = max(0, payload["messages"])
        self.unheard = max(0, payload["unheard"])
        log.info("voicemail: %d messages, %d unheard", self.messages, self.unheard)
        self._tasks.spawn(self.refresh())
        if self.phone is not None:
            self.phone.after_event(None)  # the cue

    async def refresh(self) -> None:
        """The list again (what `piphone voicemail` shows); a failure is logged."""
        try:
            self.listing = await self.client.list()
            self.last_error = None
        except VoicemailError as exc:
            self.last_error = str(exc)
            log.warning("voicemail: %s", exc)
            return
        self._recount()

    def _recount(self) -> None:
        """On Twilio the counts are the list's (the exchange tells its own)."""
        if not self.polled:
            return
        counts = len(self.listing), sum(1 for m in self.listing if not m.heard)
        if counts != (self.messages, self.unheard):
            self.messages, self.unheard = counts
            if self.phone is not None:
                self.phone.after_event(None)  # the cue

    # --- playing (the rows' actions) --------------------------------------------------------
    def start(self) -> None:
        self.index = 0
        self._play_from(listed=False)

    def skip(self) -> None:
        self.index += 1
        self._play_from(listed=True)

    def delete_current(self) -> None:
        message = self.playing
        if message is None:
            return
        self._cancel()
        self.listing = [m for m in self.listing if m.sid != message.sid]
        self._player = self._tasks.spawn(self._delete_then_play(message))

    def delete(self, number: int) -> str:
        """Delete message ``number`` (1: the newest, as listed); its sid. IndexError."""
        if not 1 <= number <= len(self.listing):
            raise IndexError(f"there is no message {number} ({len(self.listing)} listed)")
        message = self.listing.pop(number - 1)
        self._tasks.spawn(self._delete(message))
        return message.sid

    def stop(self) -> None:
        self._cancel()

    def _cancel(self) -> None:
        if self._player is not None:
            self._player.cancel()
            self._player = None
        self.playing = None
        self.play(None)

    def _play_from(self, *, listed: bool) -> None:
        self._cancel()
        self._player = self._tasks.spawn(self._play_all(listed))

    async def _delete(self, message: VoicemailMessage) -> None:
        try:
            await self.client.delete(message.sid)
            log.info("voicemail: message %s deleted", message.sid)
            self._recount()
        except VoicemailError as exc:
            self.last_error = str(exc)
            log.warning("voicemail: %s", exc)

    async def _delete_then_play(self, message: VoicemailMessage) -> None:
        await self._delete(message)
        await self._play_all(listed=True)  # the next one is at the same place now

    async def _play_all(self, listed: bool) -> None:
        """From ``index`` to the last message; then the phone hears ``messages_done``."""
        try:
            if not listed:
                self.listing = await self.client.list()
            while self.index < len(self.listing):
                message = self.playing = self.listing[self.index]
                audio = await self.client.audio(message.sid)
                log.info("voicemail: playing %s (%d of %d)", message.sid, self.index + 1,
                         len(self.listing))
                self.play(audio)
                await asyncio.sleep(len(audio) / SAMPLE_RATE + GAP)
                if not message.heard:
                    await self.client.heard(message.sid)
                    self.listing = [dataclasses.replace(m, heard=True) if m.sid == message.sid
                                    else m for m in self.listing]
                    self._recount()
                self.index += 1
        except VoicemailError as exc:
            self.last_error = str(exc)
            log.warning("voicemail: %s", exc)
        self.playing = None
        self._player = None
        if self.phone is not None:
            self.phone.fire("messages_done")

    def status(self) -> dict[str, Any]:
        return {"voicemail": self.unheard, "voicemail_messages": self.messages,
                "voicemail_playing": self.playing.sid if self.playing else None}

    def listed(self) -> list[dict[str, Any]]:
        return [{"number": n, "sid": m.sid, "from": m.caller, "received": m.received,
                 "seconds": m.seconds, "heard": m.heard}
                for n, m in enumerate(self.listing, 1)]

    def close(self) -> None:
        self._cancel()
        self._tasks.cancel()
