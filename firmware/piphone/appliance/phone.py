"""The phone's policy: one transitions state machine over panel inputs and call events.

What each input and call event does in each state is the table ``TRANSITIONS`` below, readable
at once (``piphone diagram`` draws it). Actions go through the real Call/Device API; after every
event the phone computes ``display(state, muted, warnings)`` and shows it on the LEDs and in
sound (ringer, dial tone, ringback, chirps). Mute is a flag, not a state.

Inputs arrive on the loop (panel/inputs.py hands gpiozero's threads over); call events arrive
from pyee on the loop. Nothing here blocks, and an error in one event is logged, counted and
never raised into the loop.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from transitions import EventData, Machine, State

from .config import AlertsConfig, PhoneConfig

log = logging.getLogger(__name__)

STATES = ("idle", "dialing", "ringing", "calling", "talking", "reconnecting")
ACTIVE = ["calling", "talking", "reconnecting"]  # a call of ours is up or on its way
NOT_IDLE = ["dialing", "ringing", "calling", "talking", "reconnecting"]

# trigger,          source,           dest,          conditions,              action
# (dest None: the state stays; "unless:" negates a condition; rows are tried in order)
TRANSITIONS: list[tuple[str, str | list[str], str | None, list[str], str | list[str] | None]] = [
    # the handset
    ("off_hook",      "idle",           "dialing",     [],                      "start_dialing"),
    ("off_hook",      "ringing",        "talking",     [],                      "answer"),
    ("on_hook",       "dialing",        "idle",        [],                      None),
    ("on_hook",       ACTIVE,           "ringing",     ["has_waiting"],
     ["hang_up", "ring_waiting"]),
    ("on_hook",       ACTIVE,           "idle",        [],                      "hang_up"),
    # buttons
    ("press_accept",  "ringing",        "talking",     [],                      "answer"),
    ("press_accept",  "talking",        None,          ["has_waiting"],         "swap_to_waiting"),
    ("press_reject",  "ringing",        "idle",        [],                      "reject"),
    ("press_reject",  "talking",        None,          ["has_waiting"],         "reject_waiting"),
    ("press_reject",  ACTIVE,           "dialing",     ["hook_lifted"],            "hang_up"),
    ("press_reject",  ACTIVE,           "idle",        [],                      "hang_up"),
    ("press_ignore",  "ringing",        "idle",        [],                      "ignore"),
    ("press_ignore",  "talking",        None,          ["has_waiting"],         "ignore_waiting"),
    ("press_mute",    ["talking", "reconnecting"], None, [],                    "toggle_mute"),
    ("press_redial",  ["idle", "dialing"], "calling",  ["has_last_number"],     "redial"),
    ("press_dnd",     "*",              None,          [],                      "toggle_dnd"),
    ("volume_up",     "*",              None,          [],                      "louder"),
    ("volume_down",   "*",              None,          [],                      "softer"),
    ("key",           "dialing",        None,          [],                      "collect_digit"),
    ("key",           "talking",        None,          [],                      "send_digit"),
    ("dial",          "dialing",        "calling",     ["has_digits"],          "dial_digits"),
    ("place_call",    ["idle", "dialing"], "calling",  [],                      "dial_number"),
    # calls
    ("incoming",      "idle",           None,          ["dnd"],                 "refuse_dnd"),
    ("incoming",      "idle",           "ringing",     [],                      "take_incoming"),
    ("incoming",      "talking",        None,          ["call_waiting", "unless:has_waiting"],
     "hold_waiting"),
    ("incoming",      NOT_IDLE,         None,          [],                      "refuse_busy"),
    ("ring",          "ringing",        "talking",     ["auto_answer_due"],     "answer"),
    ("ring",          "ringing",        None,          [],                      None),
    ("answered",      "calling",        "talking",     [],                      None),
    ("answered",      "talking",        None,          [],                      None),
    ("ended",         "ringing",        "idle",        [],                      "forget_call"),
    ("ended",         ACTIVE,           "ringing",     ["has_waiting"],         "ring_waiting"),
    ("ended",         ACTIVE,           "dialing",     ["hook_lifted"],         "forget_call"),
    ("ended",         ACTIVE,           "idle",        [],                      "forget_call"),
    ("waiting_ended", "*",              None,          [],                      "forget_waiting"),
    ("reconnecting",  ["calling", "talking"], "reconnecting", [],               None),
    ("reconnected",   "reconnecting",   "talking",     [],                      None),
    ("warning",       ACTIVE,           None,          [],                      "add_warning"),
    ("warning_cleared", ACTIVE,         None,          [],                      "clear_warning"),
    ("failed",        "*",              None,          [],                      "note_error"),
]

# Panel events by member name (the agreed PanelEvent names) -> trigger.
PANEL_TRIGGERS = {
    "OFF_HOOK": "off_hook", "ON_HOOK": "on_hook", "ACCEPT": "press_accept",
    "REJECT": "press_reject", "IGNORE": "press_ignore", "MUTE": "press_mute",
    "VOLUME_UP": "volume_up", "VOLUME_DOWN": "volume_down", "REDIAL": "press_redial",
    "DND": "press_dnd", "DIGIT": "key",
}
VOLUME_STEPS = 10


def machine_rows() -> list[dict[str, Any]]:
    """TRANSITIONS as transitions' dicts (shared by the phone and the diagram)."""
    rows = []
    for trigger, source, dest, conditions, action in TRANSITIONS:
        row: dict[str, Any] = {"trigger": trigger, "source": source, "dest": dest,
                               "conditions": [c for c in conditions if not c.startswith("unless:")],
                               "unless": [c[7:] for c in conditions if c.startswith("unless:")]}
        if action:
            row["before"] = action
        rows.append(row)
    return rows


