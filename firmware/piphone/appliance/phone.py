"""The phone: one transitions state machine over panel inputs and call events.

What each input and call event does in each state is the table ``TRANSITIONS`` (table.py),
readable at once (``piphone diagram`` draws it); this is its model, whose methods are the
conditions and actions the rows name. Actions go through the Call/Device API; after every
event the phone computes ``display(state, muted, warnings, handsfree=...)`` and shows it on
the LEDs and in sound (ringer, dial tone, ringback, chirps). Mute is a flag, not a state; so is
handsfree (the speaker button moves the call between the headset and the handsfree device,
through the ``AudioRoute`` port; lifting the handset takes it back to the headset). Hold is a
state (the far end hears hold music; ``Call.hold``); the calls the phone follows, on hold or
waiting with call waiting, are lines.py's.

Inputs arrive on the loop (panel/inputs.py hands gpiozero's threads over); call events arrive
from pyee on the loop. Nothing here blocks, and an error in one event is logged, counted and
never raised into the loop.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Generic, Protocol

from transitions import EventData, Machine, State

from ..panel.inputs import PanelInput
from .config import AlertsConfig, PhoneConfig
from .cues import Cues, Moment
from .dialing import Dialing
from .display import Display
from .display import display as default_display
from .lines import Lines
from .ports import AudioRoute, CallT, LedsLike, PhoneDevice, Sounds
from .state_file import VOLUME_STEPS, Settings
from .table import PANEL_TRIGGERS, STATES, machine_rows
from .timers import Timers
from .transfers import Transfers
from .two_calls import TwoCalls
from .voicemail import MailboxLike, NoMailbox, VoicemailKeys

log = logging.getLogger(__name__)

__all__ = ["VOLUME_STEPS", "Phone"]


class DisplayFunction(Protocol):
    """display.display with its patterns bound (display.py)."""

    def __call__(self, state: str, muted: bool, warnings: frozenset[str], *,
                 handsfree: bool = False, held: bool = False, online: bool = True,
                 dnd: bool = False, missed: bool = False, voicemail: bool = False) -> Display: ...


class NoHandsfree:
    """The AudioRoute of a phone without a handsfree device: the speaker button does nothing."""

    handsfree_available = False

    def use(self, handsfree: bool) -> None:
        pass


class Phone(Dialing[CallT], TwoCalls[CallT], Transfers[CallT], VoicemailKeys, Generic[CallT]):
    """The state machine's model. ``handle(PanelInput)`` for the panel; call events bind
    themselves; ``call_number(number)``, ``hangup_call()``, ``answer_call()`` and
    ``mute_call()`` for the control socket; ``status()`` says where it is."""

    state: str  # one of STATES, kept by the Machine
    if TYPE_CHECKING:  # added by the Machine
        def trigger(self, trigger_name: str, **kwargs: Any) -> bool: ...

        def may_trigger(self, trigger_name: str, **kwargs: Any) -> bool: ...

    def __init__(self, device: PhoneDevice[CallT], leds: LedsLike, sounds: Sounds,
                 settings: PhoneConfig, alerts: AlertsConfig | None = None, *,
                 off_hook: Callable[[], bool] = lambda: False,
                 display: DisplayFunction | None = None,
                 route: AudioRoute | None = None, saved: Settings | None = None) -> None:
        self._display = display or default_display
        self.route: AudioRoute = route or NoHandsfree()
        self.handsfree = False  # the call's audio is on the handsfree device
        self.device = device
        self.leds = leds
        self.sounds = sounds
        self.settings = settings
        self.alerts = alerts or AlertsConfig()
        self._off_hook = off_hook
        self.lines: Lines[CallT] = Lines(self.fire, self._on_mute)  # the calls it follows
        self.peer: str | None = None
        self.digits = ""
        self.last_number: str | None = None  # redial (the service seeds it from the call log)
        self.last_caller: str | None = None  # call-back (likewise)
        self.speed_numbers: Mapping[str, str] = {}  # speed-dial key "1".."9" -> number
        self.online = True  # registered; the service says when it is not
        self.missed = 0  # missed calls not yet seen (the service counts them in the call log)
        self.on_seen: Callable[[], None] = lambda: None  # the missed-calls key was pressed
        self.mailbox: MailboxLike = NoMailbox()  # voicemail at the exchange (voicemail.py)
        self.muted = False
        # What the state file kept (state_file.py), else the configured start values.
        self.dnd = saved.dnd if saved is not None else settings.dnd_at_start
        self.warnings: set[str] = set()
        self.volume_step = saved.call_volume if saved is not None else self.alerts.volume
        self.ringer_step = (saved.ringer_volume if saved is not None
                            else self.alerts.ringer_volume)
        self.rings = 0
        self.last_error: object | None = None
        self.failures = 0  # exceptions caught in event handling (0 in a healthy phone)
        self.listeners: list[Callable[[Phone[CallT]], None]] = []  # told after every event
        self._loop = asyncio.get_running_loop()
        self.timers = Timers(self._loop)  # dial, ring, mute, hold
        self.cues = Cues(leds, sounds, self.alerts, settings, self.timers)
        self._connecting: asyncio.Task[None] | None = None
        self._resuming_held: asyncio.Task[None] | None = None  # two_calls.resume_held
        self._in_event = False
        self.state = "idle"
        self.machine = Machine(
            model=self, states=[self._state(name) for name in STATES],
            transitions=machine_rows(), initial="idle", auto_transitions=False,
            send_event=True, ignore_invalid_triggers=False, finalize_event="after_event")
        device.on("incoming", self._on_incoming)
        sounds.volume(self.volume_step)
        sounds.ringer_volume(self.ringer_step)
        self.after_event(None)

    def _state(self, name: str) -> State:
        def hook(kind: str) -> list[str | Callable[..., bool | None]]:
            return [f"{kind}_{name}"] if hasattr(self, f"{kind}_{name}") else []
        return State(name, on_enter=hook("enter"), on_exit=hook("leave"))

    @property
    def call(self) -> CallT | None:
        """The call the state is about."""
        return self.lines.current.call if self.lines.current is not None else None

    @property
    def waiting(self) -> CallT | None:
        """A second call that rings, with call waiting."""
        return self.lines.waiting.call if self.lines.waiting is not None else None

    @property
    def held(self) -> CallT | None:
        """A second call on hold while the phone talks on another, with call waiting."""
        return self.lines.held.call if self.lines.held is not None else None

    # --- ways in ---------------------------------------------------------------------------
    def handle(self, item: PanelInput) -> None:
        """A PanelInput from the panel."""
        trigger = PANEL_TRIGGERS.get(item.event.name)
        if trigger is None:
            log.warning("unknown panel input %r ignored", item)
            return
        self.fire(trigger, digit=item.digit)

    def call_number(self, number: str) -> bool:
        """Dial NUMBER (control socket); False if the phone is busy."""
        return self.fire("place_call", number=number)

    def hangup_call(self) -> bool:
        return self.fire("press_reject")

    def answer_call(self) -> bool:
        return self.fire("press_accept")

    def mute_call(self) -> bool:
        return self.fire("press_mute")

    def hold_call(self) -> bool:
        return self.fire("press_hold")

    def swap_call(self) -> bool:
        return self.fire("press_swap")

    def speaker_call(self, on: bool | None = None) -> bool:
        """The speaker button (control socket); ``on`` True/False: only if that changes it."""
        if on is not None and on == self.handsfree:
            return True  # already there
        return self.fire("press_speaker")

    def fire(self, trigger: str, **kwargs: Any) -> bool:
        """Run one trigger if the table has a row for it here; never raises.

        A trigger fired from inside another (a call event emitted by our own action) waits for
        that one to finish, so one event is one transition."""
        if self._in_event:
            self._loop.call_soon(functools.partial(self.fire, trigger, **kwargs))
            return True
        try:
            if not self.may_trigger(trigger, **kwargs):
                log.debug("%s does nothing while %s", trigger, self.state)
                return False
            self._in_event = True
            try:
                return bool(self.trigger(trigger, **kwargs))
            finally:
                self._in_event = False
        except Exception:
            self.failures += 1
            log.exception("phone: %s in %s failed", trigger, self.state)
            return False

    # --- conditions ------------------------------------------------------------------------
    def hook_lifted(self, _event: EventData | None = None) -> bool:
        return bool(self._off_hook())

    def has_last_number(self, _event: EventData) -> bool:
        return bool(self.last_number)

    def has_last_caller(self, _event: EventData) -> bool:
        return bool(self.last_caller)

    def has_speed_number(self, event: EventData) -> bool:
        return event.kwargs.get("digit") in self.speed_numbers

    def has_digits(self, _event: EventData) -> bool:
        return bool(self.digits)

    def call_waiting(self, _event: EventData) -> bool:
        return self.settings.call_waiting

    def has_speaker(self, _event: EventData) -> bool:
        return self.route.handsfree_available

    def auto_answer_due(self, _event: EventData) -> bool:
        n = self.settings.auto_answer_rings
        return n > 0 and self.rings >= n

    def mark_seen(self, _event: EventData) -> None:
        """The missed calls are seen: the cue goes out (the service marks the call log)."""
        self.missed = 0
        self.on_seen()

    # --- actions: calls --------------------------------------------------------------------
    def take_incoming(self, event: EventData) -> None:
        call: CallT = event.kwargs["call"]
        self.peer = call.parameters.get("From") or call.parameters.get("Caller")
        self.last_caller = self.peer or self.last_caller
        self._attach(call)

    def refuse_dnd(self, event: EventData) -> None:
        call: CallT = event.kwargs["call"]
        log.info("do not disturb: %s %s", self.settings.dnd, call.parameters.get("From"))
        call.reject() if self.settings.dnd == "reject" else call.ignore()

    def refuse_busy(self, event: EventData) -> None:
        call: CallT = event.kwargs["call"]
        log.info("busy: rejecting %s", call.parameters.get("From"))
        call.reject()

    def answer(self, _event: EventData | None = None) -> None:
        assert self.call is not None
        self.call.accept()

    def reject(self, _event: EventData) -> None:
        self.lines.release().reject()
        self._reset_call()

    def ignore(self, _event: EventData) -> None:
        self.lines.release().ignore()
        self._reset_call()

    def hang_up(self, _event: EventData | None = None) -> None:
        # An invite on its way is not cancelled (that could strand a half-made Call in the
        # Device); _connect() hangs it up as soon as connect() returns.
        self._connecting = None
        if self.lines.current is not None:
            self.lines.release().disconnect()
        self._reset_call()

    def forget_call(self, _event: EventData) -> None:
        self._reset_call()

    def toggle_mute(self, _event: EventData) -> None:
        call = self.call
        if call is not None:
            call.mute(not call.is_muted())
            self.muted = call.is_muted()

    def use_speaker(self, _event: EventData | None = None) -> None:
        self._route(True)

    def use_headset(self, _event: EventData | None = None) -> None:
        self._route(False)

    def _route(self, handsfree: bool) -> None:
        if handsfree != self.handsfree:
            self.sounds.tone(None)  # the current tone plays again, on the device now in use
            self.cues.tone = None
            self.handsfree = handsfree
            self.route.use(handsfree)

    def toggle_dnd(self, _event: EventData) -> None:
        self.dnd = not self.dnd
        log.info("do not disturb %s", "on" if self.dnd else "off")

    def louder(self, _event: EventData) -> None:
        self.volume_step = min(VOLUME_STEPS, self.volume_step + 1)
        self.sounds.volume(self.volume_step)

    def softer(self, _event: EventData) -> None:
        self.volume_step = max(0, self.volume_step - 1)
        self.sounds.volume(self.volume_step)

    def ringer_louder(self, _event: EventData) -> None:
        self.ringer_step = min(VOLUME_STEPS, self.ringer_step + 1)
        self.sounds.ringer_volume(self.ringer_step)

    def ringer_softer(self, _event: EventData) -> None:
        self.ringer_step = max(0, self.ringer_step - 1)
        self.sounds.ringer_volume(self.ringer_step)

    def add_warning(self, event: EventData) -> None:
        self.warnings.add(str(event.kwargs.get("name")))

    def clear_warning(self, event: EventData) -> None:
        self.warnings.discard(str(event.kwargs.get("name")))

    def note_error(self, event: EventData) -> None:
        self.last_error = event.kwargs.get("error")
        log.warning("call error: %s", self.last_error)

    # --- states ----------------------------------------------------------------------------
    def enter_idle(self, _event: EventData) -> None:
        self.use_headset()  # the next call starts on the headset

    def enter_ringing(self, _event: EventData) -> None:
        self.rings = 0

        def ring() -> None:
            self.rings += 1
            self.fire("ring")

        self.timers.start("ring", self.alerts.ring_period, ring, repeat=True)

    def leave_ringing(self, _event: EventData) -> None:
        self.timers.cancel("ring")

    def leave_dialing(self, _event: EventData) -> None:
        self.timers.cancel("dial")
        self.digits = ""

    # --- after every event -------------------------------------------------------------------
    def after_event(self, event: EventData | None) -> None:
        if event is not None:
            log.info("phone: %s -> %s%s", event.event.name, self.state,
                     " (muted)" if self.muted else "")
        warnings = frozenset(self.warnings)
        shown = self._display(self.state, self.muted, warnings, handsfree=self.handsfree,
                              held=self.lines.held is not None, online=self.online,
                              dnd=self.dnd, missed=self.missed > 0,
                              voicemail=self.mailbox.unheard > 0)
        # what the cues use, as the phone has it now (a test may swap in a recorder)
        self.cues.leds, self.cues.sounds, self.cues.settings = self.leds, self.sounds, self.settings
        self.cues.show(shown, Moment(self.state, self.muted, bool(self.digits),
                                     self.hook_lifted()), warnings)
        for listener in list(self.listeners):
            try:
                listener(self)
            except Exception:
                log.exception("phone listener failed")

    # --- call plumbing ---------------------------------------------------------------------
    def _on_incoming(self, call: CallT) -> None:
        self.fire("incoming", call=call)

    def _attach(self, call: CallT) -> None:
        """Make ``call`` the phone's call: its events drive the machine from now on."""
        self.lines.follow(call, self.peer)
        self.muted = call.is_muted()

    def set_online(self, online: bool) -> None:
        """Registered or not (the service follows the Device): the idle panel shows it."""
        self._set("online", online)

    def set_missed(self, count: int) -> None:
        """How many missed calls wait to be seen (from the call log)."""
        self._set("missed", count)

    def _set(self, flag: str, value: object) -> None:
        if getattr(self, flag) != value:
            setattr(self, flag, value)
            self.after_event(None)

    def _on_mute(self, muted: bool) -> None:
        if self.muted != muted:
            self.muted = muted
            self.after_event(None)

    def _reset_call(self) -> None:
        """No call any more (one still followed is let go)."""
        if self.lines.current is not None:
            self.lines.release()
        self.muted = False
        self.warnings.clear()
        if self.lines.waiting is None and self.lines.held is None:
            self.peer = None

    # --- status and shutdown ---------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        call, waiting, held = self.call, self.lines.waiting, self.lines.held
        return {
            "state": self.state, "muted": self.muted, "dnd": self.dnd,
            "peer": self.peer, "warnings": sorted(self.warnings),
            "call_sid": call.call_sid if call is not None else None,
            "codec": call.codec if call is not None else "",
            "waiting": waiting.peer if waiting is not None else None,
            "held": held.peer if held is not None else None,
            "volume": self.volume_step, "ringer_volume": self.ringer_step,
            "last_number": self.last_number, "last_caller": self.last_caller,
            "missed": self.missed, "online": self.online, "handsfree": self.handsfree,
            "voicemail": self.mailbox.unheard, "voicemail_messages": self.mailbox.messages,
        }

    def close(self, hang_up: bool = True) -> None:
        """Hang up whatever is up (unless not ``hang_up``: a restart that keeps the call),
        stop timers, sounds and LEDs."""
        self.device.remove_listener("incoming", self._on_incoming)
        if hang_up and (self.lines.current is not None or self._connecting is not None):
            if self.state == "ringing" and self.lines.current is not None:
                self.lines.release().ignore()
            self.hang_up()
        if hang_up and self.lines.waiting is not None:
            self.lines.take_waiting().call.ignore()
        if hang_up and self.lines.held is not None:
            self.lines.take_held().call.disconnect()
        if self._resuming_held is not None:
            self._resuming_held.cancel()
        self.mailbox.stop()
        self.timers.cancel_all()
        self.sounds.ring(False)
        self.sounds.tone(None)
        self.leds.show({})
