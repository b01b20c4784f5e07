"""The call log: every call with its outcome and quality summary, in SQLite (stdlib sqlite3).

Used on the phone (``track(log, call)`` follows a voice Call) and at the exchange
(exchange/records.py), so it lives at the top of the package: the exchange may not import
appliance/. ``piphone calls`` prints it (the phone's is at ``paths.CALL_LOG``). A row is
written when the call starts and updated as it is answered and ends, so feedback given during
or after the call always finds it.

Outcomes: ``completed`` (answered, then hung up), ``cancelled`` (given up before answer, or
ignored here), ``rejected``, ``no-answer``, ``busy``, ``failed`` (an error ended it); ``None``
while the call goes on.

Writes are single small transactions on the event loop: milliseconds, at call start and end
only. A file database uses WAL, so ``piphone calls`` reads while a call is written.

An exchange claims its call log (``owner``): a second exchange given the same file is refused
at start with the file and the process that holds it, not left to fail on SQLite's locks.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ConfigError

if TYPE_CHECKING:
    from .voice import Call

SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    id INTEGER PRIMARY KEY,
    site TEXT NOT NULL,            -- 'device' or 'exchange'
    direction TEXT NOT NULL,       -- INCOMING / OUTGOING (the exchange: the caller's view)
    identity TEXT,                 -- whose log: the device's identity, or the caller's
    peer TEXT,                     -- the other party: To or From
    call_sid TEXT,
    started REAL NOT NULL,         -- seconds since the epoch
    answered REAL,
    ended REAL,
    outcome TEXT,
    error TEXT,                    -- 'code message' of the error that ended it
    codec TEXT,
    mos_average REAL,
    mos_minimum REAL,
    warnings TEXT NOT NULL DEFAULT '[]',  -- JSON list of warning names raised
    name TEXT                      -- the peer's name in the phone's contacts, if any
);
CREATE TABLE IF NOT EXISTS call_ids (   -- every id a call is known by (TJS..., child CallSids)
    sid TEXT PRIMARY KEY,
    call_id INTEGER NOT NULL REFERENCES calls(id)
);
CREATE TABLE IF NOT EXISTS marks (      -- the phone's bookmarks in its log
    name TEXT PRIMARY KEY,         -- 'missed_seen': missed calls up to this call id are seen
    value INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS feedback (
    call_id INTEGER NOT NULL REFERENCES calls(id),
    party TEXT,                    -- identity that gave it
    score INTEGER,                 -- 1-5, NULL: declined
    issue TEXT,
    at REAL NOT NULL
);
"""

_ERROR_OUTCOMES = {31603: "rejected", 31486: "busy", 31480: "no-answer"}
# A missed call: one that rang here and ended unanswered, without being rejected (by the reject
# key, do-not-disturb or as busy): the caller gave up, nobody answered, or it was ignored.
_MISSED = ("site = 'device' AND direction = 'INCOMING' AND answered IS NULL "
           "AND outcome IS NOT NULL AND outcome NOT IN ('rejected', 'busy')")


def outcome_of(*, answered: bool, error_code: int | None = None,
               cancelled: bool = False) -> str:
    """How a call ended, from whether it was answered and the error that ended it."""
    if error_code is not None:
        return "failed" if answered else _ERROR_OUTCOMES.get(error_code, "failed")
    if answered:
        return "completed"
    return "cancelled" if cancelled else "failed"


@dataclass
class CallRecord:
    site: str
    direction: str
    started: float
    identity: str | None = None
    peer: str | None = None
    call_sid: str | None = None
    answered: float | None = None
    ended: float | None = None
    outcome: str | None = None
    error: str | None = None
    codec: str | None = None
    mos_average: float | None = None
    mos_minimum: float | None = None
    warnings: list[str] = field(default_factory=list)
    feedback: list[dict[str, Any]] = field(default_factory=list)
    name: str | None = None
    id: int | None = None

    @property
    def duration(self) -> float | None:
        """Seconds from answer to end (None if never answered)."""
        if self.answered is None or self.ended is None:
            return None
        return self.ended - self.answered

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "duration": self.duration}


