import asyncio

import pytest

from piphone.audio import devices

CARDS = """\
 0 [PCH            ]: HDA-Intel - HDA Intel PCH
                      HDA Intel PCH at 0xf7f10000 irq 33
 1 [Device         ]: USB-Audio - USB PnP Sound Device
                      C-Media Electronics Inc. USB PnP Sound Device at usb-0000:00:14.0-1
"""


@pytest.fixture
def proc(tmp_path):
    path = tmp_path / "cards"
    path.write_text(CARDS)
    return path


def test_cards_are_read_from_the_kernel_list(proc):
    cards = devices.list_cards(proc)
    assert [(c.index, c.id, c.driver, c.name) for c in cards] == [
        (0, "PCH", "HDA-Intel", "HDA Intel PCH"),
        (1, "Device", "USB-Audio", "USB PnP Sound Device")]
    assert cards[1].long_name.startswith("C-Media")
    assert devices.list_cards(proc.parent / "missing") == []


def test_headset_is_selected_by_name_or_given_explicitly(proc):
    def devices_of(spec: str) -> tuple[str, str] | None:
        return devices.HeadsetSpec.parse(spec).devices(proc)

    usb = ("plughw:CARD=Device,DEV=0",) * 2
    assert devices_of("USB") == devices_of("c-media") == devices_of("auto") == usb
    assert devices_of("hw:1,0") == ("hw:1,0", "hw:1,0")
    assert devices_of("piphone_a_play") == ("piphone_a_play", "piphone_a_play")
    assert devices_of("none") is None


def test_one_parser_for_every_headset_spec():
    """[audio] headset, `piphone call --headset`, `piphone check` and the demos all read a
    headset through HeadsetSpec.parse: a comma splits capture from playback only where a
    device name follows it (so hw:1,0 and plughw:CARD=x,DEV=0 are one device each)."""
    parse = devices.HeadsetSpec.parse
    assert parse("none").none and not parse("USB").none
    assert parse("auto") == devices.HeadsetSpec(card="USB", auto=True)
    assert parse("Jabra") == devices.HeadsetSpec(card="Jabra")
    assert parse("hw:1,0") == devices.HeadsetSpec(capture="hw:1,0", playback="hw:1,0")
    assert parse("plughw:CARD=Device,DEV=0").capture == "plughw:CARD=Device,DEV=0"
    assert parse("piphone_a_cap,piphone_a_play") == devices.HeadsetSpec(
        capture="piphone_a_cap", playback="piphone_a_play")
    assert parse("hw:1,0,hw:2,0") == devices.HeadsetSpec(capture="hw:1,0", playback="hw:2,0")
    assert parse("plughw:CARD=a,DEV=0,plughw:CARD=b,DEV=0") == devices.HeadsetSpec(
        capture="plughw:CARD=a,DEV=0", playback="plughw:CARD=b,DEV=0")


def test_no_match_names_the_setting_and_lists_the_cards(proc):
    with pytest.raises(devices.AudioDeviceError) as info:
        devices.HeadsetSpec.parse("Jabra").devices(proc)
    message = str(info.value)
    assert "'Jabra' (audio.headset)" in message and "1 Device (USB-Audio" in message
    with pytest.raises(LookupError, match="no sound cards at all"):
        devices.HeadsetSpec.parse("USB").devices(proc.parent / "missing")
    # "auto" is a USB headset if there is one: none is no headset, not an error
    assert devices.HeadsetSpec.parse("auto").devices(proc.parent / "missing") is None


async def test_watcher_notices_unplug_and_replug(proc):
    changes: asyncio.Queue = asyncio.Queue()
    watcher = devices.CardWatcher("USB", changes.put_nowait, path=proc, interval=0.01)
    assert watcher.present
    watcher.start()
    try:
        proc.write_text(CARDS.split(" 1 [")[0])  # the USB headset is gone
        assert await asyncio.wait_for(changes.get(), 2) is False
        proc.write_text(CARDS)
        assert await asyncio.wait_for(changes.get(), 2) is True
    finally:
        await watcher.close()


