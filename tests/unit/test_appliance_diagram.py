"""`piphone diagram` draws the phone's table with transitions' graphviz extension."""

from __future__ import annotations

import shutil

import pytest

from piphone import cli
from piphone.appliance import diagram
from piphone.appliance.table import STATES, TRANSITIONS


def test_dot_source_has_every_state_and_trigger(capsys):
    assert cli.main(["diagram"]) == 0
    source = capsys.readouterr().out
    assert source.startswith("digraph")
    for state in STATES:
        assert f"\t{state} [" in source
    for trigger in {row[0] for row in TRANSITIONS}:
        assert trigger in source, trigger
    assert "ringing -> talking" in source and "[auto_answer_due]" in source


def test_dot_file(tmp_path):
    out = tmp_path / "phone.dot"
    assert cli.main(["diagram", "-o", str(out)]) == 0
    assert out.read_text().startswith("digraph")


@pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz's dot is not installed")
def test_svg_image(tmp_path):
    out = tmp_path / "phone.svg"
    assert cli.main(["diagram", "-o", str(out)]) == 0
    assert b"<svg" in out.read_bytes()[:400] and b"reconnecting" in out.read_bytes()


def test_missing_dot_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))  # no dot on this PATH
    assert cli.main(["diagram", "-o", str(tmp_path / "phone.png")]) == 2
    assert "graphviz's `dot` program is missing (apt-get install graphviz)" in (
        capsys.readouterr().err)


def test_missing_python_graphviz_is_a_clear_error(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "graphviz", None)  # import graphviz -> ImportError
    with pytest.raises(cli.PiphoneError, match="needs the graphviz Python package"):
        diagram.draw(None)
