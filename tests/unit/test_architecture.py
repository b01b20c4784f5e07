"""The package's shape, checked from its imports (ARCHITECTURE.md states the same rules):

- no import cycle inside ``firmware/piphone`` (imports under ``TYPE_CHECKING`` and inside
  functions count: a cycle hidden from the interpreter is still two modules that cannot be
  read apart);
- aiortc, aioice and PyAV are imported only in ``voice/rtc/``, the one door to WebRTC;
- no upward import between layers: the bottom modules import no layer; ``voice``, ``audio``
  and ``panel`` import none of each other; the call log builds on ``voice``; ``exchange`` on
  ``voice`` and the call log; the ``appliance`` on ``voice``, ``audio``, ``panel`` and the call
  log; only the command line sees everything.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "firmware" / "piphone"
WEBRTC = ("aiortc", "aioice", "av")
RTC_DOOR = "piphone.voice.rtc"

# What each layer may import, besides itself and the bottom layer. A module belongs to the
# first layer whose name is a prefix of its own; the rest is the bottom layer.
LAYERS: dict[str, set[str]] = {
    "piphone.voice": set(),
    "piphone.audio": set(),
    "piphone.panel": set(),
    "piphone.calllog": {"piphone.voice"},
    "piphone.exchange": {"piphone.voice", "piphone.calllog"},
    "piphone.appliance": {"piphone.voice", "piphone.audio", "piphone.panel", "piphone.calllog"},
    "piphone.twilio_setup": {"piphone.appliance", "piphone.voice", "piphone.audio",
                             "piphone.panel", "piphone.calllog"},
    "piphone.cli": {"piphone.voice", "piphone.audio", "piphone.panel", "piphone.exchange",
                    "piphone.appliance", "piphone.twilio_setup", "piphone.cli_exchange",
                    "piphone.calllog"},
    "piphone.cli_exchange": {"piphone.voice", "piphone.exchange", "piphone.calllog"},
    "piphone.__main__": {"piphone.cli"},
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports_of(name: str) -> set[str]:
    """Every module name ``name`` imports, absolute, anywhere in its text."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module or ""
            found.add(stem)
            # `from . import x` and `from .pkg import mod` name modules too
            found.update(f"{stem}.{alias.name}" for alias in node.names
                         if f"{stem}.{alias.name}" in MODULES)
    return found


def internal_graph() -> dict[str, set[str]]:
    graph = {}
    for name in MODULES:
        targets = {t for t in imports_of(name) if t in MODULES and t != name}
        graph[name] = targets
    return graph


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


def layer_of(name: str) -> str | None:
    for layer in LAYERS:
        if name == layer or name.startswith(layer + "."):
            return layer
    return None


def is_package_face(name: str) -> bool:
    """A package's __init__ that only re-exports (a cycle through it is not a design cycle:
    ``from . import x`` in voice/__init__ and ``from ..voice import y`` elsewhere)."""
    return MODULES[name].name == "__init__.py"


def test_there_is_no_import_cycle():
    graph = internal_graph()
    # Edges into a package's face (its __init__) stand for the modules it re-exports, not
    # for the face itself: drop them where they would close a loop back into the package.
    for name, targets in graph.items():
        graph[name] = {t for t in targets
                       if not (is_package_face(t) and name.startswith(t + "."))}
    assert cycles(graph) == []


def test_webrtc_is_imported_only_behind_the_rtc_door():
    outside = sorted(
        f"{name} imports {target}"
        for name in MODULES
        if not (name == RTC_DOOR or name.startswith(RTC_DOOR + "."))
        for target in imports_of(name)
        if target.split(".")[0] in WEBRTC)
    assert outside == []


def test_no_layer_imports_upwards():
    upward = []
    for name in MODULES:
        layer = layer_of(name)
        for target in imports_of(name):
            if not target.startswith("piphone.") or target not in MODULES:
                continue
            other = layer_of(target)
            if other is None or other == layer:
                continue  # the bottom layer, or the same layer
            if layer is None or other not in LAYERS[layer]:
                upward.append(f"{name} ({layer or 'bottom'}) imports {target} ({other})")
    assert upward == []


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_module_is_over_500_lines(name):
    lines = len(MODULES[name].read_text().splitlines())
    assert lines <= 500, f"{MODULES[name]}: {lines} lines"


def test_the_checks_can_fail():
    """The checks above see what they look for (so an empty list is a real answer)."""
    assert cycles({"a": {"b"}, "b": {"a"}, "c": set()}) == [["a", "b"]]
    assert "piphone.voice.protocol" in imports_of("piphone.exchange.session")
    assert any(t.split(".")[0] == "aiortc" for t in imports_of("piphone.voice.rtc.session"))
