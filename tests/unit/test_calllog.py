"""piphone/calllog.py: the SQLite store, outcomes, feedback by any id, and `piphone calls`."""

from __future__ import annotations

import json
import sqlite3

import pytest

from piphone import cli
from piphone.calllog import SCHEMA, CallLog, CallRecord, format_table, outcome_of
from piphone.paths import CALL_LOG


def record(**fields) -> CallRecord:
    base = dict(site="device", direction="OUTGOING", started=1_700_000_000.0, identity="alice",
                peer="client:bob", call_sid="CA1")
    return CallRecord(**{**base, **fields})


@pytest.mark.parametrize(("answered", "code", "cancelled", "outcome"), [
    (True, None, False, "completed"),
    (False, None, True, "cancelled"),
    (False, 31603, False, "rejected"),
    (False, 31486, False, "busy"),
    (False, 31480, False, "no-answer"),
    (False, 31404, False, "failed"),
    (True, 53405, False, "failed"),  # dropped after answer
    (False, None, False, "failed"),
])
def test_outcomes(answered, code, cancelled, outcome):
    assert outcome_of(answered=answered, error_code=code, cancelled=cancelled) == outcome


def test_a_call_from_start_to_end_with_feedback_by_any_of_its_ids(tmp_path):
    log = CallLog(tmp_path / "calls.db")
    call_id = log.start(record(call_sid=None), "TJSabc")
    log.update(call_id, call_sid="CA1", answered=1_700_000_002.0)
    log.update(call_id, ended=1_700_000_062.5, outcome="completed", codec="opus",
               mos_average=4.4, mos_minimum=4.1, warnings=["high-jitter"])
    assert log.add_feedback(["TJSabc"], 4, "echo", party="alice") == call_id
    assert log.add_feedback(["CA1"], None, None, party="bob") == call_id
    assert log.add_feedback(["CAnope"], 1, None) is None
    (row,) = log.recent()
    assert (row.call_sid, row.outcome, row.codec, row.warnings) == ("CA1", "completed", "opus",
                                                                   ["high-jitter"])
    assert row.duration == pytest.approx(60.5)
    assert [(f["party"], f["score"], f["issue"]) for f in row.feedback] == [
        ("alice", 4, "echo"), ("bob", None, None)]
    with pytest.raises(ValueError, match="no call log column"):
        log.update(call_id, colour="red")
    log.close()
    # WAL: another reader sees it while the writer is open
    assert sqlite3.connect(tmp_path / "calls.db").execute(
        "PRAGMA journal_mode").fetchone()[0] == "wal"


def test_filing_a_call_under_another_calls_id_does_not_repoint_that_id():
    log = CallLog()
    victim = log.start(record(call_sid="CAvictim"), "TJSvictim")
    log.alias(victim, "CAchild")
    # The attacker files its call under the victim's CallSid, child CallSid and temporary id.
    attacker = log.start(record(identity="mallory", call_sid="CAmallory"),
                         "CAvictim", "CAchild", "TJSvictim")
    log.update(attacker, call_sid="CAvictim")
    assert log.find("CAvictim") == log.find("CAchild") == log.find("TJSvictim") == victim
    assert log.find("CAmallory") == attacker


def test_recent_is_newest_first_and_limited():
    log = CallLog()
    for i in range(5):
        log.start(record(call_sid=f"CA{i}", started=1_700_000_000.0 + i))
    assert [r.call_sid for r in log.recent(3)] == ["CA4", "CA3", "CA2"]


def test_table_shows_each_column():
    log = CallLog()
    done = log.start(record())
    log.update(done, answered=1_700_000_001.0, ended=1_700_000_031.0, outcome="completed",
               codec="pcmu", mos_average=4.2, mos_minimum=3.5, warnings=["high-rtt"])
    log.add_feedback(["CA1"], 2, "choppy-audio")
    log.start(record(call_sid="CA2", direction="INCOMING", peer="client:carol",
                     started=1_700_000_100.0))
    lines = format_table(log.recent()).splitlines()
    assert lines[0].split()[:4] == ["started", "dir", "peer", "outcome"]
    assert "in" in lines[1].split() and "(on)" in lines[1] and "client:carol" in lines[1]
    for cell in ("out", "client:bob", "completed", "30", "pcmu", "4.20/3.50", "high-rtt",
                 "2 choppy-audio", "CA1"):
        assert cell in lines[2]


