"""appliance/state_file.py: the settings kept across restarts, and every way the file can lie."""

from __future__ import annotations

import json
import logging
import os

import pytest

from piphone.appliance import state_file
from piphone.appliance.state_file import Settings

DEFAULTS = Settings(call_volume=5, ringer_volume=6, dnd=False)


def test_saved_settings_come_back(tmp_path):
    path = tmp_path / "state.json"
    mine = Settings(call_volume=2, ringer_volume=10, dnd=True)
    assert state_file.save(path, mine)
    assert state_file.load(path, DEFAULTS) == (mine, None)
    assert json.loads(path.read_text())["version"] == state_file.VERSION
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # no temporary file left


def test_no_file_yet_is_the_defaults_and_no_problem(tmp_path, caplog):
    assert state_file.load(tmp_path / "state.json", DEFAULTS) == (DEFAULTS, None)
    assert not caplog.records


def test_a_write_replaces_the_file_whole(tmp_path, monkeypatch):
    """The new settings go to a temporary file renamed over the old: a failed write leaves
    the old file as it was."""
    path = tmp_path / "state.json"
    state_file.save(path, Settings(call_volume=1))
    before = path.read_text()

    def broken_fsync(fd):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    assert not state_file.save(path, Settings(call_volume=9))
    assert path.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


LIES = [
    ("not json", b"{call_volume: 3", "not JSON"),
    ("a list", b"[1, 2, 3]", "must be a JSON object, not list"),
    ("volume too loud", b'{"call_volume": 99, "ringer_volume": 7, "dnd": false}',
     "call_volume must be 0-10, not 99"),
    ("negative ringer", b'{"call_volume": 3, "ringer_volume": -1, "dnd": false}',
     "ringer_volume must be 0-10, not -1"),
    ("volume as a float", b'{"call_volume": 3.5, "ringer_volume": 7, "dnd": false}',
     "call_volume must be a whole number"),
    ("volume as true", b'{"call_volume": true, "ringer_volume": 7, "dnd": false}',
     "call_volume must be a whole number"),
    ("dnd as a string", b'{"call_volume": 3, "ringer_volume": 7, "dnd": "yes"}',
     "dnd must be true or false"),
    ("a key missing", b'{"call_volume": 3, "dnd": true}', "ringer_volume must be"),
    ("not utf-8", b'{"call_volume": 3, "ringer_volume": 7, "dnd": \xff}', "not UTF-8"),
    ("too big", b'{"call_volume": 3, "ringer_volume": 7, "dnd": true, "x": "'
     + b"a" * 5000 + b'"}', "bigger than 4096 bytes"),
    ("empty", b"", "not JSON"),
]


@pytest.mark.parametrize("name, content, problem", LIES, ids=[lie[0] for lie in LIES])
def test_a_lying_file_is_reported_by_name_and_gives_the_defaults(tmp_path, caplog, name,
                                                                  content, problem):
    path = tmp_path / "state.json"
    path.write_bytes(content)
    with caplog.at_level(logging.ERROR, logger="piphone.appliance.state_file"):
        settings, found = state_file.load(path, DEFAULTS)
    assert settings == DEFAULTS and found is not None and problem in found
    [record] = caplog.records
    assert str(path) in record.getMessage() and problem in record.getMessage()


def test_a_symbolic_link_is_not_followed(tmp_path, caplog):
    real = tmp_path / "elsewhere.json"
    state_file.save(real, Settings(call_volume=1, ringer_volume=1, dnd=True))
    (tmp_path / "state.json").symlink_to(real)
    settings, problem = state_file.load(tmp_path / "state.json", DEFAULTS)
    assert settings == DEFAULTS and problem is not None and "symbolic link" in problem
    # and the write replaces the link itself, leaving its target alone
    assert state_file.save(tmp_path / "state.json", DEFAULTS)
    assert not (tmp_path / "state.json").is_symlink()
    assert state_file.load(real, DEFAULTS)[0].call_volume == 1


def test_a_fifo_or_a_folder_does_not_block_or_crash(tmp_path):
    fifo = tmp_path / "state.json"
    os.mkfifo(fifo)
    assert state_file.load(fifo, DEFAULTS) == (DEFAULTS, "not a regular file")
    folder = tmp_path / "folder.json"
    folder.mkdir()
    settings, problem = state_file.load(folder, DEFAULTS)
    assert settings == DEFAULTS and problem is not None
    assert not state_file.save(folder, DEFAULTS)  # logged, not raised


def test_settings_are_bounded():
    with pytest.raises(ValueError, match="call_volume must be 0-10"):
        Settings(call_volume=11)
    with pytest.raises(ValueError, match="dnd must be true or false"):
        Settings(dnd="on")  # type: ignore[arg-type]


def test_the_ringer_volume_scales_the_ring_level():
    from piphone.appliance.sounds import ringer_spec
    from piphone.audio import tones

    ring = tones.ring_spec(level_dbfs=-12.0)
    assert ringer_spec(ring, 7) == ring
    assert ringer_spec(ring, 5).level_dbfs == -18.0
    assert ringer_spec(ring, 10).level_dbfs == -3.0
    assert ringer_spec(tones.ring_spec(level_dbfs=-3.0), 10).level_dbfs == 0.0  # never above
    assert ringer_spec(ring, 0) is None  # silent: nothing plays
