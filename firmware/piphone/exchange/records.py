"""The exchange's call log: one row per call (calllog.py), from set-up to end, and the
feedback clients post to the exchange's event gateway (events.py)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from ..calllog import CallLog, CallRecord, outcome_of

if TYPE_CHECKING:
    from .calls import ExchangeCall


class CallRecords:
    def __init__(self, log: CallLog) -> None:
        self.log = log
        self._ids: dict[str, int] = {}  # exchange CallSid -> row id, while the call goes on

    def started(self, call: ExchangeCall, caller: str | None, temp_id: str) -> None:
        record = CallRecord(site="exchange", direction="OUTGOING", started=time.time(),
                            identity=caller, peer=call.route.to, call_sid=call.sid)
        self._ids[call.sid] = self.log.start(record, temp_id)

    def forked(self, call: ExchangeCall, child_sid: str) -> None:
        if call.sid in self._ids:
            self.log.alias(self._ids[call.sid], child_sid)

    def answered(self, call: ExchangeCall) -> None:
        if call.sid in self._ids:
            self.log.update(self._ids[call.sid], answered=time.time())

    def ended(self, call: ExchangeCall, *, answered: bool, error_code: int | None,
              error: str | None, caller_hung_up: bool) -> None:
        call_id = self._ids.pop(call.sid, None)
        if call_id is None:
            return
        caller = call.caller.media.codec if call.caller is not None else None
        self.log.update(call_id, ended=time.time(), codec=caller or None, error=error,
                        outcome=outcome_of(answered=answered, error_code=error_code,
                                           cancelled=caller_hung_up))
