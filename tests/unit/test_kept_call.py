"""The kept call (appliance/kept_call.py): saved 0600 and whole, cleared at the end, and read
as untrusted input (a lying or corrupt file is reported without its content, removed, and
ignored. (The phone's side, resume_call, is in test_appliance_phone.py.)"""

from __future__ import annotations

import json
import logging
import os
import stat

import pytest

from piphone.appliance.kept_call import (
    FILE_NAME,
    MAX_BYTES,
    CallKeeper,
    KeptCall,
    runtime_directory,
)
from piphone.voice import connect_token as ct

SECRET = "reconnect-secret-0123456789"
TOKEN = ct.encode({"CallSid": "CA" + "1" * 32}, {"To": "client:bob"}, SECRET)
assert TOKEN is not None


@pytest.fixture
def keeper(tmp_path) -> CallKeeper:
    return CallKeeper(tmp_path)


def test_saved_0600_loaded_and_cleared(keeper, tmp_path):
    keeper.save((KeptCall(TOKEN, "client:bob", off_hook=True),))
    path = tmp_path / FILE_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert keeper.load() == [KeptCall(TOKEN, "client:bob", True)]
    assert [p.name for p in tmp_path.iterdir()] == [FILE_NAME]  # no temporary left
    keeper.clear()
    assert not path.exists() and keeper.load() is None
    keeper.clear()  # idempotent


def test_saving_the_same_call_again_writes_nothing(keeper, tmp_path):
    kept = (KeptCall(TOKEN, "client:bob"),)
    keeper.save(kept)
    (tmp_path / FILE_NAME).unlink()
    keeper.save(kept)
    assert not (tmp_path / FILE_NAME).exists()
    keeper.save((KeptCall(TOKEN, "client:carol"),))
    assert keeper.load() == [KeptCall(TOKEN, "client:carol")]


def test_two_calls_one_on_hold_are_kept_in_order(keeper):
    other = ct.encode({"CallSid": "CA" + "2" * 32}, {"To": "client:carol"}, SECRET)
    calls = (KeptCall(TOKEN, "client:bob"), KeptCall(other, "client:carol", held=True))
    keeper.save(calls)
    assert keeper.load() == list(calls)


def test_the_file_an_older_run_kept_is_read(keeper, tmp_path):
    """An upgrade's restart: the run before hold kept one call as a single object."""
    _write(tmp_path, json.dumps({"connect_token": TOKEN, "peer": "client:bob",
                                 "off_hook": True}))
    assert keeper.load() == [KeptCall(TOKEN, "client:bob", off_hook=True, held=False)]


class _Device:
    def __init__(self) -> None:
        self.ended = []

    async def connect(self, *, connect_token):
        device = self

        class Call:
            def disconnect(self):
                device.ended.append(connect_token)
        return Call()


async def test_ending_one_kept_call_keeps_the_other(keeper, tmp_path):
    other = ct.encode({"CallSid": "CA" + "2" * 32}, {"To": "client:carol"}, SECRET)
    keeper.save((KeptCall(TOKEN, "client:bob", off_hook=True), KeptCall(other, held=True)))
    kept = keeper.load()
    device = _Device()
    await keeper.end(device, kept[0].token)
    assert device.ended == [TOKEN] and keeper.load() == [KeptCall(other, held=True)]
    await keeper.end(device, other)
    assert not (tmp_path / FILE_NAME).exists()


def test_an_unwritable_directory_is_reported_not_raised(tmp_path, caplog):
    keeper = CallKeeper(tmp_path / "missing")
    keeper.save((KeptCall(TOKEN),))
    assert "will not survive a restart" in caplog.text and SECRET not in caplog.text


def _write(tmp_path, text: str | bytes, mode: int = 0o600):
    path = tmp_path / FILE_NAME
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    os.chmod(path, mode)
    return path


@pytest.mark.parametrize(("content", "mode", "why"), [
    ("{not json", 0o600, "is not JSON"),
    (b"\xff\xfe", 0o600, "is not JSON"),
    ("[1, 2]", 0o600, "is not a JSON object"),
    (json.dumps({"connect_token": "garbage"}), 0o600, "no valid connect token"),
    (json.dumps({"peer": "x"}), 0o600, "no valid connect token"),
    (json.dumps({"calls": []}), 0o600, "does not hold 1 to 2 calls"),
    (json.dumps({"calls": [{"connect_token": TOKEN}] * 3}), 0o600, "does not hold 1 to 2"),
    (json.dumps({"calls": [7]}), 0o600, "a call that is not a JSON object"),
    (json.dumps({"calls": [{"connect_token": TOKEN}, {"connect_token": "x"}]}), 0o600,
     "no valid connect token"),
    (json.dumps({"connect_token": TOKEN}), 0o666, "is not the service's own 0600 file"),
    (json.dumps({"connect_token": TOKEN}), 0o640, "is not the service's own 0600 file"),
    (" " * (MAX_BYTES + 1), 0o600, f"is over {MAX_BYTES} bytes"),
])
def test_a_bad_file_is_reported_removed_and_ignored(keeper, tmp_path, caplog, content, mode,
                                                    why):
    path = _write(tmp_path, content, mode)
    with caplog.at_level(logging.WARNING):
        assert keeper.load() is None
    assert why in caplog.text and SECRET not in caplog.text
    assert not path.exists()


def test_a_symlink_is_not_followed(keeper, tmp_path, caplog):
    target = tmp_path / "elsewhere.json"
    target.write_text(json.dumps({"connect_token": TOKEN}))
    os.chmod(target, 0o600)
    (tmp_path / FILE_NAME).symlink_to(target)
    assert keeper.load() is None
    assert "cannot be opened" in caplog.text
    assert target.exists() and not (tmp_path / FILE_NAME).is_symlink()


def test_a_lying_peer_is_dropped_but_the_call_kept(keeper, tmp_path):
    _write(tmp_path, json.dumps({"connect_token": TOKEN, "peer": "bob\n\x1b[31mfake line",
                                 "off_hook": "yes"}))
    assert keeper.load() == [KeptCall(TOKEN, None, False)]


def test_the_secret_is_not_in_a_repr():
    assert SECRET not in repr(KeptCall(TOKEN, "client:bob"))


def test_runtime_directory_is_systemds(monkeypatch, tmp_path):
    monkeypatch.setenv("RUNTIME_DIRECTORY", f"{tmp_path}:/run/other")
    assert runtime_directory() == tmp_path
    monkeypatch.delenv("RUNTIME_DIRECTORY")
    assert str(runtime_directory()) == "/run/piphone"

