"""piphone's exception tree, shared by every layer.

Leaves also inherit the built-in they resemble, so callers may catch either.
"""


class PiphoneError(Exception):
    """Base of every error piphone raises on purpose."""


class ConfigError(PiphoneError, ValueError):
    """A configuration file is wrong; the message names the file, key and line."""


class InvalidArgumentError(PiphoneError, ValueError):
    """A method was called with a value it does not accept (Twilio's InvalidArgumentError)."""


class InvalidStateError(PiphoneError, RuntimeError):
    """A method was called in a state that does not allow it (Twilio's InvalidStateError)."""