_COLUMNS = ("site", "direction", "identity", "peer", "call_sid", "started", "answered", "ended",
            "outcome", "error", "codec", "mos_average", "mos_minimum", "warnings", "name")


class CallLogInUse(ConfigError):
    """Another process holds this call log (each exchange needs its own)."""


class CallLog:
    def __init__(self, path: str | Path = ":memory:", owner: str | None = None) -> None:
        """Open (or create) the log at ``path``. ``owner`` (e.g. "exchange") claims the file
        for this CallLog alone until ``close``: another claim raises CallLogInUse. Readers
        (``piphone calls``) and a phone's own log do not claim. ConfigError if it cannot
        be opened."""
        self.path = str(path)
        self._claim: int | None = None
        try:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
                if owner is not None:
                    self._claim = _claim(self.path, owner)
            self._db = sqlite3.connect(self.path)
            self._db.row_factory = sqlite3.Row
            if self.path != ":memory:":
                # Writes happen on the event loop (a few per call). With WAL and
                # synchronous=NORMAL a commit is a write to the page cache, not an fsync that
                # could stall the loop on an SD card; a power cut may lose the last calls but
                # never corrupts the log.
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(SCHEMA)
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(calls)")}
            if "name" not in columns:  # a log written before contacts
                with self._db:
                    self._db.execute("ALTER TABLE calls ADD COLUMN name TEXT")
        except (OSError, sqlite3.Error) as exc:
            self._release()
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise ConfigError(f"call log {self.path}: cannot open it ({reason})") from None
        except BaseException:
            self._release()
            raise

    def close(self) -> None:
        """Close the database and give up the claim (idempotent)."""
        with contextlib.suppress(AttributeError):
            self._db.close()
        self._release()

    def _release(self) -> None:
        if self._claim is not None:
            os.close(self._claim)  # the flock goes with the descriptor
            self._claim = None

    # --- writing -------------------------------------------------------------------------------
    def start(self, record: CallRecord, *aliases: str) -> int:
        values = {c: self._encode(c, getattr(record, c)) for c in _COLUMNS}
        with self._db:
            cursor = self._db.execute(
                f"INSERT INTO calls ({', '.join(_COLUMNS)}) VALUES "
                f"({', '.join('?' for _ in _COLUMNS)})", [values[c] for c in _COLUMNS])
            record.id = cursor.lastrowid
        assert record.id is not None
        self.alias(record.id, *(a for a in (record.call_sid, *aliases) if a))
        return record.id

    def alias(self, call_id: int, *sids: str) -> None:
        """File the call under more ids. An id already filed keeps its call: at the exchange
        a client chooses its temporary id, and may choose someone else's CallSid."""
        with self._db:
            self._db.executemany("INSERT OR IGNORE INTO call_ids (sid, call_id) VALUES (?, ?)",
                                 [(sid, call_id) for sid in sids if sid])

    def update(self, call_id: int, **changes: Any) -> None:
        unknown = set(changes) - set(_COLUMNS)
        if unknown:
            raise ValueError(f"no call log column {sorted(unknown)}")
        if not changes:
            return
        with self._db:
            self._db.execute(
                f"UPDATE calls SET {', '.join(f'{c} = ?' for c in changes)} WHERE id = ?",
                [self._encode(c, v) for c, v in changes.items()] + [call_id])
        if changes.get("call_sid"):
            self.alias(call_id, changes["call_sid"])

    def add_feedback(self, sids: list[str], score: int | None, issue: str | None,
                     party: str | None = None, at: float | None = None) -> int | None:
        """File feedback under the call known by any of ``sids``; its id, or None if unknown."""
        call_id = self.find(*sids)
        if call_id is not None:
            with self._db:
                self._db.execute(
                    "INSERT INTO feedback (call_id, party, score, issue, at) VALUES (?,?,?,?,?)",
                    (call_id, party, score, issue, time.time() if at is None else at))
        return call_id

    @staticmethod
    def _encode(column: str, value: Any) -> Any:
        return json.dumps(list(value)) if column == "warnings" else value

    # --- reading -------------------------------------------------------------------------------
    def find(self, *sids: str) -> int | None:
        for sid in sids:
            if sid:
                row = self._db.execute("SELECT call_id FROM call_ids WHERE sid = ?",
                                       (sid,)).fetchone()
                if row is not None:
                    return int(row[0])
        return None

    def recent(self, limit: int = 20) -> list[CallRecord]:
        """The latest calls, newest first."""
        rows = self._db.execute("SELECT * FROM calls ORDER BY started DESC, id DESC LIMIT ?",
                                (limit,)).fetchall()
        return [self._record(row) for row in rows]

    def missed(self, *, unseen: bool = False, limit: int = 20) -> list[CallRecord]:
        """Missed calls (see _MISSED), newest first; ``unseen``: only those not yet seen."""
        since = self.seen_up_to() if unseen else 0
        rows = self._db.execute(f"SELECT * FROM calls WHERE {_MISSED} AND id > ? "
                                "ORDER BY id DESC LIMIT ?", (since, limit)).fetchall()
        return [self._record(row) for row in rows]

    def unseen_missed(self) -> int:
        """How many missed calls have not been seen (the phone's missed-calls cue)."""
        row = self._db.execute(f"SELECT COUNT(*) FROM calls WHERE {_MISSED} AND id > ?",
                               (self.seen_up_to(),)).fetchone()
        return int(row[0])

    def seen_up_to(self) -> int:
        row = self._db.execute("SELECT value FROM marks WHERE name = 'missed_seen'").fetchone()
        return int(row[0]) if row is not None else 0

    def mark_seen(self) -> None:
        """Every missed call so far is seen."""
        with self._db:
            self._db.execute("INSERT INTO marks (name, value) VALUES ('missed_seen', "
                             "(SELECT COALESCE(MAX(id), 0) FROM calls)) ON CONFLICT(name) "
                             "DO UPDATE SET value = excluded.value")

    def last_peer(self, direction: str) -> str | None:
        """The other party of the latest call of ``direction`` (INCOMING: call-back;
        OUTGOING: redial) on this phone, so both survive a restart."""
        row = self._db.execute("SELECT peer FROM calls WHERE site = 'device' AND direction = ? "
                               "AND peer IS NOT NULL ORDER BY id DESC LIMIT 1",
                               (direction,)).fetchone()
        return None if row is None else str(row[0])

    def get(self, call_id: int) -> CallRecord | None:
        row = self._db.execute("SELECT * FROM calls WHERE id = ?", (call_id,)).fetchone()
        return None if row is None else self._record(row)

    def _record(self, row: sqlite3.Row) -> CallRecord:
        data = dict(row)
        data["warnings"] = json.loads(data["warnings"] or "[]")
        record = CallRecord(**data)
        record.feedback = [
            {"party": f["party"], "score": f["score"], "issue": f["issue"], "at": f["at"]}
            for f in self._db.execute(
                "SELECT * FROM feedback WHERE call_id = ? ORDER BY at", (record.id,))]
        return record


