"""Voicemail on Twilio: the phone reads the recordings its Function made through Twilio's REST
API with its API key (voice/recordings.py), against the stand-in of api.twilio.com under its
real name (tests/twilio_rest: a test CA only SSL_CERT_FILE trusts; /etc/hosts sends the name
to 127.0.0.1 for the process under test). The account holds this phone's two messages, one for
another phone and a recording that is no voicemail; the phone lists its own newest first,
plays one (its audio checked), keeps what it heard across a restart, and deletes one."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
import wave
from pathlib import Path

import numpy as np
import pytest

from ..hostsns import with_hosts
from ..twilio_rest import HOSTS, TwilioRest

pytestmark = pytest.mark.net

ROOT = Path(__file__).resolve().parents[2]

# Runs in the process that sees api.twilio.com on 127.0.0.1: the product's client, as the
# phone's PhoneMailbox polls it, no flag or address of the test's.
SCRIPT = """
import asyncio, json, sys
from pathlib import Path
from piphone.appliance.voicemail import PhoneMailbox
from piphone.pcm import dominant_frequency
from piphone.voice.recordings import TwilioRecordings

account, key, secret, heard, step = sys.argv[1:6]

async def main():
    mailbox = PhoneMailbox(TwilioRecordings(account, key, secret, "alice", Path(heard)),
                           lambda samples: None)
    mailbox.polled = True
    await mailbox.refresh()
    out = {"error": mailbox.last_error, "counts": [mailbox.messages, mailbox.unheard],
           "listed": [[m.sid, m.caller, m.seconds, m.heard] for m in mailbox.listing]}
    if step == "play":
        newest = mailbox.listing[0]
        audio = await mailbox.client.audio(newest.sid)
        out["heard"] = [len(audio), dominant_frequency(audio[4800:-4800], 48000)]
        await mailbox.client.heard(newest.sid)
        await mailbox.client.delete(mailbox.listing[1].sid)
        await mailbox.refresh()
        out["after"] = [mailbox.messages, mailbox.unheard]
    print(json.dumps(out))

asyncio.run(main())
"""


def wav(frequency: float, seconds: float) -> bytes:
    """What Twilio's recordings are: 8 kHz mono 16-bit PCM WAV."""
    n = np.arange(int(8000 * seconds))
    samples = (8000 * np.sin(2 * np.pi * frequency / 8000 * n)).astype("<i2")
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(samples.tobytes())
    return out.getvalue()


def phone(rest: TwilioRest, tmp_path: Path, key: tuple[str, str], step: str) -> dict:
    argv = with_hosts(tmp_path, HOSTS, [sys.executable, "-c", SCRIPT, rest.account_sid, *key,
                                        str(tmp_path / "voicemail-heard.json"), step])
    done = subprocess.run(argv, env=rest.env(PYTHONPATH=str(ROOT / "firmware")),
                          capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stderr
    assert key[1] not in done.stdout + done.stderr  # the secret never shows
    return json.loads(done.stdout)


def test_the_phone_finds_plays_and_deletes_its_voicemail_on_twilio(tmp_path):
    with TwilioRest(tmp_path) as rest:
        key = rest.add_key("piphone alice")
        now = time.time()
        older = rest.add_voicemail("+15557654321", "alice", wav(660, 2.0), when=now - 3600)
        newer = rest.add_voicemail("+15550000002", "alice", wav(440, 3.0), when=now - 60)
        rest.add_voicemail("+15550000003", "bob", wav(880, 1.0), when=now)  # another phone's
        rest.add_voicemail("+15550000004", "alice", wav(880, 1.0), when=now,
                           source="StartCallRecordingAPI")  # a recording, not a message

        first = phone(rest, tmp_path, key, "list")
        assert first["error"] is None
        assert first["listed"] == [[newer, "+15550000002", 3.0, False],
                                   [older, "+15557654321", 2.0, False]]
        assert first["counts"] == [2, 2]

        played = phone(rest, tmp_path, key, "play")
        length, frequency = played["heard"]
        assert abs(length - 3 * 48000) < 10 and abs(frequency - 440) < 10  # resampled to 48k
        assert played["after"] == [1, 0]  # the older one deleted, the newer one heard
        assert older not in rest.recordings and newer in rest.recordings

        again = phone(rest, tmp_path, key, "list")  # a restart: what was heard is kept
        assert again["listed"] == [[newer, "+15550000002", 3.0, True]]
        assert again["counts"] == [1, 0]
        # every request with the phone's API key; the only write is the one delete
        assert {r.user for r in rest.requests} == {key[0]}
        assert [(r.method, r.path.rsplit("/", 1)[-1]) for r in rest.writes()] == [
            ("DELETE", f"{older}.json")]
