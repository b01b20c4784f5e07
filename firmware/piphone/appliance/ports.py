"""What the phone uses of the world, as Protocols: a call, the device that makes and takes
calls, the LEDs and the sounds.

The voice ``Call`` and ``Device`` implement ``PhoneCall`` and ``PhoneDevice`` structurally (no
base class), and so do the test doubles (tests/appliance_doubles.py); mypy checks both fits
(service.py hands the phone a voice Device, the doubles assert theirs). A call's status is
the voice ``CallStatus``, never a string.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar

from ..panel.leds import Pattern
from ..voice import CallDirection, CallStatus

Handler = Callable[..., Any]


class Events(Protocol):
    """pyee's emitter, as far as the phone subscribes."""

    def on(self, event: str, f: Handler) -> object: ...

    def remove_listener(self, event: str, f: Handler) -> None: ...


class PhoneCall(Events, Protocol):
    """One call, as the phone drives it (the Twilio.Call API, snake_case).

    Events the phone follows: ``accept``, ``cancel``, ``disconnect``, ``reject``,
    ``status(CallStatus)``, ``reconnecting``, ``reconnected``, ``warning(name)``,
    ``warning-cleared(name)``, ``error(error)``, ``mute(is_muted)``."""

    @property
    def direction(self) -> CallDirection: ...

    @property
    def parameters(self) -> Mapping[str, str]: ...  # From, To, CallSid...

    @property
    def call_sid(self) -> str | None: ...

    @property
    def codec(self) -> str: ...  # "" until negotiated

    def status(self) -> CallStatus: ...

    def accept(self) -> object: ...

    def reject(self) -> None: ...

    def ignore(self) -> None: ...

    def disconnect(self) -> None: ...

    def mute(self, should_mute: bool = True) -> None: ...

    def is_muted(self) -> bool: ...

    def send_digits(self, digits: str) -> object: ...

    def set_condition(self, name: str, active: bool) -> None: ...  # audio-device-lost

    def hold(self, on: bool = True) -> None: ...  # piphone's extension: hold music, not played

    def is_on_hold(self) -> bool: ...


CallT = TypeVar("CallT", bound=PhoneCall)
CallT_co = TypeVar("CallT_co", bound=PhoneCall, covariant=True)


class PhoneDevice(Events, Protocol[CallT_co]):
    """The device: ``incoming(call)`` events, and ``connect()`` for a call the phone places."""

    async def connect(self, params: Mapping[str, str] | None = None, *,
                      connect_token: str | None = None) -> CallT_co: ...


class LedsLike(Protocol):
    """panel/leds.py's Leds: LED name -> pattern; LEDs not named are off."""

    def show(self, patterns: Mapping[str, Pattern]) -> None: ...


class AudioRoute(Protocol):
    """Where the call's audio goes: the headset, or the handsfree device (speaker and its
    microphone). appliance/audio.py backs it; a phone without a handsfree device has none."""

    @property
    def handsfree_available(self) -> bool: ...

    def use(self, handsfree: bool) -> None: ...  # move the call's audio, without a gap


class Sounds(Protocol):
    """What the phone plays; appliance/sounds.py backs it with audio/, tests with a fake."""

    def ring(self, on: bool) -> None: ...  # the ringer on the ring device

    def tone(self, name: str | None) -> None: ...  # dial | ringback | reconnecting | None

    def beep(self, name: str) -> None: ...  # warning | mute | waiting | hold (one-shot)

    def dtmf(self, digit: str) -> None: ...  # a key's local tone

    def volume(self, step: int) -> None: ...  # call audio 0..VOLUME_STEPS

    def ringer_volume(self, step: int) -> None: ...  # the ringer 0..VOLUME_STEPS (0: silent)