def _claim(path: str, owner: str) -> int:
    """An exclusive flock on ``PATH.lock`` (naming us inside), held by the returned fd; SQLite's
    own locks are fcntl locks on the database files, which flock does not touch."""
    lock = f"{path}.lock"
    fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(fd)
        os.close(fd)
        raise CallLogInUse(f"call log {path} is in use by {holder} (lock {lock}); each "
                           f"{owner} needs its own call_log") from None
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()} {owner}\n".encode(), 0)
    return fd


def _holder(fd: int) -> str:
    """Who holds a claim, from what it wrote in the lock file and its /proc entry."""
    fields = os.pread(fd, 200, 0).decode("utf-8", "replace").split(None, 1)
    if not fields or not fields[0].isdigit():
        return "another process"
    pid = fields[0]
    owner = fields[1].strip() if len(fields) > 1 else "process"
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            command = f.read(300).replace(b"\0", b" ").decode("utf-8", "replace").strip()
    except OSError:
        command = ""
    command = "".join(c if c.isprintable() else "?" for c in command)[:160]
    return f"{owner} pid {pid}" + (f" ({command})" if command else "")


# --- following a voice Call (on the phone) -------------------------------------------------------
def track(log: CallLog, call: Call, identity: str | None = None, name: str | None = None,
          on_end: Callable[[], None] | None = None) -> int:
    """Log ``call`` (a voice.Call) from now to its end, and any feedback given for it.
    ``name``: the peer's name (the phone's contacts); ``on_end`` is called once the call's
    outcome is written."""
    from .voice import CallDirection, CallStatus  # the voice client only where it is used

    incoming = call.direction is CallDirection.INCOMING
    record = CallRecord(
        site="device", direction=call.direction.value, started=time.time(), identity=identity,
        peer=call.parameters.get("From") if incoming else call.custom_parameters.get("To"),
        call_sid=call.call_sid, name=name)
    call_id = log.start(record, *(s for s in (call.outbound_connection_id,) if s))
    state: dict[str, Any] = {"outcome": None, "error": None, "finished": False}

    def error(err: Any) -> None:
        state["error"] = err

    def finish() -> None:
        if state["finished"]:
            return
        state["finished"] = True
        err = state["error"]
        code = getattr(err, "code", None)
        answered = record.answered is not None
        outcome = state["outcome"] or outcome_of(answered=answered, error_code=code,
                                                 cancelled=not answered)
        quality = call.quality
        log.update(call_id, ended=time.time(), outcome=outcome, call_sid=call.call_sid,
                   error=f"{code} {getattr(err, 'message', '')}".strip() if err else None,
                   codec=call.codec or None, mos_average=quality.mos_average,
                   mos_minimum=quality.mos_minimum, warnings=quality.raised)
        if on_end is not None:
            on_end()

    def accepted(_call: Any) -> None:
        record.answered = time.time()
        log.update(call_id, answered=record.answered, call_sid=call.call_sid)

    def ended_as(outcome: str | None) -> Callable[..., None]:
        def handler(*_: Any) -> None:
            if outcome is not None and state["outcome"] is None:
                state["outcome"] = outcome
            finish()
        return handler

    def status(value: CallStatus) -> None:
        if value is CallStatus.CLOSED:  # the outcome event (reject, cancel...) follows at once
            asyncio.get_running_loop().call_soon(finish)

    call.on("error", error)
    call.on("accept", accepted)
    call.on("reject", ended_as("rejected"))
    call.on("cancel", ended_as("cancelled"))  # given up before answer, or ignored here
    call.on("disconnect", ended_as(None))
    call.on("status", status)
    call.on("feedback", lambda score, issue: log.add_feedback(
        [s for s in (call.call_sid, call.outbound_connection_id) if s], score, issue,
        party=identity))
    return call_id