class Sounds(Protocol):
    """What the phone plays; appliance/sounds.py backs it with audio/, tests with a fake."""

    def ring(self, on: bool) -> None: ...  # the ringer on the ring device

    def tone(self, name: str | None) -> None: ...  # dial | ringback | reconnecting | None

    def beep(self, name: str) -> None: ...  # warning | mute | waiting (one-shot)

    def dtmf(self, digit: str) -> None: ...  # a key's local tone

    def volume(self, step: int) -> None: ...  # call audio 0..VOLUME_STEPS


class LedsLike(Protocol):
    def show(self, patterns: Mapping[str, Any]) -> None: ...


class Phone:
    """The state machine's model. ``handle(PanelInput)`` for the panel; call events bind
    themselves; ``call_number(number)``, ``hangup_call()``, ``answer_call()`` and
    ``mute_call()`` for the control socket; ``status()`` says where it is."""

    def __init__(self, device: Any, leds: LedsLike, sounds: Sounds, settings: PhoneConfig,
                 alerts: AlertsConfig | None = None, *,
                 off_hook: Callable[[], bool] = lambda: False,
                 display: Callable[[str, bool, frozenset[str]], Any] | None = None) -> None:
        if display is None:
            from .display import display
        self._display = display
        self.device = device
        self.leds = leds
        self.sounds = sounds
        self.settings = settings
        self.alerts = alerts or AlertsConfig()
        self._off_hook = off_hook
        self.call: Any | None = None  # the call the state is about
        self.waiting: Any | None = None  # a second call, with call waiting
        self.peer: str | None = None
        self.digits = ""
        self.last_number: str | None = None
        self.muted = False
        self.dnd = settings.dnd_at_start
        self.warnings: set[str] = set()
        self.volume_step = self.alerts.volume
        self.rings = 0
        self.last_error: Any | None = None
        self.failures = 0  # exceptions caught in event handling (0 in a healthy phone)
        self.listeners: list[Callable[[Phone], None]] = []  # told after every event
        self._tone: str | None = None
        self._ringing_sound = False
        self._shown_warnings: frozenset[str] = frozenset()
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._connecting: asyncio.Task | None = None
        self._handlers: tuple[Any, dict[str, Callable[..., None]]] | None = None  # on self.call
        self._in_event = False
        self._loop = asyncio.get_running_loop()
        self.state = "idle"
        self.machine = Machine(
            model=self, states=[self._state(name) for name in STATES],
            transitions=machine_rows(), initial="idle", auto_transitions=False,
            send_event=True, ignore_invalid_triggers=False, finalize_event="after_event")
        device.on("incoming", self._on_incoming)
        sounds.volume(self.volume_step)
        self.after_event(None)

    def _state(self, name: str) -> State:
        enter = [f"enter_{name}"] if hasattr(self, f"enter_{name}") else []
        leave = [f"leave_{name}"] if hasattr(self, f"leave_{name}") else []
        return State(name, on_enter=enter, on_exit=leave)

    # --- ways in ---------------------------------------------------------------------------
    def handle(self, item: Any) -> None:
        """A PanelInput from the panel."""
        trigger = PANEL_TRIGGERS.get(getattr(item.event, "name", ""))
        if trigger is None:
            log.warning("unknown panel input %r ignored", item)
            return
        self.fire(trigger, digit=getattr(item, "digit", None))

    def call_number(self, number: str) -> bool:
        """Dial NUMBER (control socket); False if the phone is busy."""
        return self.fire("place_call", number=number)

    def hangup_call(self) -> bool:
        return self.fire("press_reject")

    def answer_call(self) -> bool:
        return self.fire("press_accept")

    def mute_call(self) -> bool:
        return self.fire("press_mute")

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

    def has_waiting(self, _event: EventData) -> bool:
        return self.waiting is not None

    def has_last_number(self, _event: EventData) -> bool:
        return bool(self.last_number)

    def has_digits(self, _event: EventData) -> bool:
        return bool(self.digits)

    def call_waiting(self, _event: EventData) -> bool:
        return self.settings.call_waiting

    def auto_answer_due(self, _event: EventData) -> bool:
        n = self.settings.auto_answer_rings
        return n > 0 and self.rings >= n

    # --- actions: the handset and keypad ---------------------------------------------------
    def start_dialing(self, _event: EventData) -> None:
        self.digits = ""

    def collect_digit(self, event: EventData) -> None:
        digit = event.kwargs.get("digit")
        if not digit:
            return
        self.sounds.dtmf(digit)
        if digit == "#":  # '#' ends the number (a lone '#' dials nothing)
            self._cancel("dial")
            self._loop.call_soon(self.fire, "dial")
            return
        self.digits += digit
        self._start_timer("dial", self.settings.dial_timeout, "dial")

    def send_digit(self, event: EventData) -> None:
        digit = event.kwargs.get("digit")
        if not digit or self.call is None or str(self.call.status()) != "open":
            return
        self.call.send_digits(digit)
        self.sounds.dtmf(digit)

    def dial_digits(self, _event: EventData) -> None:
        self._place(self.digits)

    def dial_number(self, event: EventData) -> None:
        self._place(str(event.kwargs["number"]))

    def redial(self, _event: EventData) -> None:
        assert self.last_number
        self._place(self.last_number)

    def _place(self, number: str) -> None:
        self._cancel("dial")
        self.digits = ""
        self.last_number = self.peer = number
        self._connecting = asyncio.ensure_future(self._connect(number))

    async def _connect(self, number: str) -> None:
        task = asyncio.current_task()
        try:
            call = await self.device.connect({"To": number})
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # TwilioError, a lost stream: the attempt is over
            log.warning("call to %s failed: %s", number, exc)
            if self._connecting is task:
                self._connecting = None
                self.last_error = exc
                self.fire("ended")
            return
        if self._connecting is not task or self.state != "calling":
            call.disconnect()  # hung up while the invite went out
            return
        self._connecting = None
        self._attach(call)
        if str(call.status()) == "closed":  # ended before we listened
            self.fire("ended")

    # --- actions: calls --------------------------------------------------------------------
    def take_incoming(self, event: EventData) -> None:
        call = event.kwargs["call"]
        self.peer = call.parameters.get("From") or call.parameters.get("Caller")
        self._attach(call)

    def refuse_dnd(self, event: EventData) -> None:
        call = event.kwargs["call"]
        log.info("do not disturb: %s %s", self.settings.dnd, call.parameters.get("From"))
        call.reject() if self.settings.dnd == "reject" else call.ignore()

    def refuse_busy(self, event: EventData) -> None:
        call = event.kwargs["call"]
        log.info("busy: rejecting %s", call.parameters.get("From"))
        call.reject()

    def hold_waiting(self, event: EventData) -> None:
        call = event.kwargs["call"]
        self.waiting = call
        call.on("status", lambda status, c=call: self._waiting_status(c, status))
        self.sounds.beep("waiting")

    def answer(self, _event: EventData | None = None) -> None:
        assert self.call is not None
        self.call.accept()

    def reject(self, _event: EventData) -> None:
        self._release().reject()
        self._reset_call()

    def ignore(self, _event: EventData) -> None:
        self._release().ignore()
        self._reset_call()

    def hang_up(self, _event: EventData | None = None) -> None:
        # An invite on its way is not cancelled (that could strand a half-made Call in the
        # Device); _connect() hangs it up as soon as connect() returns.
        self._connecting = None
        if self.call is not None:
            self._release().disconnect()
        self._reset_call()

    def swap_to_waiting(self, _event: EventData) -> None:
        if self.call is not None:
            self._release().disconnect()
        self._reset_call()
        call, self.waiting = self.waiting, None
        self.peer = call.parameters.get("From")
        self._attach(call)
        call.accept()

    def ring_waiting(self, _event: EventData) -> None:
        """The call ended with another waiting: that one rings now."""
        if self.call is not None:
            self._release()
        self._reset_call()
        call, self.waiting = self.waiting, None
        self.peer = call.parameters.get("From")
        self._attach(call)

    def reject_waiting(self, _event: EventData) -> None:
        call, self.waiting = self.waiting, None
        call.reject()

    def ignore_waiting(self, _event: EventData) -> None:
        call, self.waiting = self.waiting, None
        call.ignore()

    def forget_call(self, _event: EventData) -> None:
        if self.call is not None:
            self._release()
        self._reset_call()

    def forget_waiting(self, event: EventData) -> None:
        if self.waiting is event.kwargs.get("call"):
            self.waiting = None

    def toggle_mute(self, _event: EventData) -> None:
        if self.call is not None:
            self.call.mute(not self.call.is_muted())
            self.muted = self.call.is_muted()

    def toggle_dnd(self, _event: EventData) -> None:
        self.dnd = not self.dnd
        log.info("do not disturb %s", "on" if self.dnd else "off")

    def louder(self, _event: EventData) -> None:
        self.volume_step = min(VOLUME_STEPS, self.volume_step + 1)
        self.sounds.volume(self.volume_step)

    def softer(self, _event: EventData) -> None:
        self.volume_step = max(0, self.volume_step - 1)
        self.sounds.volume(self.volume_step)

    def add_warning(self, event: EventData) -> None:
        self.warnings.add(str(event.kwargs.get("name")))

    def clear_warning(self, event: EventData) -> None:
        self.warnings.discard(str(event.kwargs.get("name")))

    def note_error(self, event: EventData) -> None:
        self.last_error = event.kwargs.get("error")
        log.warning("call error: %s", self.last_error)

    # --- states ----------------------------------------------------------------------------
    def enter_ringing(self, _event: EventData) -> None:
        self.rings = 0
        self._start_timer("ring", self.alerts.ring_period, "ring", repeat=True)

    def leave_ringing(self, _event: EventData) -> None:
        self._cancel("ring")

    def leave_dialing(self, _event: EventData) -> None:
        self._cancel("dial")
        self.digits = ""

    # --- after every event -------------------------------------------------------------------
    def after_event(self, event: EventData | None) -> None:
        if event is not None:
            log.info("phone: %s -> %s%s", event.event.name, self.state,
                     " (muted)" if self.muted else "")
        shown = self._display(self.state, self.muted, frozenset(self.warnings))
        self.leds.show(shown.leds)
        if shown.ring != self._ringing_sound:
            self._ringing_sound = shown.ring
            self.sounds.ring(shown.ring)
        tone = ("dial" if self.state == "dialing" and not self.digits
                else "ringback" if self.state == "calling"
                else "reconnecting" if shown.alert == "reconnecting"
                and self.alerts.reconnecting_tone else None)
        if tone != self._tone:
            self._tone = tone
            self.sounds.tone(tone)
        warnings = frozenset(self.warnings)
        if warnings - self._shown_warnings and self.alerts.warning_chirp:
            self.sounds.beep("warning")
        self._shown_warnings = warnings
        reminding = self.muted and self.state in ("talking", "reconnecting")
        if reminding and self.settings.mute_reminder > 0:
            if "mute" not in self._timers:
                self._start_timer("mute", self.settings.mute_reminder, None, repeat=True,
                                  action=lambda: self.sounds.beep("mute"))
        else:
            self._cancel("mute")
        for listener in list(self.listeners):
            try:
                listener(self)
            except Exception:
                log.exception("phone listener failed")

    # --- call plumbing ---------------------------------------------------------------------
    def _on_incoming(self, call: Any) -> None:
        self.fire("incoming", call=call)

    def _attach(self, call: Any) -> None:
        """Make ``call`` the phone's call: its events drive the machine from now on."""
        self.call = call
        self.muted = call.is_muted()

        def mine(handler: Callable[..., None]) -> Callable[..., None]:
            def guarded(*args: Any) -> None:
                if self.call is call:
                    handler(*args)
            return guarded

        handlers = {
            "accept": mine(lambda *_: self.fire("answered")),
            "cancel": mine(lambda *_: self.fire("ended")),
            "disconnect": mine(lambda *_: self.fire("ended")),
            "reject": mine(lambda *_: self.fire("ended")),
            "status": mine(lambda status: self.fire("ended") if str(status) == "closed"
                           else None),
            "reconnecting": mine(lambda *_: self.fire("reconnecting")),
            "reconnected": mine(lambda *_: self.fire("reconnected")),
            "warning": mine(lambda name, *_: self.fire("warning", name=name)),
            "warning-cleared": mine(lambda name, *_: self.fire("warning_cleared", name=name)),
            "error": mine(lambda error, *_: self.fire("failed", error=error)),
            "mute": mine(self._on_mute),
        }
        for name, handler in handlers.items():
            call.on(name, handler)
        self._handlers = (call, handlers)

    def _on_mute(self, muted: bool, *_: Any) -> None:
        if self.muted != bool(muted):
            self.muted = bool(muted)
            self.after_event(None)

    def _release(self) -> Any:
        """Detach the current call (so our own hang-up does not come back as an event)."""
        call = self.call
        attached = self._handlers
        if attached is not None and attached[0] is call:
            for name, handler in attached[1].items():
                call.remove_listener(name, handler)
            self._handlers = None
        self.call = None
        return call

    def _reset_call(self) -> None:
        self.call = None
        self.muted = False
        self.warnings.clear()
        if self.waiting is None:
            self.peer = None

    def _waiting_status(self, call: Any, status: Any) -> None:
        if str(status) == "closed" and self.waiting is call:
            self.fire("waiting_ended", call=call)

    # --- timers ----------------------------------------------------------------------------
    def _start_timer(self, name: str, delay: float, trigger: str | None, *,
                     repeat: bool = False, action: Callable[[], None] | None = None) -> None:
        self._cancel(name)

        def fire() -> None:
            if repeat:
                self._timers[name] = self._loop.call_later(delay, fire)
            else:
                self._timers.pop(name, None)
            if action is not None:
                action()
            if name == "ring":
                self.rings += 1
            if trigger is not None:
                self.fire(trigger)

        self._timers[name] = self._loop.call_later(delay, fire)

    def _cancel(self, name: str) -> None:
        timer = self._timers.pop(name, None)
        if timer is not None:
            timer.cancel()

    # --- status and shutdown ---------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        call = self.call
        return {
            "state": self.state, "muted": self.muted, "dnd": self.dnd,
            "peer": self.peer, "warnings": sorted(self.warnings),
            "call_sid": getattr(call, "call_sid", None) if call is not None else None,
            "codec": getattr(call, "codec", "") if call is not None else "",
            "waiting": (self.waiting.parameters.get("From") if self.waiting is not None
                        else None),
            "volume": self.volume_step, "last_number": self.last_number,
        }

    @property
    def in_call(self) -> bool:
        return self.state in ("ringing", *ACTIVE)

    def close(self) -> None:
        """Hang up whatever is up, stop timers, sounds and LEDs."""
        self.device.remove_listener("incoming", self._on_incoming)
        if self.call is not None or self._connecting is not None:
            if self.state == "ringing" and self.call is not None:
                self._release().ignore()
            self.hang_up()
        if self.waiting is not None:
            self.waiting.ignore()
            self.waiting = None
        for name in list(self._timers):
            self._cancel(name)
        self.sounds.ring(False)
        self.sounds.tone(None)
        self.leds.show({})
