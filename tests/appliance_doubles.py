"""Test doubles for the phone's unit tests: a Call and a Device that emit the SDK's events
(driven by the test as the far end would), LEDs and sounds that record what they were told.

FakeCall and FakeDevice implement the Protocols the phone is typed against
(appliance/ports.py) as the voice Call and Device do: mypy checks this file (pyproject.toml)
and the assignments at its end.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from piphone.voice import CallDirection, CallStatus
from piphone.voice.events import Emitter

if TYPE_CHECKING:
    from piphone.appliance.ports import AudioRoute, LedsLike, PhoneCall, PhoneDevice, Sounds

_sids = itertools.count(1)
UP = (CallStatus.CONNECTING, CallStatus.RINGING, CallStatus.OPEN, CallStatus.RECONNECTING)


class FakeCall(Emitter):
    """The parts of Call the phone uses; ``actions`` lists what the phone did to it."""

    def __init__(self, direction: CallDirection = CallDirection.INCOMING,
                 frm: str = "+15550001", to: str | None = None) -> None:
        super().__init__()
        self.direction = direction
        self.parameters = {"From": frm, "CallSid": f"CA{next(_sids):032x}"}
        if to is not None:
            self.parameters["To"] = to
        self.codec = "opus"
        self.actions: list[Any] = []
        self.conditions: set[str] = set()  # raised with set_condition
        self._muted = False
        self._held = False
        self._status = (CallStatus.PENDING if direction is CallDirection.INCOMING
                        else CallStatus.CONNECTING)

    @property
    def call_sid(self) -> str:
        return self.parameters["CallSid"]

    def status(self) -> CallStatus:
        return self._status

    def _set(self, status: CallStatus) -> None:
        self._status = status
        self.emit("status", status)

    # what the phone calls
    def accept(self) -> None:
        self.actions.append("accept")
        if self._status is CallStatus.PENDING:
            self._set(CallStatus.CONNECTING)

    def reject(self) -> None:
        self.actions.append("reject")
        if self._status is CallStatus.PENDING:
            self._set(CallStatus.CLOSED)
            self.emit("reject")

    def ignore(self) -> None:
        self.actions.append("ignore")
        if self._status is CallStatus.PENDING:
            self._set(CallStatus.CLOSED)
            self.emit("cancel")

    def disconnect(self) -> None:
        self.actions.append("disconnect")
        if self._status in UP:
            answered = (self._status is not CallStatus.CONNECTING
                        or self.direction is CallDirection.INCOMING)
            self._set(CallStatus.CLOSED)
            self.emit("disconnect", self) if answered else self.emit("cancel")

    def mute(self, should_mute: bool = True) -> None:
        self.actions.append(("mute", bool(should_mute)))
        if self._muted != bool(should_mute):
            self._muted = bool(should_mute)
            self.emit("mute", self._muted, self)

    def is_muted(self) -> bool:
        return self._muted

    def hold(self, on: bool = True) -> None:
        self.actions.append(("hold", bool(on)))
        self._held = bool(on)

    def is_on_hold(self) -> bool:
        return self._held

    def send_digits(self, digits: str) -> None:
        self.actions.append(("digits", digits))

    def set_condition(self, name: str, active: bool) -> None:
        """As the Call's quality monitor does: a raised condition is a warning until cleared."""
        self.actions.append(("condition", name, active))
        if active and name not in self.conditions:
            self.conditions.add(name)
            self.emit("warning", name, {"name": name})
        elif not active and name in self.conditions:
            self.conditions.discard(name)
            self.emit("warning-cleared", name)

    # what the far end (or the network) does
    def far_open(self) -> None:
        self._set(CallStatus.OPEN)
        self.emit("accept", self)

    def far_hangup(self) -> None:
        self._set(CallStatus.CLOSED)
        self.emit("disconnect", self)

    def far_cancel(self) -> None:
        self._set(CallStatus.CLOSED)
        self.emit("cancel")

    def net_reconnecting(self) -> None:
        self._set(CallStatus.RECONNECTING)
        self.emit("reconnecting", RuntimeError("media lost"))

    def net_reconnected(self) -> None:
        self._set(CallStatus.OPEN)
        self.emit("reconnected")


class FakeDevice(Emitter):
    def __init__(self) -> None:
        super().__init__()
        self.placed: list[FakeCall] = []
        self.fail_next: Exception | None = None

    async def connect(self, params: Mapping[str, str] | None = None, *,
                      connect_token: str | None = None) -> FakeCall:
        if self.fail_next is not None:
            error, self.fail_next = self.fail_next, None
            raise error
        to = params["To"] if params is not None else f"resumed:{connect_token}"
        call = FakeCall(CallDirection.OUTGOING, frm="alice", to=to)
        self.placed.append(call)
        return call

    def ring(self, frm: str = "+15550001") -> FakeCall:
        call = FakeCall(CallDirection.INCOMING, frm=frm)
        self.emit("incoming", call)
        return call


class FakeLeds:
    def __init__(self) -> None:
        self.history: list[dict[str, str]] = []

    def show(self, patterns: Mapping[str, Any]) -> None:
        self.history.append({k: str(v) for k, v in patterns.items()})

    @property
    def now(self) -> dict[str, str]:
        return self.history[-1] if self.history else {}


class FakeSounds:
    def __init__(self) -> None:
        self.log: list[tuple[str, object]] = []
        self.ringing = False
        self.playing: str | None = None
        self.level: int | None = None
        self.ringer_level: int | None = None

    def ring(self, on: bool) -> None:
        self.ringing = on
        self.log.append(("ring", on))

    def tone(self, name: str | None) -> None:
        self.playing = name
        self.log.append(("tone", name))

    def beep(self, name: str) -> None:
        self.log.append(("beep", name))

    def dtmf(self, digit: str) -> None:
        self.log.append(("dtmf", digit))

    def volume(self, step: int) -> None:
        self.level = step
        self.log.append(("volume", step))

    def ringer_volume(self, step: int) -> None:
        self.ringer_level = step
        self.log.append(("ringer_volume", step))

    def beeps(self, name: str) -> int:
        return self.log.count(("beep", name))


class FakeRoute:
    """The phone's AudioRoute: where the call's audio is, and every move."""

    def __init__(self, available: bool = True) -> None:
        self.handsfree_available = available
        self.handsfree = False
        self.moves: list[bool] = []

    def use(self, handsfree: bool) -> None:
        self.handsfree = handsfree
        self.moves.append(handsfree)


if TYPE_CHECKING:  # the doubles fit the phone's Protocols (checked by mypy, not at run time)
    _call: PhoneCall = FakeCall()
    _device: PhoneDevice[FakeCall] = FakeDevice()
    _leds: LedsLike = FakeLeds()
    _sounds: Sounds = FakeSounds()
    _route: AudioRoute = FakeRoute()
