"""piphone: a Raspberry Pi desk phone that is a Twilio Voice client."""

import datetime

__version__ = "0.1.0"
# The day __version__ was released: update it with the version. A clock earlier than this
# cannot be right (a Pi has no real-time clock before NTP sets it), so TLS reports "clock not
# set" instead of a bad certificate (voice/tls.py). tests/unit/test_tls.py keeps it sane.
RELEASE_DATE = datetime.date(2026, 12, 7)
