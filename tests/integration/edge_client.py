"""A Twilio developer's first program, run as a child process by test_twilio_edge.py under
``hostsns.with_hosts`` (so Twilio's edge names resolve to the stand-in on 127.0.0.1).

``Device(token)`` as the README shows it: no signaling URL, no TLS options; what it trusts is
the environment's (``SSL_CERT_FILE``, ``SSL_CERT_DIR``). The only options are the test's
audio (a tone out, a recorder in) and ICE on loopback (the suite's network has nothing else).
It prints one JSON object per line (what happened) and reads commands from stdin, so the test
can drive it: ``python -m tests.integration.edge_client MODE [EDGE ...]`` with the token in
``PIPHONE_TOKEN`` (kept out of ``ps``).

MODE ``register``: register, print ``registered`` (with edge, home, URL), and exit.
MODE ``refused``: the same, but exit at the first ``error`` event. MODE ``call``: register,
call the echo line until the tone comes back, post feedback, then wait for ``drop`` on stdin:
print the call's ``reconnecting`` and ``reconnected`` and hang up.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys

from piphone.pcm import Recorder, Tone, dominant_frequency
from piphone.voice import Device, TwilioError

TONE = 620.0


def say(event: str, **fields) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


def errors_of(device: Device) -> None:
    def error(err, call=None) -> None:
        say("error", code=err.code, message=err.message,
            cause=type(err.original_error).__name__ if err.original_error else None)

    device.on("error", error)


async def register(device: Device, *, until_error: bool) -> None:
    """Register; with ``until_error``, give up at the first error event (a refusal)."""
    failed = asyncio.Event()
    if until_error:
        device.on("error", lambda *_: failed.set())
    registering = asyncio.ensure_future(device.register(timeout=20))
    waiting = asyncio.ensure_future(failed.wait())
    await asyncio.wait((registering, waiting), return_when=asyncio.FIRST_COMPLETED)
    waiting.cancel()
    if not registering.done():
        registering.cancel()
        return
    try:
        registering.result()
    except TwilioError as exc:
        say("register-failed", code=exc.code, message=exc.message)
        return
    say("registered", edge=device.edge, home=device.home, url=device.signaling_url)


async def call(device: Device, recorder: Recorder) -> None:
    await device.register(timeout=20)
    say("registered", edge=device.edge, home=device.home, url=device.signaling_url)
    call = await device.connect({"To": "echo"})
    for name in ("accept", "reconnecting", "reconnected", "disconnect"):
        call.on(name, lambda *args, _n=name: say(_n))
    accepted = asyncio.Event()
    call.once("accept", lambda _call: accepted.set())
    await asyncio.wait_for(accepted.wait(), 15)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    heard = None
    while loop.time() < deadline:
        await asyncio.sleep(0.1)
        if recorder.sample_rate:
            heard = dominant_frequency(recorder.last(0.4), recorder.sample_rate)
            if heard is not None and abs(heard - TONE) < 15:
                break
    say("heard", hz=heard)
    say("feedback", posted=await asyncio.wait_for(call.post_feedback(4), 10),
        gateway=device.event_gateway)
    reconnected = asyncio.Event()
    call.once("reconnected", lambda *_: reconnected.set())
    await loop.run_in_executor(None, sys.stdin.readline)  # the test says when it dropped us
    await asyncio.wait_for(reconnected.wait(), 15)
    say("after-reconnect", url=device.signaling_url, registered=str(device.state))
    call.disconnect()
    await asyncio.wait_for(call.wait_closed(), 5)


async def main(mode: str, edges: list[str]) -> None:
    recorder = Recorder(seconds=2)
    options = {"edge": edges} if edges else {}
    device = Device(os.environ["PIPHONE_TOKEN"], ice_addresses=("127.0.0.1",),
                    audio_source=lambda: Tone(TONE), audio_sink=lambda: recorder,
                    **options)
    errors_of(device)
    try:
        if mode == "call":
            await call(device, recorder)
        else:
            await register(device, until_error=mode == "refused")
    finally:
        await device.destroy()
    say("done")


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("aioice").setLevel(logging.WARNING)
    asyncio.run(main(sys.argv[1], sys.argv[2:]))
