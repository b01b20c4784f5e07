"""logsafe: a client's text reaches our logs and error messages escaped and bounded."""

import io
import logging

from piphone import logsafe


def test_control_characters_are_escaped_and_the_backslash_too():
    assert logsafe.text("eve\nWATCHDOG=trigger") == "eve\\nWATCHDOG=trigger"
    assert logsafe.text("a\r\tb\x00\x1b[31m\x7f\x85") == "a\\r\\tb\\x00\\x1b[31m\\x7f\\x85"
    assert logsafe.text("x\u2028y\u202ez\ufeff\ud800") == "x\\u2028y\\u202ez\\ufeff\\ud800"
    assert logsafe.text("C:\\path\\n") == "C:\\\\path\\\\n"  # a forged escape stays visible
    assert logsafe.text("plain é 😀 中文") == "plain é 😀 中文"


def test_long_values_are_cut_and_say_so():
    assert logsafe.text("x" * 300) == "x" * 200 + "...(+100 chars)"
    assert logsafe.text("\n" * 10, limit=3) == "\\n\\n\\n...(+7 chars)"
    assert logsafe.quoted(5) == "'5'"


def record_text(message, *args, exc=None) -> str:
    out = io.StringIO()
    logger = logging.getLogger("test.logsafe")
    logger.propagate = False
    handler = logsafe.handler(out)
    logger.addHandler(handler)
    try:
        if exc is None:
            logger.warning(message, *args)
        else:
            try:
                raise exc
            except Exception:
                logger.exception(message, *args)
    finally:
        logger.removeHandler(handler)
    return out.getvalue()


def test_a_forged_log_line_stays_on_its_line():
    written = record_text("session %s: dropped", "eve\nERROR piphone: forged\r\x1b[2K")
    assert written.count("\n") == 1
    assert written == "WARNING test.logsafe: session eve\\nERROR piphone: forged\\r\\x1b[2K: " \
                      "dropped\n"


def test_a_whole_record_is_bounded():
    written = record_text("%s", "z" * 100_000)
    assert len(written) < logsafe.MESSAGE_LIMIT + 100


def test_an_exception_message_is_escaped_in_the_traceback():
    written = record_text("boom", exc=ValueError("bad\nCRITICAL forged line"))
    lines = written.splitlines()
    assert lines[0] == "ERROR test.logsafe: boom"
    assert lines[1] == "Traceback (most recent call last):"
    assert lines[-1] == "ValueError: bad\\nCRITICAL forged line"
    assert not any(line.startswith("CRITICAL") for line in lines)
