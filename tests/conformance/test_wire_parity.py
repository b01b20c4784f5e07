"""piphone's client speaks exactly what Twilio's own client speaks: the same frame types with
the same payload keys, for the same scenarios.

The SDK's frames are kept as a golden file (golden/sdk-frames.json) for the pinned SDK
version. Both the SDK (live, against the file) and piphone are checked against it, so a new
SDK version that changes its frames fails here until `scripts/refresh_sdk_golden.sh` records
them anew and piphone is brought in line.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..conftest import until
from ..integration.helpers import Events
from .conftest import HERE, pytestmark  # noqa: F401

GOLDEN = HERE / "golden" / "sdk-frames.json"
SDK_VERSION = json.loads((HERE / "package.json").read_text())["dependencies"]["@twilio/voice-sdk"]
REFRESH = os.environ.get("PIPHONE_REFRESH_GOLDEN") == "1"
MESSAGE = {"content": {"parity": True}, "message_type": "user-defined-message"}
MESSAGE_SDK = {"content": {"parity": True}, "messageType": "user-defined-message"}


def key_paths(value: object, prefix: str = "") -> set[str]:
    """'a', 'a.b', ... for every key of nested objects (the shape, not the values)."""
    paths: set[str] = set()
    if isinstance(value, dict):
        for key, inner in value.items():
            path = f"{prefix}{key}"
            paths.add(path)
            paths |= key_paths(inner, path + ".")
    return paths


def shapes(frames: list[tuple[str, dict]]) -> dict[str, list[str]]:
    """Frame type -> the key paths its payloads carried (union over all of them)."""
    out: dict[str, set[str]] = {}
    for type_, payload in frames:
        out.setdefault(type_, set()).update(key_paths(payload))
    return {t: sorted(paths) for t, paths in sorted(out.items())}


async def sdk_scenarios(sdk_phone, piphone, wire) -> dict[str, list[str]]:
    """register; call echo with digits and a message; hang up; answer a call; hang up; reject;
    unregister."""
    browser = await sdk_phone("subject")
    await browser.wait_event("registered", source="device")
    helper = await piphone("helper")
    await browser.run("p => window.phone.connect(p)", {"To": "echo", "topic": "parity"})
    await browser.wait_event("accept")
    await browser.run("d => window.phone.sendDigits(d)", "12#")
    await until(lambda: wire.got("subject", "dtmf"), what="the SDK's digits")
    await browser.run("m => window.phone.sendMessage(m)", MESSAGE_SDK)
    await browser.wait_event("messageSent")
    await browser.run("window.phone.disconnect()")
    await browser.wait_event("disconnect")
    answered = Events(await helper.device.connect({"To": "subject"}))
    await browser.wait_event("incoming", source="device")
    await browser.run("window.phone.accept()")
    await answered.wait("accept", timeout=10)
    await browser.run("window.phone.disconnect()")
    await browser.wait_event("disconnect", count=2)
    await answered.wait("disconnect")  # one call at a time (connect() refuses a second)
    rejected = Events(await helper.device.connect({"To": "subject"}))
    await browser.wait_event("incoming", source="device", count=2)
    await browser.run("window.phone.reject()")
    await rejected.wait("disconnect")
    await browser.run("window.phone.unregister()")
    await browser.wait_event("unregistered", source="device")
    return shapes([(t, p) for i, t, p in wire.received if i == "subject"])


async def piphone_scenarios(piphone, wire) -> dict[str, list[str]]:
    """The same scenarios with piphone's Device as the subject."""
    subject = await piphone("subject")
    helper = await piphone("helper")
    call = await subject.device.connect({"To": "echo", "topic": "parity"})
    await Events(call).wait("accept", timeout=10)  # attached before the answer can arrive
    await call.send_digits("12#")
    call.send_message(MESSAGE)
    await Events(call, ("messageSent",)).wait("messageSent")
    call.disconnect()
    answered = Events(await helper.device.connect({"To": "subject"}))
    incoming = await subject.next_call()
    await incoming.accept()
    await answered.wait("accept", timeout=10)
    incoming.disconnect()
    await answered.wait("disconnect")  # one call at a time (connect() refuses a second)
    rejected = Events(await helper.device.connect({"To": "subject"}))
    (await subject.next_call()).reject()
    await rejected.wait("disconnect")
    await subject.device.unregister()
    return shapes([(t, p) for i, t, p in wire.received if i == "subject"])


async def test_the_pinned_sdk_still_sends_the_golden_frames(sdk_phone, piphone, wire):
    recorded = await sdk_scenarios(sdk_phone, piphone, wire)
    if REFRESH:
        GOLDEN.write_text(json.dumps({"sdk": SDK_VERSION, "frames": recorded}, indent=1) + "\n")
    golden = json.loads(GOLDEN.read_text())
    assert golden["sdk"] == SDK_VERSION, (
        f"{GOLDEN} was recorded with SDK {golden['sdk']}, package.json pins {SDK_VERSION}: "
        "run scripts/refresh_sdk_golden.sh")
    assert recorded == golden["frames"]


async def test_piphone_sends_what_the_sdk_sends(piphone, wire):
    golden = json.loads(GOLDEN.read_text())["frames"]
    ours = await piphone_scenarios(piphone, wire)
    assert sorted(ours) == sorted(golden), "frame types differ"
    for type_ in golden:
        assert ours[type_] == golden[type_], f"{type_}: payload keys differ"


def test_golden_file_is_where_the_refresh_script_writes(tmp_path):
    script = (HERE.parents[1] / "scripts" / "refresh_sdk_golden.sh").read_text()
    assert "PIPHONE_REFRESH_GOLDEN=1" in script and Path(__file__).name in script
