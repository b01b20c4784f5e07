"""Test doubles for the phone's unit tests: a Call and a Device that emit the SDK's events
(driven by the test as the far end would), LEDs and sounds that record what they were told."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

from piphone.voice.events import Emitter

_sids = itertools.count(1)


class FakeCall(Emitter):
    """The parts of Call the phone uses; ``actions`` lists what the phone did to it."""

    def __init__(self, direction: str = "INCOMING", frm: str = "+15550001",
                 to: str | None = None) -> None:
        super().__init__()
        self.direction = direction
        self.parameters = {"From": frm, "CallSid": f"CA{next(_sids):032x}"}
        if to is not None:
            self.parameters["To"] = to
        self.codec = "opus"
        self.actions: list[Any] = []
        self._muted = False
        self._status = "pending" if direction == "INCOMING" else "connecting"

    @property
    def call_sid(self) -> str:
        return self.parameters["CallSid"]

    def status(self) -> str:
        return self._status

    def _set(self, status: str) -> None:
        self._status = status
        self.emit("status", status)

    # what the phone calls
    def accept(self) -> None:
        self.actions.append("accept")
        if self._status == "pending":
            self._set("connecting")

    def reject(self) -> None:
        self.actions.append("reject")
        if self._status == "pending":
            self._set("closed")
            self.emit("reject")

    def ignore(self) -> None:
        self.actions.append("ignore")
        if self._status == "pending":
            self._set("closed")
            self.emit("cancel")

    def disconnect(self) -> None:
        self.actions.append("disconnect")
        if self._status in ("connecting", "ringing", "open", "reconnecting"):
            answered = self._status != "connecting" or self.direction == "INCOMING"
            self._set("closed")
            self.emit("disconnect", self) if answered else self.emit("cancel")

    def mute(self, should_mute: bool = True) -> None:
        self.actions.append(("mute", bool(should_mute)))
        if self._muted != bool(should_mute):
            self._muted = bool(should_mute)
            self.emit("mute", self._muted, self)

    def is_muted(self) -> bool:
        return self._muted

    def send_digits(self, digits: str) -> None:
        self.actions.append(("digits", digits))

    # what the far end (or the network) does
    def far_open(self) -> None:
        self._set("open")
        self.emit("accept", self)

    def far_hangup(self) -> None:
        self._set("closed")
        self.emit("disconnect", self)

    def far_cancel(self) -> None:
        self._set("closed")
        self.emit("cancel")

    def net_reconnecting(self) -> None:
        self._set("reconnecting")
        self.emit("reconnecting", RuntimeError("media lost"))

    def net_reconnected(self) -> None:
        self._set("open")
        self.emit("reconnected")


class FakeDevice(Emitter):
    def __init__(self) -> None:
        super().__init__()
        self.placed: list[FakeCall] = []
        self.fail_next: Exception | None = None

    async def connect(self, params: Mapping[str, str]) -> FakeCall:
        if self.fail_next is not None:
            error, self.fail_next = self.fail_next, None
            raise error
        call = FakeCall("OUTGOING", frm="alice", to=params["To"])
        self.placed.append(call)
        return call

    def ring(self, frm: str = "+15550001") -> FakeCall:
        call = FakeCall("INCOMING", frm=frm)
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
        self.log: list[tuple] = []
        self.ringing = False
        self.playing: str | None = None
        self.level: int | None = None

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

    def beeps(self, name: str) -> int:
        return self.log.count(("beep", name))
