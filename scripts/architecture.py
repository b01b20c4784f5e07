#!/usr/bin/env python3
"""ARCHITECTURE.md's generated parts, and the import rules they state.

The map a newcomer reads must not drift from the code, so what the code can say it says here:
the layers and who may import whom (LAYERS, which tests/unit/test_architecture.py enforces), the
modules of each layer with the first paragraph of their docstrings, and a call's state table
(voice/call_states.TRANSITIONS_TEXT). Each part sits in ARCHITECTURE.md between
``<!-- generated: NAME -->`` and ``<!-- end: NAME -->``; the prose around them is written by
hand. A test fails when a part is out of date.

    python scripts/architecture.py          # exit 1 and say which part is out of date
    python scripts/architecture.py --write  # rewrite the generated parts in place
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "firmware" / "piphone"
DOCUMENT = ROOT / "ARCHITECTURE.md"
WEBRTC = ("aiortc", "aioice", "av")  # imported only behind RTC_DOOR
RTC_DOOR = "piphone.voice.rtc"
MAX_LINES = 500

# What each layer may import, besides itself and the bottom layer (the modules at the top of
# the package that no layer claims: errors, pcm, backoff, dtmf, paths, logsafe, tomlconfig,
# systemd). A module belongs to the first layer whose name is its name or a prefix of it.
LAYERS: dict[str, tuple[str, ...]] = {
    "piphone.voice": (),
    "piphone.audio": (),
    "piphone.panel": (),
    "piphone.calllog": ("piphone.voice",),
    "piphone.exchange": ("piphone.voice", "piphone.calllog"),
    "piphone.appliance": ("piphone.voice", "piphone.audio", "piphone.panel", "piphone.calllog"),
    "piphone.twilio_setup": ("piphone.appliance", "piphone.voice", "piphone.audio",
                             "piphone.panel", "piphone.calllog"),
    "piphone.cli_exchange": ("piphone.voice", "piphone.exchange", "piphone.calllog"),
    "piphone.cli": ("piphone.voice", "piphone.audio", "piphone.panel", "piphone.calllog",
                    "piphone.exchange", "piphone.appliance", "piphone.twilio_setup",
                    "piphone.cli_exchange"),
    "piphone.__main__": ("piphone.cli",),
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES: dict[str, Path] = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name: str) -> set[str]:
    """Every module ``name`` imports, absolute, anywhere in its text (under TYPE_CHECKING and
    inside functions too: a hidden import is still a dependency a reader must follow)."""
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


def layer_of(name: str) -> str | None:
    """The layer ``name`` belongs to, or None for the bottom layer."""
    for layer in LAYERS:
        if name == layer or name.startswith(layer + "."):
            return layer
    return None


def summary(name: str) -> str:
    """The first paragraph of a module's docstring, on one line."""
    doc = ast.get_docstring(ast.parse(MODULES[name].read_text())) or ""
    return " ".join(doc.split("\n\n")[0].split()).replace("|", "\\|")


def _short(name: str) -> str:
    return name.removeprefix("piphone.") or name


def layers_part() -> str:
    rows = ["| layer | may import (besides itself and the bottom) |", "|---|---|"]
    rows += [f"| `{_short(layer)}` | {', '.join(f'`{_short(t)}`' for t in allowed) or 'nothing'} |"
             for layer, allowed in LAYERS.items()]
    bottom = sorted(_short(n) for n in MODULES if layer_of(n) is None and n != "piphone")
    rows.append(f"| bottom: {', '.join(f'`{n}`' for n in bottom)} | nothing of piphone's layers |")
    return "\n".join(rows)


def modules_part() -> str:
    rows = ["| module | its job |", "|---|---|"]
    rows += [f"| `{MODULES[name].relative_to(PACKAGE).as_posix()}` | {summary(name)} |"
             for name in MODULES if MODULES[name].name != "__main__.py"]
    return "\n".join(rows)


def call_states_part() -> str:
    # loaded from its file alone: importing piphone.voice would load aiortc for a table
    spec = importlib.util.spec_from_file_location("call_states",
                                                  PACKAGE / "voice" / "call_states.py")
    assert spec and spec.loader
    call_states = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = call_states  # dataclasses look their module up while made
    spec.loader.exec_module(call_states)

    rows = ["| event | from | when | to | do | emits |", "|---|---|---|---|---|---|"]
    for event, sources, when, to, do, emits in call_states.TRANSITIONS_TEXT:
        statuses = " ".join(call_states.GROUPS.get(w, w) for w in sources.split())
        rows.append(f"| `{event}` | {statuses} | {when or '-'} | "
                    f"{'(stays)' if to == '=' else to} | {do or '-'} | {emits or '-'} |")
    return "\n".join(rows)


PARTS = {"layers": layers_part, "modules": modules_part, "call-states": call_states_part}


def render(text: str) -> str:
    """``text`` with each generated part replaced by what the code says today."""
    for name, make in PARTS.items():
        pattern = re.compile(rf"(<!-- generated: {name} -->\n)(?:.*?\n)?(<!-- end: {name} -->)",
                             re.DOTALL)
        if not pattern.search(text):
            raise SystemExit(f"{DOCUMENT.name}: no '<!-- generated: {name} -->' part")
        body = make()
        text = pattern.sub(lambda m, body=body: m.group(1) + body + "\n" + m.group(2), text)
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="rewrite the generated parts")
    args = parser.parse_args()
    text = DOCUMENT.read_text()
    fresh = render(text)
    if args.write:
        DOCUMENT.write_text(fresh)
        return 0
    if fresh != text:
        print(f"{DOCUMENT.name} is out of date: run python scripts/architecture.py --write")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
