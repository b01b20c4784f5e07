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
    assert devices.resolve("USB", proc) == "plughw:CARD=Device,DEV=0"
    assert devices.resolve("c-media", proc) == "plughw:CARD=Device,DEV=0"
    assert devices.resolve("hw:1,0", proc) == "hw:1,0"
    assert devices.resolve("piphone_a_play", proc) == "piphone_a_play"


def test_no_match_names_the_setting_and_lists_the_cards(proc):
    with pytest.raises(devices.AudioDeviceError) as info:
        devices.resolve("Jabra", proc)
    message = str(info.value)
    assert "'Jabra' (audio.headset)" in message and "1 Device (USB-Audio" in message
    with pytest.raises(LookupError, match="no sound cards at all"):
        devices.resolve("USB", proc.parent / "missing")


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
