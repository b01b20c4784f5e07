"""piphone: a Raspberry Pi desk phone that is a Twilio Voice client."""

__version__ = "0.1.0"
