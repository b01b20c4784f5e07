"""What a phone's process loads: the REST client of Twilio's helper and ``requests`` (5 MB
resident, 3.5 MB private) only when a phone on Twilio needs them (a transfer, voicemail
recordings), never to start, and never on the local exchange."""

from __future__ import annotations

import subprocess
import sys

LOADED = ("import sys; import piphone.cli; import piphone.appliance.service; "
          "print(' '.join(m for m in ('requests', 'urllib3', 'twilio.rest') if m in sys.modules))")


def test_the_phone_starts_without_the_rest_client():
    loaded = subprocess.run([sys.executable, "-c", LOADED], capture_output=True, text=True,
                            check=True, timeout=60).stdout.split()
    assert loaded == []


def test_a_transfer_on_twilio_loads_the_rest_client_when_made():
    from piphone.appliance.config import AccountConfig
    from piphone.appliance.twilio_transfer import TwilioTransfer, dial

    account = AccountConfig(identity="alice", signaling_url=None, account_sid="AC" + "0" * 32,
                            api_key_sid="SK" + "0" * 32,
                            api_key_secret="s" * 32)
    transfer = TwilioTransfer.of(account)
    assert transfer is not None and type(transfer.client).__module__ == "twilio.rest"
    assert str(dial("client:bob")).endswith("<Dial><Client>bob</Client></Dial></Response>")
