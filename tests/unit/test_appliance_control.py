"""appliance/control.py: JSON lines on a unix socket; bad requests get errors, never crash."""

from __future__ import annotations

import asyncio
import json
import stat

import pytest

from piphone.appliance.control import ControlError, ControlServer, request
from piphone.errors import PiphoneError


@pytest.fixture
async def server(tmp_path):
    seen = []

    def handle(req):
        seen.append(req)
        if req["cmd"] == "status":
            return {"state": "idle", "status": "registered as alice"}
        if req["cmd"] == "mute":
            raise ControlError("mute does nothing while the phone is idle")
        if req["cmd"] == "answer":
            raise RuntimeError("boom")
        return {"state": "calling"}

    srv = ControlServer(tmp_path / "run" / "control.sock", handle)
    await srv.start()
    srv.seen = seen
    yield srv
    await srv.close()


async def raw(path, data: bytes) -> list[dict]:
    reader, writer = await asyncio.open_unix_connection(str(path))
    writer.write(data)
    await writer.drain()
    writer.write_eof()
    replies = [json.loads(line) for line in (await reader.read()).splitlines()]
    writer.close()
    return replies


async def test_requests_and_replies(server):
    assert stat.S_IMODE(server.path.stat().st_mode) == 0o660
    reply = await asyncio.to_thread(request, "status", server.path)
    assert reply == {"ok": True, "state": "idle", "status": "registered as alice"}
    reply = await asyncio.to_thread(request, "call", server.path, number="+15551234567")
    assert reply == {"ok": True, "state": "calling"}
    assert server.seen[-1] == {"cmd": "call", "number": "+15551234567"}
    reply = await asyncio.to_thread(request, "mute", server.path)
    assert reply == {"ok": False, "error": "mute does nothing while the phone is idle"}
    reply = await asyncio.to_thread(request, "answer", server.path)
    assert reply == {"ok": False, "error": "internal error: boom"}


async def test_bad_requests_get_errors_and_the_connection_goes_on(server):
    replies = await raw(server.path, b'not json\n{"cmd": "reboot"}\n[1]\n'
                        b'{"cmd": "call"}\n{"cmd": "call", "number": "1; rm -rf"}\n'
                        b'\xff\xfe\n{"cmd": "status"}\n')
    errors = [r.get("error", "") for r in replies]
    assert errors[0].startswith("not JSON")
    assert errors[1] == ("unknown cmd 'reboot' (one of status, call, hangup, answer, mute, "
                         "speaker, seen, hold, swap, transfer, conference, voicemail)")
    assert errors[2] == 'a request is an object with a "cmd"'
    assert errors[3].startswith("call needs a number") and errors[4] == errors[3]
    assert errors[5].startswith("not JSON")
    assert replies[6]["ok"] is True and len(replies) == 7
    assert [r["cmd"] for r in server.seen] == ["status"]  # nothing bad reached the phone


async def test_a_transfer_names_a_number_or_completes(server):
    replies = await raw(server.path, b'{"cmd": "transfer"}\n'
                        b'{"cmd": "transfer", "number": "200", "complete": true}\n'
                        b'{"cmd": "transfer", "complete": true, "attended": true}\n'
                        b'{"cmd": "transfer", "number": "2 00"}\n'
                        b'{"cmd": "transfer", "number": "200", "attended": "yes"}\n'
                        b'{"cmd": "transfer", "number": "client:bob", "attended": true}\n'
                        b'{"cmd": "transfer", "complete": true}\n')
    errors = [r.get("error", "") for r in replies]
    assert errors[:3] == ['transfer takes a "number" (and "attended") or "complete": true'] * 3
    assert errors[3].startswith("transfer needs a number")
    assert errors[4].startswith('transfer takes "attended" and "complete" as true or false')
    assert replies[5]["ok"] and replies[6]["ok"]
    assert server.seen[-2:] == [{"cmd": "transfer", "number": "client:bob", "attended": True},
                                {"cmd": "transfer", "complete": True}]