def test_piphone_calls_table_and_json(tmp_path, capsys):
    db = tmp_path / "calls.db"
    log = CallLog(db)
    call_id = log.start(record())
    log.update(call_id, answered=1_700_000_001.0, ended=1_700_000_011.0, outcome="completed")
    log.start(record(call_sid="CA2", started=1_700_000_100.0))
    log.close()
    assert cli.main(["calls", "--db", str(db)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("started") and len(out) == 3
    assert cli.main(["calls", "--db", str(db), "--json", "--limit", "1"]) == 0
    (latest,) = json.loads(capsys.readouterr().out)
    assert latest["call_sid"] == "CA2" and latest["outcome"] is None
    assert set(latest) >= {"direction", "peer", "started", "answered", "ended", "codec",
                           "mos_average", "mos_minimum", "warnings", "feedback", "duration"}
    assert cli.main(["calls", "--db", str(tmp_path / "none.db")]) == 2
    assert "no call log there" in capsys.readouterr().err
    assert cli.main(["calls", "--db", str(db), "--limit", "0"]) == 2


def test_piphone_calls_reads_the_phones_log_by_default():
    from piphone.appliance.config import PhoneConfig

    assert cli.build_parser().parse_args(["calls"]).db == CALL_LOG == PhoneConfig().call_log


def test_piphone_call_prints_quality_warnings_by_name():
    from piphone.cli.call import CALL_EVENTS, printer

    lines: list[str] = []
    assert {"warning", "warning-cleared"} <= set(CALL_EVENTS)
    printer(lines.append, "warning")("high-rtt", {"name": "rtt", "samples": ["..."]})
    printer(lines.append, "warning-cleared")("high-rtt")
    assert lines == ["warning high-rtt", "warning-cleared high-rtt"]


def test_an_owner_claims_the_file_and_a_second_owner_is_told_who_holds_it(tmp_path):
    import os

    from piphone.calllog import CallLogInUse
    from piphone.errors import ConfigError

    path = tmp_path / "calls.db"
    first = CallLog(path, owner="exchange")
    with pytest.raises(CallLogInUse) as info:
        CallLog(path, owner="exchange")
    message = str(info.value)
    assert str(path) in message and f"exchange pid {os.getpid()}" in message, message
    assert isinstance(info.value, ConfigError)  # `piphone exchange` exits 2 on it
    reader = CallLog(path)  # `piphone calls` reads while the exchange writes
    reader.close()
    first.close()
    first.close()  # idempotent
    CallLog(path, owner="exchange").close()  # free again


def test_a_call_log_that_cannot_be_opened_is_a_config_error_naming_the_file(tmp_path):
    from piphone.errors import ConfigError

    (tmp_path / "calls.db").mkdir()  # a folder where the file should be
    with pytest.raises(ConfigError, match=f"call log {tmp_path / 'calls.db'}: cannot open"):
        CallLog(tmp_path / "calls.db")


def test_missed_calls_until_seen_and_the_last_peers(tmp_path):
    log = CallLog(tmp_path / "calls.db")

    def call(direction: str, peer: str, outcome: str | None, answered: float | None = None,
             site: str = "device") -> int:
        call_id = log.start(CallRecord(site=site, direction=direction, started=1.0, peer=peer,
                                       answered=answered))
        if outcome is not None:
            log.update(call_id, outcome=outcome, ended=2.0)
        return call_id

    call("INCOMING", "+1001", "cancelled")  # the caller gave up: missed
    call("INCOMING", "+1002", "rejected")  # rejected here: not missed
    call("INCOMING", "+1003", "completed", answered=1.5)
    call("OUTGOING", "+2001", "no-answer")
    call("INCOMING", "+1004", "no-answer", site="exchange")  # not this phone's
    call("INCOMING", "+1005", None)  # still ringing: not missed yet
    assert log.unseen_missed() == 1 and [r.peer for r in log.missed()] == ["+1001"]
    log.mark_seen()
    assert log.unseen_missed() == 0 and log.missed(unseen=True) == []
    assert [r.peer for r in log.missed()] == ["+1001"]  # still listed, as seen
    call("INCOMING", "+1006", "cancelled")
    assert log.unseen_missed() == 1
    assert log.last_peer("INCOMING") == "+1006" and log.last_peer("OUTGOING") == "+2001"
    log.close()
    again = CallLog(tmp_path / "calls.db")  # a restart keeps what was seen
    assert again.unseen_missed() == 1 and again.seen_up_to() > 0
    again.close()


def test_a_log_from_before_contacts_gains_the_name_column(tmp_path):
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.executescript(SCHEMA.replace(",\n    name TEXT                      -- the peer's name in "
                                    "the phone's contacts, if any", ""))
    db.execute("INSERT INTO calls (site, direction, started, peer) VALUES "
               "('device', 'INCOMING', 1.0, '+1')")
    db.commit()
    db.close()
    log = CallLog(path)
    [old] = log.recent()
    assert old.peer == "+1" and old.name is None
    log.update(old.id, name="Bob")
    assert log.get(old.id).name == "Bob"
    log.close()
