"""What a client identity and a call party (``From``/``To``) may look like.

Twilio documents a client identity as at most 121 characters, letters, digits and underscores
(anything else "will result in not being able to place or receive calls"); its own examples
also use e-mail addresses, so ``. @ + -`` are allowed too. Nothing else: no whitespace, no
control characters, nothing that could not follow ``client:`` or that would change a log line
or an sd_notify status. Both ends check: the exchange refuses a token with another identity,
``tokens.mint`` refuses to make one, and a Device refuses an invite whose parties break these
rules before it shows or logs them.
"""

from __future__ import annotations

import re

MAX_IDENTITY = 121
RULE = f"1-{MAX_IDENTITY} letters, digits or _ . @ + -"
_IDENTITY = re.compile(r"[A-Za-z0-9_.@+-]{1," + str(MAX_IDENTITY) + "}")
# A SIP address as Twilio may put in From (sip:alice@example.com;transport=tls): printable
# ASCII without spaces, quotes, backslashes or angle brackets.
_SIP = re.compile(r"sips?:[A-Za-z0-9_.!~*'()&=+$,;?/%@:\[\]#-]{1,250}")
MAX_PARTY = 256


def is_identity(value: object) -> bool:
    """A client identity Twilio would accept (and piphone logs and shows safely)."""
    return isinstance(value, str) and _IDENTITY.fullmatch(value) is not None


def is_party(value: object) -> bool:
    """A ``From``/``To`` of a call: ``client:NAME``, a number, a SIP address, or a bare
    identity-like word (``alice``, ``+15551234567``, ``anonymous``)."""
    if not isinstance(value, str) or len(value) > MAX_PARTY:
        return False
    if value.startswith("client:"):
        return is_identity(value[len("client:"):])
    if value.startswith(("sip:", "sips:")):
        return _SIP.fullmatch(value) is not None
    return is_identity(value)
