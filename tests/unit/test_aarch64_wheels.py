"""Every native dependency installs from a wheel on 64-bit Raspberry Pi OS (aarch64).

A Pi Zero 2 W compiling numpy, PyAV or cryptography takes an hour or fails; README.md and
hardware/README.md tell makers to flash the 64-bit OS because PyPI has wheels for it. This test
asks PyPI, as pip on such a Pi would, for a wheel of each native dependency (the ones
pyproject.toml pulls in, directly or through aiortc and aiohttp, that ship compiled code), so a
release that drops its aarch64 wheel is noticed here rather than on a maker's Pi.

It needs the package index: scripts/test.sh runs this file once outside the loopback-only
namespace. Where PyPI cannot be reached (inside the namespace, or offline) it skips, saying so.
"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import tomllib
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from packaging.requirements import Requirement

PYPROJECT = Path(__file__).parents[2] / "pyproject.toml"
# What pip evaluates markers against on 64-bit Raspberry Pi OS Bookworm (CPython 3.11).
PI_ENV = {"platform_machine": "aarch64", "sys_platform": "linux", "platform_system": "Linux",
          "os_name": "posix", "python_version": "3.11", "python_full_version": "3.11.2",
          "platform_python_implementation": "CPython", "implementation_name": "cpython",
          "extra": ""}
# Bookworm's glibc is 2.36: pip on the Pi accepts every manylinux tag up to it. Given
# --platform, pip does not widen it to older tags itself, so each is listed.
PLATFORMS = ("manylinux2014_aarch64",
             *(f"manylinux_2_{minor}_aarch64" for minor in range(17, 37)))
# Builds from its source on the Pi, in seconds (one small C file against libasound2-dev).
BUILT_ON_THE_PI = {"pyalsaaudio"}
# Native, but not installed on this x86_64 machine, so the walk below cannot see their files.
NATIVE_ON_THE_PI_ONLY = {"lgpio"}


def project_requirements() -> list[Requirement]:
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    listed = project["dependencies"] + project["optional-dependencies"]["pi"]
    return [r for r in map(Requirement, listed)
            if r.marker is None or r.marker.evaluate(PI_ENV)]


def ships_compiled_code(name: str) -> bool:
    files = importlib.metadata.distribution(name).files or []
    return any(f.name.endswith(".so") for f in files)


def native_requirements() -> dict[str, Requirement]:
    """name -> the requirement that pulls it in, for each dependency with compiled code."""
    found: dict[str, Requirement] = {}
    seen: set[str] = set()
    todo = project_requirements()
    while todo:
        req = todo.pop()
        name = req.name.lower()
        if name in seen:
            continue
        seen.add(name)
        if name in NATIVE_ON_THE_PI_ONLY:
            found[name] = req
            continue
        try:
            if ships_compiled_code(name) and name not in BUILT_ON_THE_PI:
                found[name] = req
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue  # its marker excludes this machine too
        todo += [r for r in map(Requirement, requires)
                 if r.marker is None or r.marker.evaluate(PI_ENV)]
    return found


def test_the_walk_finds_the_known_native_dependencies() -> None:
    """The list below is not the source of truth (the walk is), but a walk that lost these
    would test nothing."""
    found = set(native_requirements())
    assert {"av", "pylibsrtp", "cryptography", "numpy", "soxr", "aiohttp", "lgpio",
            "pywebrtc-audio"} <= found, found


def index_reachable() -> str | None:
    """None when the index pip uses answers; else why not."""
    index = os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple").rstrip("/")
    try:
        with urllib.request.urlopen(f"{index}/pip/", timeout=15):
            return None
    except (urllib.error.URLError, OSError) as exc:
        return f"package index {index} unreachable ({exc}); scripts/test.sh runs this test " \
               "outside the loopback-only namespace"


@pytest.mark.parametrize("name", sorted(native_requirements()))
def test_installs_from_a_wheel_on_aarch64(name: str, tmp_path: Path) -> None:
    why = index_reachable()
    if why:
        pytest.skip(why)
    req = native_requirements()[name]
    spec = f"{req.name}{req.specifier}"
    platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
    run = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--only-binary=:all:", *platforms,
         "--python-version", "3.11", "--implementation", "cp", "--no-deps",
         "--disable-pip-version-check", "-d", str(tmp_path), spec],
        capture_output=True, text=True, timeout=300)
    wheels = list(tmp_path.glob("*.whl"))
    assert run.returncode == 0 and wheels, \
        f"no aarch64 wheel for {spec}:\n{run.stdout[-1500:]}\n{run.stderr[-1500:]}"
    assert any("aarch64" in w.name or w.name.endswith("-none-any.whl") for w in wheels), wheels