async def test_too_long_a_line(server):
    replies = await raw(server.path, b"x" * 10000 + b"\n")
    assert replies == [{"ok": False, "error": "request too long"}]
    assert (await asyncio.to_thread(request, "status", server.path))["ok"]


async def test_no_service(tmp_path):
    with pytest.raises(PiphoneError, match="no piphone service is running"):
        request("status", tmp_path / "nothing.sock")


async def test_close_removes_the_socket(tmp_path):
    srv = ControlServer(tmp_path / "c.sock", lambda req: {})
    await srv.start()
    await srv.close()
    assert not (tmp_path / "c.sock").exists()
    await srv.close()  # idempotent


async def test_piphone_speaker_as_users_type_it(server, monkeypatch, capsys):
    """`piphone speaker`, `piphone speaker on` and `off` (README) send the speaker button,
    or one side of it; a bad "on" is refused by the socket."""
    from piphone.cli import main

    monkeypatch.setenv("PIPHONE_CONTROL_SOCKET", str(server.path))
    for argv, sent in ((["speaker"], {"cmd": "speaker"}),
                       (["speaker", "on"], {"cmd": "speaker", "on": True}),
                       (["speaker", "off"], {"cmd": "speaker", "on": False})):
        assert await asyncio.to_thread(main, argv) == 0
        assert server.seen[-1] == sent
    assert "speaker: calling, on the headset" in capsys.readouterr().out
    replies = await raw(server.path, b'{"cmd": "speaker", "on": "yes"}\n')
    assert replies[0]["error"] == 'speaker takes "on": true or false (or nothing: the button)'


async def test_piphone_hold_and_swap_as_users_type_them(server, monkeypatch, capsys):
    """`piphone hold` and `piphone swap` (README) reach the socket as the hold and swap
    buttons."""
    from piphone.cli import main

    monkeypatch.setenv("PIPHONE_CONTROL_SOCKET", str(server.path))
    for argv, sent in ((["hold"], {"cmd": "hold"}), (["swap"], {"cmd": "swap"})):
        assert await asyncio.to_thread(main, argv) == 0
        assert server.seen[-1] == sent
    out = capsys.readouterr().out
    assert "hold: " in out and "swap: " in out


async def test_piphone_transfer_as_users_type_it(server, monkeypatch, capsys):
    """`piphone transfer NUMBER`, `--attended` and `--complete` (README) reach the socket;
    `piphone --help` lists the command; a number with --complete is refused before."""
    from piphone.cli import build_parser, main

    monkeypatch.setenv("PIPHONE_CONTROL_SOCKET", str(server.path))
    for argv, sent in ((["transfer", "200"], {"cmd": "transfer", "number": "200",
                                              "attended": False}),
                       (["transfer", "bob", "--attended"], {"cmd": "transfer", "number": "bob",
                                                            "attended": True}),
                       (["transfer", "--complete"], {"cmd": "transfer", "complete": True})):
        assert await asyncio.to_thread(main, argv) == 0
        assert server.seen[-1] == sent
    assert "transfer: " in capsys.readouterr().out
    assert await asyncio.to_thread(main, ["transfer", "200", "--complete"]) == 2
    assert await asyncio.to_thread(main, ["transfer"]) == 2
    assert "transfer takes a NUMBER, or --complete" in capsys.readouterr().err
    assert await asyncio.to_thread(main, ["conference"]) == 0
    assert server.seen[-1] == {"cmd": "conference"}
    assert "transfer" in build_parser().format_help()
    assert "conference" in build_parser().format_help()
@pytest.mark.parametrize("bad", [{"cmd": "voicemail", "action": "erase"},
                                 {"cmd": "voicemail", "action": "delete"},
                                 {"cmd": "voicemail", "action": "delete", "number": "1"},
                                 {"cmd": "voicemail", "action": "delete", "number": True}])
def test_voicemail_requests_are_checked(bad):
    from piphone.appliance.control import check

    with pytest.raises(ControlError, match="voicemail takes an action"):
        check(bad)
    assert check({"cmd": "voicemail"}) == {"cmd": "voicemail"}
    assert check({"cmd": "voicemail", "action": "delete", "number": 2})["number"] == 2