def test_check_command_lists_cards_and_selects(proc, monkeypatch, capsys, tmp_path):
    from piphone import cli

    monkeypatch.setattr(devices, "PROC_CARDS", proc)
    config = tmp_path / "piphone.toml"
    config.write_text('[audio]\nheadset = "usb"\n')
    assert cli.main(["check", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "0 PCH (HDA-Intel: HDA Intel PCH)" in out
    assert "headset: 1 Device (USB-Audio: USB PnP Sound Device) -> plughw:CARD=Device,DEV=0" in out
    assert cli.main(["check", "--headset", "Jabra"]) == 1
    assert "no ALSA card matches 'Jabra'" in capsys.readouterr().out


class FakeMonitor:
    """What CardWatcher needs of a pyudev monitor: a readable fd and a non-blocking poll."""

    def __init__(self) -> None:
        import os

        self._r, self._w = os.pipe()
        os.set_blocking(self._r, False)
        self.events: list[object] = []

    def fileno(self) -> int:
        return self._r

    def send(self, action: str) -> None:
        import os
        import types

        self.events.append(types.SimpleNamespace(action=action, subsystem="sound"))
        os.write(self._w, b"x")

    def poll(self, timeout=None):
        import os

        try:
            os.read(self._r, 1)
        except BlockingIOError:
            return None
        return self.events.pop(0)

    def close(self) -> None:
        import os

        os.close(self._r)
        os.close(self._w)


async def test_udev_event_makes_the_watcher_look_at_once(proc):
    """With udev, an unplug is seen at its event, not at the next poll (here: an hour)."""
    monitor = FakeMonitor()
    changes: asyncio.Queue = asyncio.Queue()
    watcher = devices.CardWatcher("USB", changes.put_nowait, path=proc, interval=3600,
                                  monitor=monitor)
    assert watcher.uses_udev
    watcher.start()
    try:
        proc.write_text(CARDS.split(" 1 [")[0])
        monitor.send("remove")
        assert await asyncio.wait_for(changes.get(), 2) is False
        proc.write_text(CARDS)
        monitor.send("add")
        assert await asyncio.wait_for(changes.get(), 2) is True
    finally:
        await watcher.close()
        monitor.close()
    assert not watcher.uses_udev


def test_no_udev_daemon_means_polling(monkeypatch, tmp_path):
    monkeypatch.setattr(devices, "UDEV_CONTROL", tmp_path / "no-udevd")
    assert devices.udev_monitor() is None
    watcher = devices.CardWatcher("USB", lambda present: None, path=tmp_path / "cards")
    assert not watcher.uses_udev and not watcher.present


def test_with_udevd_the_watcher_has_a_real_pyudev_monitor(monkeypatch, tmp_path):
    import pyudev

    control = tmp_path / "control"
    control.touch()  # as udevd's socket would be
    monkeypatch.setattr(devices, "UDEV_CONTROL", control)
    monitor = devices.udev_monitor()
    assert isinstance(monitor, pyudev.Monitor) and monitor.fileno() >= 0
    assert monitor.poll(timeout=0) is None  # nothing sent: poll never blocks the loop


def test_a_device_named_by_card_id_watches_exactly_that_card(proc):
    assert devices.card_id("plughw:CARD=Device,DEV=0") == "CARD=Device"
    assert devices.card_id("hw:1,0") is None and devices.card_id("piphone_a_cap") is None
    cards = devices.list_cards(proc)
    assert devices.select("CARD=Device", cards).index == 1
    with pytest.raises(devices.AudioDeviceError, match="'CARD=Dev'"):
        devices.select("CARD=Dev", cards)  # an id is matched whole, not as a part of a name


def test_a_headset_named_by_its_alsa_device_opens_that_device():
    """`headset = "hw:1,0"`: one device for both directions (it was split at its comma into
    capture "hw:1" and playback "0")."""
    from piphone.audio.headset import Headset

    headset = Headset.from_spec("hw:1,0")  # nothing is opened until open()
    assert (headset.capture.device, headset.playback.device, headset.card) == (
        "hw:1,0", "hw:1,0", None)
