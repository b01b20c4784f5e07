"""What the control socket's requests do (``piphone hold``, ``piphone call bob``...): a checked
request (control.py) -> the phone's action -> the reply's fields. Its own module so that each
new command is a row here, not a line in the service."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from .config import ApplianceConfig
from .control import ControlError
from .phone import Phone
from .voicemail import PhoneMailbox


class Answerer(Protocol):
    """What a request needs of the service (service.py's Service)."""

    @property
    def phone(self) -> Phone[Any] | None: ...

    @property
    def cfg(self) -> ApplianceConfig: ...

    def status(self) -> dict[str, Any]: ...

    @property
    def mailbox(self) -> PhoneMailbox | None: ...


def answer(service: Answerer, request: dict[str, Any]) -> dict[str, Any]:
    """A checked request -> its reply fields; ControlError when it does nothing now."""
    phone = service.phone
    if phone is None:
        raise ControlError("the phone is (re)starting; try again")
    cmd = request["cmd"]
    if cmd == "status":
        return service.status()
    if cmd == "seen":
        phone.fire("seen")
        return {"state": phone.state, "missed": phone.missed}
    if cmd == "voicemail":
        return voicemail(service, phone, request.get("action", "list"), request.get("number"))
    actions: dict[str, Callable[[], bool]] = {
        "call": lambda: phone.call_number(dialable(service.cfg, request["number"])),
        "hangup": phone.hangup_call, "answer": phone.answer_call, "mute": phone.mute_call,
        "hold": phone.hold_call, "swap": phone.swap_call,
        "transfer": lambda: phone.transfer_call(
            None if request.get("complete") else dialable(service.cfg, request["number"]),
            bool(request.get("attended"))),
        "conference": phone.conference_call,
        "speaker": lambda: phone.speaker_call(request.get("on"))}
    done = actions[cmd]()
    if not done:
        raise ControlError(f"{cmd} does nothing while the phone is {phone.state}"
                           + (" (no [audio] handsfree_device)" if cmd == "speaker"
                              and not phone.route.handsfree_available else ""))
    return {"state": phone.state, "handsfree": phone.handsfree}


def voicemail(service: Answerer, phone: Phone[Any], action: str, number: int | None
              ) -> dict[str, Any]:
    """``piphone voicemail [play|next|stop|delete N]``: the messages, as the keys do."""
    mailbox = service.mailbox
    if mailbox is None:
        raise ControlError("no mailbox: the phone is (re)starting")
    if action == "delete":
        assert number is not None
        try:
            mailbox.delete(number)
        except IndexError as exc:
            raise ControlError(str(exc)) from None
    elif action != "list":
        trigger = {"play": "press_voicemail", "next": "press_voicemail",
                   "stop": "press_reject"}[action]
        if action != "play" and phone.state != "voicemail" or not phone.fire(trigger):
            raise ControlError(f"voicemail {action} does nothing while the phone is "
                               f"{phone.state}" + (" (no messages)" if not mailbox.messages
                                                   else ""))
    return {"state": phone.state, **mailbox.status(), "messages": mailbox.listed(),
            "mailbox_error": mailbox.last_error}


def dialable(cfg: ApplianceConfig, number: str) -> str:
    """A contact's name (any case) dials its number; anything else is dialled as it is."""
    wanted = number.casefold()
    return next((c.number for c in cfg.contacts if c.name.casefold() == wanted), number)
