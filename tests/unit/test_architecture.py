"""The package's shape, checked from its imports (ARCHITECTURE.md states the same rules, and
scripts/architecture.py holds them: LAYERS):

- no import cycle inside ``firmware/piphone`` (imports under ``TYPE_CHECKING`` and inside
  functions count: a cycle hidden from the interpreter is still two modules that cannot be
  read apart);
- aiortc, aioice and PyAV are imported only in ``voice/rtc/``, the one door to WebRTC;
- no upward import between layers: the bottom modules import no layer; ``voice``, ``audio``
  and ``panel`` import none of each other; the call log builds on ``voice``; ``exchange`` on
  ``voice`` and the call log; the ``appliance`` on ``voice``, ``audio``, ``panel`` and the call
  log; only the command line sees everything;
- no module over 500 lines;
- ARCHITECTURE.md's generated parts (layers, modules, the call's state table) are the code's.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "architecture.py"
_spec = importlib.util.spec_from_file_location("architecture", SCRIPT)
assert _spec and _spec.loader
arch = importlib.util.module_from_spec(_spec)
sys.modules["architecture"] = arch
_spec.loader.exec_module(arch)


def internal_graph() -> dict[str, set[str]]:
    return {name: {t for t in arch.imports_of(name) if t in arch.MODULES and t != name}
            for name in arch.MODULES}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def is_package_face(name: str) -> bool:
    """A package's __init__, which only re-exports: ``from . import x`` in voice/__init__ and
    ``from ..voice import y`` in a module of voice/ are not a design cycle."""
    return arch.MODULES[name].name == "__init__.py"


def upward_imports() -> list[str]:
    upward = []
    for name in arch.MODULES:
        layer = arch.layer_of(name)
        for target in arch.imports_of(name):
            if target not in arch.MODULES:
                continue
            other = arch.layer_of(target)
            if other is None or other == layer:
                continue  # the bottom layer, or the same layer
            if layer is None or other not in arch.LAYERS[layer]:
                upward.append(f"{name} ({layer or 'bottom'}) imports {target} ({other})")
    return upward


def test_there_is_no_import_cycle():
    graph = internal_graph()
    # Edges into a package's face stand for the modules it re-exports, not for the face
    # itself: drop them where they would close a loop back into the package.
    for name, targets in graph.items():
        graph[name] = {t for t in targets
                       if not (is_package_face(t) and name.startswith(t + "."))}
    assert cycles(graph) == []


def test_webrtc_is_imported_only_behind_the_rtc_door():
    outside = sorted(
        f"{name} imports {target}"
        for name in arch.MODULES
        if not (name == arch.RTC_DOOR or name.startswith(arch.RTC_DOOR + "."))
        for target in arch.imports_of(name)
        if target.split(".")[0] in arch.WEBRTC)
    assert outside == []


def test_no_layer_imports_upwards():
    assert upward_imports() == []


@pytest.mark.parametrize("name", sorted(arch.MODULES))
def test_no_module_is_over_500_lines(name):
    lines = len(arch.MODULES[name].read_text().splitlines())
    assert lines <= arch.MAX_LINES, f"{arch.MODULES[name]}: {lines} lines"


def test_architecture_md_is_generated_from_the_code():
    text = arch.DOCUMENT.read_text()
    assert arch.render(text) == text, "run: python scripts/architecture.py --write"


def test_the_checks_can_fail(monkeypatch):
    """The checks above see what they look for (so an empty list is a real answer)."""
    assert cycles({"a": {"b"}, "b": {"a"}, "c": set()}) == [["a", "b"]]
    assert "piphone.voice.protocol" in arch.imports_of("piphone.exchange.session")
    assert any(t.split(".")[0] == "aiortc"
               for t in arch.imports_of("piphone.voice.rtc.session"))
    monkeypatch.setitem(arch.LAYERS, "piphone.exchange", ("piphone.calllog",))
    assert any(" imports piphone.voice" in line and line.startswith("piphone.exchange")
               for line in upward_imports())
    stale = arch.DOCUMENT.read_text().replace("| `accept` | pending |", "| `accept` | open |", 1)
    assert arch.render(stale) != stale
