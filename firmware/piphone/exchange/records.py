"""The exchange's call log: one row per call (calllog.py), from set-up to end, with the
quality of each leg as the exchange receives it, and the feedback clients post to the
exchange's event gateway (events.py).

The call layer tells it what happened in plain values (CallSids, identities, a codec, the
outcome): it knows nothing of calls, legs or sessions. Each answered leg gets a voice.quality
monitor that reads the leg's counters once a second through the callable it is given (no level
meters, no volume events): its MOS values and warnings go into the row, the warnings named
after the party (``alice:high-packet-loss``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from ..calllog import CallLog, CallRecord, outcome_of
from ..voice.quality import Counters, QualityMonitor, QualitySettings

log = logging.getLogger(__name__)
LEG_QUALITY = QualitySettings(volume_events=False)

# The counters of a leg's current media (a reinvite replaces it: counters then restart).
ReadCounters = Callable[[], Awaitable[Counters | None]]


class CallRecords:
    def __init__(self, log: CallLog) -> None:
        self.log = log
        self._ids: dict[str, int] = {}  # exchange CallSid -> row id, while the call goes on
        self._monitors: dict[str, list[tuple[str, QualityMonitor]]] = {}

    @classmethod
    def open(cls, path: str | None) -> CallRecords:
        """The exchange's call log at ``path`` (exchange.toml's call_log), claimed for this
        exchange (calllog.py); None: in memory."""
        return cls(CallLog(path or ":memory:", owner="exchange"))

    def started(self, call_sid: str, *, caller: str | None, to: str, temp_id: str) -> None:
        record = CallRecord(site="exchange", direction="OUTGOING", started=time.time(),
                            identity=caller, peer=to, call_sid=call_sid)
        self._ids[call_sid] = self.log.start(record, temp_id)

    def forked(self, call_sid: str, child_sid: str) -> None:
        if call_sid in self._ids:
            self.log.alias(self._ids[call_sid], child_sid)

    def answered(self, call_sid: str, parties: Sequence[tuple[str, ReadCounters]]) -> None:
        """The call is answered; ``parties``: (name, its leg's counters) of each party."""
        if call_sid not in self._ids:
            return
        self.log.update(self._ids[call_sid], answered=time.time())
        monitors = self._monitors.setdefault(call_sid, [])
        for party, read_counters in parties:
            monitor = _leg_monitor(party, read_counters)
            monitor.start()
            monitors.append((party, monitor))

    def quality_of(self, call_sid: str) -> list[tuple[str, QualityMonitor]]:
        """(party, monitor) of each leg of a call going on."""
        return list(self._monitors.get(call_sid, ()))

    def ended(self, call_sid: str, *, codec: str | None, answered: bool,
              error_code: int | None, error: str | None, caller_hung_up: bool) -> None:
        monitors = self._monitors.pop(call_sid, [])
        for _, monitor in monitors:
            monitor.stop()
        call_id = self._ids.pop(call_sid, None)
        if call_id is None:
            return
        mos = [v for _, m in monitors for v in m.mos_values]
        self.log.update(call_id, ended=time.time(), codec=codec or None, error=error,
                        outcome=outcome_of(answered=answered, error_code=error_code,
                                           cancelled=caller_hung_up),
                        mos_average=sum(mos) / len(mos) if mos else None,
                        mos_minimum=min(mos) if mos else None,
                        warnings=[f"{party}:{name}" for party, m in monitors for name in m.raised])

    def close(self) -> None:
        self.log.close()  # and its claim on the file (calllog.py)


def _leg_monitor(party: str, read_counters: ReadCounters) -> QualityMonitor:
    def warned(event: str, *args: object) -> None:
        if event in ("warning", "warning-cleared"):
            log.info("leg %s: %s %s", party, event, args[0])

    return QualityMonitor(LEG_QUALITY, read_counters=read_counters,
                          meters=lambda: None, is_muted=lambda: False, emit=warned)
