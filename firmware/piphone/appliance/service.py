"""The appliance as a service: builds the phone from its config, one asyncio loop, systemd.

- ``READY=1`` once registered, ``STATUS=`` a human line on every change ("registered as
  alice", "talking to +15551234567, MOS 4.3"), ``WATCHDOG=1`` from the loop at half of
  ``WATCHDOG_USEC`` (so a stuck loop gets the service restarted), through ``sdnotify``.
- SIGTERM/SIGINT: hang up, LEDs off, exit 0. SIGHUP: reload the config; a valid new config
  is applied between calls (a change during a call waits for its end); a bad one is logged and
  the running config kept. The panel, audio and call log are built again; the Device is kept
  and takes the new account settings with ``update_options`` (the SDK's way: it stays
  registered, and moves only if the signaling URL changed), unless the identity changed.
- The open call's connect token is kept under the runtime directory (kept_call.py); a run that
  finds one at start (the last one crashed, or the watchdog killed it) resumes that call.
- SIGUSR1: restart keeping the call (an upgrade): LEDs off and audio closed, but no hang-up
  and the kept call left in place; exit RESTART_KEEPING_CALL (75), which the unit restarts
  (RestartForceExitStatus), and the new run resumes the call within the exchange's grace.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import signal
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import paths
from ..backoff import Backoff
from ..errors import PiphoneError
from ..systemd import Notifier, feed_watchdog, watchdog_interval
from ..voice import Call, CallDirection, Device, DeviceState, ice
from ..voice.device_options import DeviceOptions
from ..voice.quality import Sample
from . import commands, network, offline
from . import config as config_mod
from .audio import ApplianceAudio
from .config import ApplianceConfig
from .control import ControlServer
from .display import display
from .kept_call import CallKeeper, runtime_directory
from .memory import Memory
from .phone import Phone
from .ports import Sounds
from .status import status_line
from .table import ACTIVE, HOLDING
from .twilio_transfer import transferer_for
from .voicemail import PhoneMailbox

if TYPE_CHECKING:
    from ..calllog import CallLog
    from ..panel.inputs import Inputs
    from ..panel.leds import Leds

log = logging.getLogger(__name__)

REGISTER_RETRY = 5.0  # seconds between registration attempts while the exchange is away
RESTART_KEEPING_CALL = 75  # EX_TEMPFAIL: the unit's RestartForceExitStatus (SIGUSR1)
BETWEEN_CALLS = ("idle", "dialing")


@dataclass
class Followed:
    """What the service did about one call (kept here, never set on the Call)."""

    logged: bool = False  # in the call log
    sampled: bool = False  # its quality samples feed the status line


class Service:
    """Everything one config builds: audio, Device, panel (pins, inputs, LEDs) and the Phone."""

    def __init__(self, cfg: ApplianceConfig, *, notifier: Notifier | None = None,
                 pin_factory: Any = None,
                 loader: Callable[[Path], ApplianceConfig] = config_mod.load,
                 control_path: Path | None = None) -> None:
        self.cfg = cfg
        self.control_path = control_path  # the control socket; None: none
        self.notifier = notifier or Notifier()
        self.pin_factory = pin_factory
        self._loader = loader
        self.device: Device | None = None
        self.phone: Phone[Call] | None = None
        self.inputs: Inputs | None = None
        self.leds: Leds | None = None
        self.sounds: Sounds | None = None
        self.registered = asyncio.Event()
        self.audio: ApplianceAudio | None = None
        self.memory: Memory | None = None  # the call log and the state file
        self.mailbox: PhoneMailbox | None = None  # voicemail at the exchange, one per Device
        self._followed: weakref.WeakKeyDictionary[Call, Followed] = weakref.WeakKeyDictionary()
        self._stop = asyncio.Event()
        self._reload_wanted = asyncio.Event()
        self._pending: ApplianceConfig | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._register_task: asyncio.Task[None] | None = None
        self._ca_file: str | None = None  # of the Device's ssl_context
        self.traversal: ice.NetworkTraversal | None = None  # with [account] network_traversal
        self._mos: float | None = None
        directory = runtime_directory()
        self.keeper = CallKeeper(directory) if directory.is_dir() else None
        if self.keeper is None:
            log.info("no runtime directory %s: a call will not survive a restart", directory)
        self.offline_reason: str | None = offline.STARTING  # None while registered
        self.offline_detail = ""  # the error behind offline_reason, in words
        self._failure_seen: object = None  # the Device's connection failure when it was noted
        self._keep_call_on_exit = False  # SIGUSR1: restart keeping the call

    # --- life cycle ------------------------------------------------------------------------
    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        handlers = {signal.SIGTERM: self.stop, signal.SIGINT: self.stop,
                    signal.SIGHUP: self.reload, signal.SIGUSR1: self.restart_keeping_call}
        for sig, handler in handlers.items():
            loop.add_signal_handler(sig, handler)
        interval = watchdog_interval()
        if interval is not None:
            self._tasks.append(asyncio.ensure_future(feed_watchdog(self.notifier, interval)))
        control = ControlServer(self.control_path, self.control) if self.control_path else None
        try:
            if control is not None:
                try:
                    await control.start()
                except OSError as exc:  # e.g. run by hand without /run/piphone: no control
                    log.warning("no control socket at %s: %s", control.path, exc)
                    control = None
            while True:
                await self.start()
                await self._until_stop_or_reload()
                if self._stop.is_set():
                    break
                self.notifier.send("RELOADING=1")
                new = self._pending or self.cfg
                await self.close(keep_device=new.account.identity == self.cfg.account.identity)
                self.cfg, self._pending = new, None
                log.info("config reloaded from %s", self.cfg.path)
        finally:
            self.notifier.send("STOPPING=1")
            if control is not None:
                await control.close()
            await self.close(keep_call=self._keep_call_on_exit)
            for task in self._tasks:
                task.cancel()
            for sig in handlers:
                loop.remove_signal_handler(sig)
        return RESTART_KEEPING_CALL if self._keep_call_on_exit else 0

    async def start(self) -> None:
        """Build the phone from ``self.cfg`` (with the Device kept by a reload, if any);
        returns once the first registration was tried (it keeps trying in the background if
        the exchange is not there yet)."""
        from ..panel.inputs import Inputs
        from ..panel.leds import Leds

        cfg = self.cfg
        loop = asyncio.get_running_loop()
        self.registered = asyncio.Event()
        self.audio = ApplianceAudio(cfg.audio, cfg.alerts, self._audio_condition)
        self.sounds = self.audio.sounds
        account = cfg.account
        # as `piphone check --network` builds it; a reload with the same CA keeps the context
        # (a new one would make the Device open a new stream for nothing)
        same_ca = self.device if account.ca_file and self._ca_file == account.ca_file else None
        options = network.device_network(
            account, ssl_context=same_ca.options.ssl_context if same_ca is not None else None)
        ice_servers = options["ice_servers"]
        options["allow_incoming_while_busy"] = True  # the phone itself refuses as busy
        self._ca_file = account.ca_file
        if self.audio.source is not None:
            options.update(audio_source=self.audio.source, audio_sink=self.audio.sink,
                           echo_stats=self.audio.echo_figures)
        if cfg.account.mints_tokens:  # a token that expired while cut off is renewed first

            async def fresh_token() -> str:
                return cfg.account.access_token()

            options["token_source"] = fresh_token
        device = self._device_with(options)
        if account.network_traversal:
            assert account.account_sid and account.api_key_sid and account.api_key_secret
            self.traversal = ice.NetworkTraversal(
                device, ice_servers, account_sid=account.account_sid,
                api_key_sid=account.api_key_sid, api_key_secret=account.api_key_secret)
            self.traversal.start()
        self.memory = memory = Memory(cfg.phone, cfg.alerts)
        # read before the phone's first change, which clears the file of a phone without a call
        kept = self.keeper.load() if self.keeper is not None else None
        self.leds = Leds(cfg.pins, pin_factory=self.pin_factory)
        self.phone = phone = Phone(device, self.leds, self.sounds, cfg.phone, cfg.alerts,
                                   off_hook=lambda: bool(self.inputs is not None
                                                         and self.inputs.off_hook),
                                   display=functools.partial(display, patterns=cfg.leds),
                                   route=self.audio, saved=memory.saved)
        phone.listeners.append(self._on_phone_change)
        phone.set_online(self._is_registered(device))
        phone.speed_numbers = cfg.contacts.speed_dial()
        phone.transferer = transferer_for(cfg.account)
        memory.attach(phone)  # redial, call-back and missed calls outlive a restart
        assert self.mailbox is not None
        self.mailbox.attach(phone)
        self.inputs = Inputs(cfg.pins, phone.handle, loop=loop, pin_factory=self.pin_factory)
        if self.inputs.off_hook:  # lifted before we started: that is dialing
            phone.fire("off_hook")
        if kept is not None and self.keeper is not None:
            self._tasks += self.keeper.resume(kept, phone.fire, device, lifted=self.inputs.off_hook)
        if device.state is DeviceState.REGISTERED:  # kept by a reload
            self._registered()
        elif self._register_task is None or self._register_task.done():
            tried = asyncio.Event()
            self._register_task = asyncio.ensure_future(self._register(device, tried))
            await tried.wait()

    def _device_with(self, options: dict[str, Any]) -> Device:
        """The Device kept by a reload, updated to ``options``, or a new one."""
        token = self.cfg.account.access_token()
        if self.device is not None:
            defaults = DeviceOptions().changed(options)  # every option the config implies
            self.device.update_options(**{f.name: getattr(defaults, f.name)
                                          for f in dataclasses.fields(defaults)})
            self.device.update_token(token)
            log.info("reload: the device keeps its registration with the new settings")
            return self.device
        self.device = device = Device(token, **options)
        # once per Device (a reload keeps it); before the phone's handler: busy refusals are
        # logged too
        device.on("incoming", self._log_call)
        device.on("tokenWillExpire", self._refresh_token)
        device.on("registered", lambda *_: self._registered())
        device.on("unregistered", lambda *_: self._unregistered())
        device.on("error", self._on_device_error)
        state = Path(self.cfg.phone.state_file).parent if self.cfg.phone.state_file else None
        self.mailbox = PhoneMailbox.of(
            device, lambda samples: self.audio.play_message(samples) if self.audio else None,
            self.cfg.account, state if state is not None and state.is_dir() else None)
        return device

    async def close(self, keep_device: bool = False, keep_call: bool = False) -> None:
        """Hang up, LEDs off, release pins and devices; idempotent. ``keep_device``: all but
        the Device (and its registration), for a reload to update. ``keep_call``: no hang-up,
        the kept call left for the next run, the Device left to the process's exit (its
        sockets close, the exchange keeps the call for its grace)."""
        keep_device = keep_device or keep_call
        if self._register_task is not None and not keep_device:
            self._register_task.cancel()
            self._register_task = None
        if self.traversal is not None:
            self.traversal.close()
            self.traversal = None
        if self.phone is not None:
            self.phone.close(hang_up=not keep_call)  # else a stopped phone keeps no call
            self.phone = None
            if self.mailbox is not None:
                self.mailbox.phone = None  # the next run's phone is attached at its start
            if self.keeper is not None and not keep_call:
                self.keeper.clear()
        if self.inputs is not None:
            self.inputs.close()
            self.inputs = None
        if self.leds is not None:
            self.leds.close()
            self.leds = None
        if self.device is not None and not keep_device:
            device, self.device = self.device, None
            if self.mailbox is not None:
                self.mailbox.close()
            try:
                await asyncio.wait_for(device.destroy(), 10)
            except Exception as exc:  # a device that will not close must not stop shutdown
                log.warning("device did not close cleanly: %s", exc)
        if self.audio is not None:
            audio, self.audio = self.audio, None
            await audio.close()  # joins the audio threads off the loop
        if self.memory is not None:
            self.memory.close()
            self.memory = None

    def stop(self) -> None:
        log.info("stopping")
        self._stop.set()

    def restart_keeping_call(self) -> None:
        """SIGUSR1: end this run without hanging up, for the next to resume the call."""
        log.info("restarting; a call in progress is kept for the next run")
        self._keep_call_on_exit = True
        self._stop.set()

    def reload(self) -> None:
        """SIGHUP: read the config now; apply it when the phone is between calls."""
        path = self.cfg.path or paths.CONFIG
        try:
            new = self._loader(path)
        except PiphoneError as exc:
            log.error("reload refused, keeping the running config: %s", exc)
            self.notifier.set_status(f"config not reloaded: {exc}")
            return
        if new == self.cfg:
            log.info("reload: %s has not changed", path)
            return
        self._pending = new
        if self.phone is not None and self.phone.state not in BETWEEN_CALLS:
            log.info("reload: the new config waits for the end of the call")
            return
        self._reload_wanted.set()

    async def _until_stop_or_reload(self) -> None:
        self._reload_wanted.clear()
        if self._pending is not None and self.phone is not None and (
                self.phone.state in BETWEEN_CALLS):
            return
        waiters = [asyncio.ensure_future(self._stop.wait()),
                   asyncio.ensure_future(self._reload_wanted.wait())]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    # --- pieces ----------------------------------------------------------------------------
    def _followed_call(self, call: Call) -> Followed:
        followed = self._followed.get(call)
        if followed is None:
            followed = self._followed[call] = Followed()
        return followed

    def _log_call(self, call: Call) -> None:
        self._followed_call(call).logged = True
        if self.memory is not None:
            incoming = call.direction is CallDirection.INCOMING
            peer = call.parameters.get("From") if incoming else call.custom_parameters.get("To")
            self.memory.log_call(call, self.cfg.account.identity,
                                 name=self.cfg.contacts.name_of(peer))

    def _audio_condition(self, lost: bool) -> None:
        """The headset went away or came back: a warning on the call, as the SDK's quality
        warnings are (the Call's set_condition raises or clears it)."""
        call = self.phone.call if self.phone is not None else None
        if call is not None:
            call.set_condition("audio-device-lost", lost)

    async def _register(self, device: Device, tried: asyncio.Event) -> None:
        """Register; while the exchange is away, say so and try again."""
        retry = Backoff.steady(REGISTER_RETRY)
        while not self._stop.is_set():
            try:
                await device.register()
                return
            except Exception as exc:
                self._note_offline(exc)
                tried.set()
                self.notifier.set_status(f"not registered ({exc}); retrying")
                log.warning("registration failed: %s; retrying in %.0f s", exc,
                            REGISTER_RETRY)
            finally:
                tried.set()
            await asyncio.sleep(retry.next())

    def _note_offline(self, error: object) -> None:
        """Why registration failed (an error event, or register() raising)."""
        self.offline_reason, self.offline_detail = offline.reason_of(error), offline.in_words(error)
        self._failure_seen = self.device.last_failure if self.device is not None else None

    def offline_now(self) -> tuple[str | None, str]:
        """Why the phone is not registered now, and the error in words; (None, "") when it
        is. A connection attempt that failed since the last error noted is the newer news
        (the Device retries by itself and reports no event for a network that is away)."""
        device = self.device
        if device is None or self._is_registered(device):
            return None, ""
        failure = device.last_failure
        if failure is not None and failure is not self._failure_seen:
            return offline.reason_of(failure), offline.in_words(failure)
        return self.offline_reason or offline.STARTING, self.offline_detail

    def _on_device_error(self, error: object, call: object = None) -> None:
        if call is None and self.device is not None and not self._is_registered(self.device):
            self._note_offline(error)
            self._show_status()

    def _unregistered(self) -> None:
        if self.offline_reason is None:
            self.offline_reason, self.offline_detail = offline.STARTING, ""
        if self.phone is not None:
            self.phone.set_online(False)
        self._show_status()

    @property
    def call_log(self) -> CallLog | None:
        return self.memory.call_log if self.memory is not None else None

    def _registered(self) -> None:
        self.offline_reason, self.offline_detail = None, ""
        self._failure_seen = self.device.last_failure if self.device is not None else None
        if self.phone is not None:
            self.phone.set_online(True)
        if not self.registered.is_set():
            self.registered.set()
            self.notifier.send("READY=1")
        self._show_status()

    def _refresh_token(self, device: Device) -> None:
        if self.cfg.account.mints_tokens:
            device.update_token(self.cfg.account.access_token())
        else:
            log.warning("the access token expires soon and this config has no API key to "
                        "mint another")

    def _keep_call(self, phone: Phone[Call]) -> None:
        if self.keeper is None:
            return
        calls = []
        if phone.call is not None and phone.state in ("talking", *HOLDING):
            calls.append((phone.call, phone.peer, phone.state in HOLDING))
        if phone.lines.held is not None:
            calls.append((phone.lines.held.call, phone.lines.held.peer, True))
        self.keeper.follow(calls, off_hook=self.inputs is not None and self.inputs.off_hook,
                           has_call=phone.state in ACTIVE)

    def _on_phone_change(self, phone: Phone[Call]) -> None:
        self._keep_call(phone)
        if self.memory is not None:
            self.memory.keep_settings(phone)
        call = phone.call
        followed = self._followed_call(call) if call is not None else None
        if call is not None and followed is not None and not followed.sampled:
            followed.sampled = True
            call.on("sample", self._on_sample)
            if self.audio is not None and not self.audio.present:
                self._audio_condition(True)  # a call begun while the headset is away
            if self.call_log is not None and not followed.logged:
                self._log_call(call)  # an outgoing call (incoming ones are logged on arrival)
        if call is None:
            self._mos = None
        self._show_status()
        if self._pending is not None and phone.state in BETWEEN_CALLS:
            self._reload_wanted.set()  # the call that held the reload is over

    def _on_sample(self, sample: Sample) -> None:
        if sample.mos is not None:
            self._mos = sample.mos
            self._show_status()

    # --- the control socket ----------------------------------------------------------------
    def control(self, request: dict[str, Any]) -> dict[str, Any]:
        """A checked request from appliance/control.py -> its reply fields (commands.py)."""
        return commands.answer(self, request)

    def status(self) -> dict[str, Any]:
        phone, device = self.phone, self.device
        assert phone is not None and device is not None
        return {"status": self.status_line(), "identity": self.cfg.account.identity,
                "registered": self._is_registered(device),
                **dict(zip(("offline_reason", "offline_detail"), self.offline_now(),
                           strict=True)),
                "call_log": self.call_log.path if self.call_log is not None else None,
                "mos": self._mos, **phone.status(),
                **(self.mailbox.status() if self.mailbox is not None else {}),
                "peer_name": self.cfg.contacts.name_of(phone.peer)}

    @staticmethod
    def _is_registered(device: Device) -> bool:
        return device.state is DeviceState.REGISTERED

    def _show_status(self) -> None:
        self.notifier.set_status(self.status_line())

    def status_line(self) -> str:
        phone, device = self.phone, self.device
        if phone is None or device is None:
            return "starting"
        return status_line(phone, identity=self.cfg.account.identity,
                           registered=self._is_registered(device),
                           offline_reason=self.offline_now()[0], mos=self._mos,
                           label=self.cfg.contacts.labelled)


def main(config_path: Path) -> int:
    """``piphone run --config PATH``: a bad config raises ConfigError before anything starts."""
    from .control import socket_path

    cfg = config_mod.load(config_path)
    logging.getLogger("transitions").setLevel(logging.WARNING)  # it logs every callback
    return asyncio.run(Service(cfg, control_path=socket_path()).run())
