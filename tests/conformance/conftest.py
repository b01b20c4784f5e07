"""Twilio's own Voice JavaScript SDK (pinned in package.json) in headless Chromium, against
piphone's exchange over wss:// and piphone's client, all on 127.0.0.1.

Nothing here is skipped when the browser or the SDK is missing: scripts/install.sh installs
both, and a missing one fails the suite with a message that says so.
"""

from __future__ import annotations

import contextlib
import shutil
import ssl
import time
import wave
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import numpy as np
import pytest

from piphone.exchange.server import Exchange
from piphone.exchange.tls import server_context
from piphone.voice.tokens import mint

from ..tlscert import self_signed

HERE = Path(__file__).parent
SDK = HERE / "node_modules" / "@twilio" / "voice-sdk" / "dist" / "twilio.min.js"
PAGE = HERE / "page"
ORIGIN = "http://127.0.0.1:9"  # never dialled: playwright serves the page from disk
BROWSER_TONE = 600.0  # Hz: the browser's fake microphone plays this (a WAV made here)
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--allow-loopback-in-peer-connection",
    "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
    "--ignore-certificate-errors", "--autoplay-policy=no-user-gesture-required",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--no-first-run", "--disable-gpu", "--disable-quic",
    # A page playwright serves from disk has no address space; Chromium would then treat
    # wss://127.0.0.1 as a local-network request from a public page and block it.
    "--disable-features=LocalNetworkAccessChecks,PrivateNetworkAccessRespectPreflightResults",
]

pytestmark = pytest.mark.net

# Timings the suite measures, printed at its end: name -> seconds (one list per name).
TIMINGS: dict[str, list[float]] = {}


def timing(name: str, seconds: float) -> None:
    TIMINGS.setdefault(name, []).append(seconds)


def pytest_terminal_summary(terminalreporter) -> None:
    if TIMINGS:
        terminalreporter.section("conformance timings (Twilio SDK <-> piphone, 127.0.0.1)")
        for name, values in TIMINGS.items():
            shown = ", ".join(f"{v * 1000:.0f}" for v in values)
            terminalreporter.write_line(f"{name}: {shown} ms")


def chromium_path() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.fail("Debian's chromium is not installed: run scripts/install.sh")
    if not SDK.exists():
        pytest.fail(f"{SDK} is missing: run scripts/install.sh (npm ci in tests/conformance)")
    return path


@pytest.fixture
def tone_wav(tmp_path) -> Path:
    path = tmp_path / "browser-mic.wav"
    t = np.arange(48_000 * 2) / 48_000
    samples = (8000 * np.sin(2 * np.pi * BROWSER_TONE * t)).astype("<i2")
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(48_000)
        f.writeframes(samples.tobytes())
    return path


@pytest.fixture
async def exchange(exchange_cfg, tmp_path) -> AsyncIterator[Exchange]:
    """The exchange over wss:// (the SDK only speaks TLS) with a self-signed certificate."""
    cert, key = self_signed(tmp_path)
    exchange = Exchange(exchange_cfg)
    await exchange.start(host="127.0.0.1", port=0, ssl_context=server_context(cert, key))
    exchange.client_tls = ssl.create_default_context(cafile=str(cert))  # for piphone clients
    try:
        yield exchange
    finally:
        await exchange.close()


@pytest.fixture
async def browser(tone_wav):
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(
            executable_path=chromium_path(), headless=True,
            args=CHROMIUM_FLAGS + [f"--use-file-for-fake-audio-capture={tone_wav}"])
        try:
            yield chromium
        finally:
            await chromium.close()


class SdkPhone:
    """One page running Twilio's SDK: call window.phone's methods, read window.log."""

    def __init__(self, page, identity: str) -> None:
        self.page = page
        self.identity = identity

    async def run(self, expression: str, arg=None):
        """Evaluate ``expression`` (a function of ``arg`` when given) in the page."""
        return await self.page.evaluate(expression, arg)

    async def log(self, source: str | None = None) -> list[dict]:
        entries = await self.page.evaluate("window.log")
        return [e for e in entries if source is None or e["source"] == source]

    async def names(self, source: str = "call") -> list[str]:
        """Event names in order, without the once-a-second ``sample``."""
        return [e["name"] for e in await self.log(source) if e["name"] != "sample"]

    async def wait_event(self, name: str, source: str = "call", count: int = 1,
                         timeout: float = 10.0) -> dict:
        """The count-th ``name`` event, waited for in the page (no polling from here)."""
        await self.page.wait_for_function(
            "([s, n, c]) => window.log.filter(e => e.source === s && e.name === n).length >= c",
            arg=[source, name, count], timeout=timeout * 1000)
        return [e for e in await self.log(source) if e["name"] == name][count - 1]

    async def state(self) -> dict:
        return await self.page.evaluate("window.phone.state()")

    async def remote_peak(self, ms: int = 600) -> float | None:
        return await self.page.evaluate("ms => window.phone.remotePeak(ms)", ms)


@pytest.fixture
async def sdk_phone(browser, exchange) -> AsyncIterator[Callable[..., SdkPhone]]:
    contexts = []

    async def serve(route) -> None:
        url = route.request.url
        if not url.startswith(ORIGIN + "/"):
            await route.abort()  # the page reaches nothing but what we serve
            return
        name = url[len(ORIGIN) + 1:].split("?", 1)[0] or "index.html"
        path = SDK if name == "twilio.min.js" else PAGE / name
        if not path.is_file():
            await route.fulfill(status=404, body="not found")
            return
        kind = "text/html" if name.endswith(".html") else "application/javascript"
        await route.fulfill(status=200, body=path.read_bytes(), content_type=kind)

    async def factory(identity: str, *, register: bool = True, token: str | None = None,
                      options: dict | None = None) -> SdkPhone:
        context = await browser.new_context()
        contexts.append(context)
        page = await context.new_page()
        page.on("console", lambda m: m.type == "error" and "Failed to load resource"
                not in m.text and print(f"[{identity}] {m.text}"))
        await page.route("**/*", serve)
        await page.goto(f"{ORIGIN}/index.html")
        token = token or mint(identity=identity, ttl=600, **exchange.config.token_kwargs())
        phone = SdkPhone(page, identity)
        await page.evaluate("([t, c, o]) => window.phone.setup(t, c, o)",
                            [token, f"127.0.0.1:{exchange.port}", options or {}])
        if register:
            started = time.monotonic()
            await page.evaluate("window.phone.register()")
            timing("SDK register() -> registered", time.monotonic() - started)
        return phone

    yield factory
    for context in contexts:
        with contextlib.suppress(Exception):
            await context.pages[0].evaluate("window.phone.destroy()")
        with contextlib.suppress(Exception):
            await context.close()


@pytest.fixture
def piphone(make_phone, exchange):
    """piphone Devices on the same wss:// exchange, trusting its test certificate."""

    async def factory(identity: str, **options):
        return await make_phone(identity, ssl_context=exchange.client_tls, **options)

    return factory
