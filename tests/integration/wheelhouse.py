"""A wheelhouse made from this venv, so that a test can pip-install piphone into a fresh venv
inside a network namespace that has no way to PyPI.

Each distribution piphone (with the given extras) needs, and the build backend its
pyproject.toml names, is packed back into a wheel from the files its RECORD lists. pip then
resolves and installs them as it would from an index (``--no-index --find-links``); what this
does not cover is downloading from PyPI and compiling sdists (pyalsaaudio) on the target.
No tool on PyPI repacks an installed distribution, hence these few lines.
"""

from __future__ import annotations

import base64
import hashlib
import re
import zipfile
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.tags import sys_tags

LEFT_OUT = {"INSTALLER", "RECORD", "REQUESTED", "direct_url.json"}  # written by the installer


def closure(root: str, extras: tuple[str, ...] = ()) -> list[metadata.Distribution]:
    """The installed distributions ``root[extras]`` depends on, all the way down (not root)."""
    found: dict[str, metadata.Distribution] = {}
    todo = [(root, set(extras))]
    while todo:
        name, wanted = todo.pop()
        for text in metadata.distribution(name).requires or []:
            req = Requirement(text)
            if req.marker and not any(req.marker.evaluate({"extra": e})
                                      for e in wanted | {""}):
                continue
            key = _normal(req.name)
            if key not in found:
                found[key] = metadata.distribution(req.name)
                todo.append((req.name, set(req.extras)))
    return list(found.values())


def repack(dist: metadata.Distribution, folder: Path) -> Path:
    """Write ``dist`` as a wheel into ``folder`` (stored, not compressed: it is unpacked once)."""
    info = next(f for f in dist.files if f.parent.name.endswith(".dist-info"))
    info_dir = info.parent.as_posix()
    tags = [line.split(":", 1)[1].strip() for line in
            (dist.read_text("WHEEL") or "").splitlines() if line.startswith("Tag:")]
    ours = {str(t) for t in sys_tags()}
    tag = next(t for t in tags if t in ours)  # e.g. py3-none-any of a py2.py3 wheel
    wheel = folder / f"{_normal(dist.name)}-{dist.version}-{tag}.whl"
    records = []
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_STORED) as zf:
        for file in dist.files:
            posix = file.as_posix()
            if (posix.startswith("..") or "__pycache__" in file.parts or file.suffix == ".pyc"
                    or (file.parent.as_posix() == info_dir and file.name in LEFT_OUT)):
                continue  # scripts are made anew from entry points; caches and installer notes
            data = Path(dist.locate_file(file)).read_bytes()
            zf.writestr(posix, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            records.append(f"{posix},sha256={digest.decode()},{len(data)}")
        records.append(f"{info_dir}/RECORD,,")
        zf.writestr(f"{info_dir}/RECORD", "\n".join(records) + "\n")
    return wheel


def build(folder: Path, root: str = "piphone", extras: tuple[str, ...] = (),
          build_backend: tuple[str, ...] = ("setuptools",)) -> list[Path]:
    """Fill ``folder`` with wheels of root's dependencies and of the build backend."""
    folder.mkdir(parents=True, exist_ok=True)
    dists = closure(root, extras) + [metadata.distribution(b) for b in build_backend]
    return [repack(d, folder) for d in {_normal(d.name): d for d in dists}.values()]


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()
