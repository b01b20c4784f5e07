"""A client's text in our logs and error messages: escaped and bounded.

Anything a peer sends (an identity, a CallSid, custom parameters, an error message) may carry
newlines, terminal escapes or megabytes. ``text()`` makes such a value one short line before
it reaches a log or an error frame; ``SafeFormatter`` does the same to every log record, so a
value someone forgot to pass through ``text()`` still cannot forge a log line (journald starts
a new entry at every newline) or flood the journal.
"""

from __future__ import annotations

import logging
import re
import traceback
from types import TracebackType
from typing import TextIO

LIMIT = 200  # characters of one client-supplied value in a log line or an error message
MESSAGE_LIMIT = 4096  # characters of one whole log message (the backstop)

# C0 and C1 controls, DEL, line and paragraph separators, bidi overrides and other invisible
# format characters that could make a line read differently from what it says, BOM, and lone
# surrogates (not text at all). text() escapes the backslash too, so that an escape in its
# output is always ours.
_CONTROLS = ("\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f"
             "\ufeff\ufff9-\ufffb\ud800-\udfff")
_UNSAFE = re.compile(f"[\\\\{_CONTROLS}]")
# The formatter leaves backslashes alone: a value already escaped by text() stays readable.
_UNSAFE_IN_LOGS = re.compile(f"[{_CONTROLS}]")
_NAMED = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_one(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def text(value: object, limit: int = LIMIT) -> str:
    """``value`` (a string, or anything ``str()`` can show) as one printable line of at most
    ``limit`` characters of the original, escapes aside; a cut says how much was left out."""
    return _escaped(value, limit, _UNSAFE)


def _escaped(value: object, limit: int, unsafe: re.Pattern[str]) -> str:
    string = value if isinstance(value, str) else str(value)
    cut = len(string) - limit
    if cut > 0:
        string = string[:limit]
    string = unsafe.sub(_escape_one, string)
    return f"{string}...(+{cut} chars)" if cut > 0 else string


def quoted(value: object, limit: int = LIMIT) -> str:
    """``text(value)`` in single quotes, for naming a value inside a sentence."""
    return f"'{text(value, limit)}'"


class SafeFormatter(logging.Formatter):
    """A Formatter whose every record is one line (tracebacks aside) of bounded length, with
    control characters escaped, also in an exception's message."""

    def format(self, record: logging.LogRecord) -> str:
        cached = record.exc_text  # another handler's formatter may have cached it unescaped
        record.exc_text = None
        try:
            return super().format(record)
        finally:
            record.exc_text = cached

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
        record.message = _escaped(record.message, MESSAGE_LIMIT, _UNSAFE_IN_LOGS)
        return super().formatMessage(record)

    def formatException(self, ei: tuple[type[BaseException], BaseException,  # noqa: N802
                                        TracebackType | None] | tuple[None, None, None]) -> str:
        if ei[1] is None:
            return super().formatException(ei)
        return "\n".join(_traceback_lines(traceback.TracebackException.from_exception(ei[1])))


def _traceback_lines(te: traceback.TracebackException) -> list[str]:
    """A traceback as print_exception shows it, with each exception's message escaped (the
    stack lines are our source code; the message may quote a client)."""
    lines: list[str] = []
    if te.__cause__ is not None:
        lines += _traceback_lines(te.__cause__)
        lines += ["", "The above exception was the direct cause of the following exception:", ""]
    elif te.__context__ is not None and not te.__suppress_context__:
        lines += _traceback_lines(te.__context__)
        lines += ["", "During handling of the above exception, another exception occurred:",
                  ""]
    if te.stack:
        lines.append("Traceback (most recent call last):")
        lines += [line for frame in te.stack.format() for line in frame.rstrip("\n").split("\n")]
    lines += [_escaped(only.rstrip("\n"), MESSAGE_LIMIT, _UNSAFE_IN_LOGS)
              for only in te.format_exception_only()]
    return lines


def handler(stream: TextIO | None = None) -> logging.Handler:
    """A stderr (or ``stream``) handler with a SafeFormatter: what the daemons log with."""
    out: logging.Handler = logging.StreamHandler(stream)
    out.setFormatter(SafeFormatter("%(levelname)s %(name)s: %(message)s"))
    return out