# --- printing ------------------------------------------------------------------------------------
def format_table(records: list[CallRecord],
                 new: Callable[[CallRecord], bool] | None = None) -> str:
    """The calls as a fixed-width table, newest first; ``new``: which are marked ``new``
    (missed calls not yet seen)."""
    header = ("started", "dir", "peer", "outcome", "secs", "codec", "mos avg/min", "warnings",
              "feedback", "callsid")
    rows = [header]
    for r in records:
        mos = ("-" if r.mos_average is None
               else f"{r.mos_average:.2f}/{r.mos_minimum:.2f}")
        feedback = ", ".join(
            "declined" if f["score"] is None else f"{f['score']}" + (f" {f['issue']}"
                                                                    if f["issue"] else "")
            for f in r.feedback) or "-"
        rows.append((
            datetime.fromtimestamp(r.started).strftime("%Y-%m-%d %H:%M:%S"),
            ("in" if r.direction == "INCOMING" else "out")
            + (" new" if new is not None and new(r) else ""),
            f"{r.name} ({r.peer})" if r.name else r.peer or "-", r.outcome or "(on)",
            "-" if r.duration is None else f"{r.duration:.0f}",
            r.codec or "-", mos, ",".join(r.warnings) or "-", feedback, r.call_sid or "-"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True))
                     .rstrip() for row in rows)
