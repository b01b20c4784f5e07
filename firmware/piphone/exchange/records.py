"""The exchange's call log: one row per call (calllog.py), from set-up to end, with the
quality of each leg as the exchange receives it, and the feedback clients post to the
exchange's event gateway (events.py).

Each answered leg gets a voice.quality monitor on its media session (one aiortc getStats a
second; no level meters, no volume events): its MOS values and warnings go into the row, the
warnings named after the party (``alice:high-packet-loss``).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from ..calllog import CallLog, CallRecord, outcome_of
from ..voice.quality import QualityMonitor, QualitySettings, media_counters

if TYPE_CHECKING:
    from .legs import CallLeg, ExchangeCall

log = logging.getLogger(__name__)
LEG_QUALITY = QualitySettings(volume_events=False)


class CallRecords:
    def __init__(self, log: CallLog) -> None:
        self.log = log
        self._ids: dict[str, int] = {}  # exchange CallSid -> row id, while the call goes on
        self._monitors: dict[str, list[tuple[str, QualityMonitor]]] = {}

    def started(self, call: ExchangeCall, caller: str | None, temp_id: str) -> None:
        record = CallRecord(site="exchange", direction="OUTGOING", started=time.time(),
                            identity=caller, peer=call.route.to, call_sid=call.sid)
        self._ids[call.sid] = self.log.start(record, temp_id)

    def forked(self, call: ExchangeCall, child_sid: str) -> None:
        if call.sid in self._ids:
            self.log.alias(self._ids[call.sid], child_sid)

    def answered(self, call: ExchangeCall) -> None:
        if call.sid not in self._ids:
            return
        self.log.update(self._ids[call.sid], answered=time.time())
        monitors = self._monitors.setdefault(call.sid, [])
        for leg in (call.caller, call.callee):
            if leg is not None:
                monitor = _leg_monitor(leg)
                monitor.start()
                monitors.append((_party(leg), monitor))

    def quality_of(self, call_sid: str) -> list[tuple[str, QualityMonitor]]:
        """(party, monitor) of each leg of a call going on."""
        return list(self._monitors.get(call_sid, ()))

    def ended(self, call: ExchangeCall, *, answered: bool, error_code: int | None,
              error: str | None, caller_hung_up: bool) -> None:
        monitors = self._monitors.pop(call.sid, [])
        for _, monitor in monitors:
            monitor.stop()
        call_id = self._ids.pop(call.sid, None)
        if call_id is None:
            return
        mos = [v for _, m in monitors for v in m.mos_values]
        try:
            caller = call.caller.media.codec if call.caller is not None else None
        except Exception:  # aiortc could not give the negotiated codec back: file the rest
            log.exception("call %s: codec unreadable", call.sid)
            caller = None
        self.log.update(call_id, ended=time.time(), codec=caller or None, error=error,
                        outcome=outcome_of(answered=answered, error_code=error_code,
                                           cancelled=caller_hung_up),
                        mos_average=sum(mos) / len(mos) if mos else None,
                        mos_minimum=min(mos) if mos else None,
                        warnings=[f"{party}:{name}" for party, m in monitors for name in m.raised])


def _party(leg: CallLeg) -> str:
    return leg.identity or leg.id


def _leg_monitor(leg: CallLeg) -> QualityMonitor:
    def warned(event: str, *args: object) -> None:
        if event in ("warning", "warning-cleared"):
            log.info("leg %s: %s %s", _party(leg), event, args[0])

    # The leg's current media session: a reinvite replaces it (counters then restart).
    return QualityMonitor(LEG_QUALITY, read_counters=lambda: media_counters(leg.media.media),
                          meters=lambda: None, is_muted=lambda: False, emit=warned)
