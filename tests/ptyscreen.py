"""A program on a pseudo-terminal, for tests: type keys in, read the screen out.

    async with Screen.spawn([sys.executable, "-m", "piphone.panel.terminal"]) as screen:
        await screen.wait_for(r"handset on hook")
        screen.type("h")
        await screen.wait_for(r"handset LIFTED")
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pty
import re
import subprocess
from collections.abc import AsyncIterator, Mapping, Sequence


class Screen:
    """The master end of a pseudo-terminal: what the program drew, ANSI codes stripped."""

    ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\x1b[()][A-Z0-9]")

    def __init__(self, fd: int, child: subprocess.Popen | None = None) -> None:
        self.fd = fd
        self.child = child
        self.raw = b""
        self._more = asyncio.Event()
        self._reading = True
        asyncio.get_running_loop().add_reader(fd, self._read)

    @classmethod
    @contextlib.asynccontextmanager
    async def spawn(cls, argv: Sequence[str], *, env: Mapping[str, str] | None = None,
                    columns: int = 120, lines: int = 30) -> AsyncIterator[Screen]:
        """Run ``argv`` on a new pseudo-terminal; killed on the way out if still running."""
        master, slave = pty.openpty()
        env = dict(env if env is not None else os.environ, TERM="xterm-256color",
                   COLUMNS=str(columns), LINES=str(lines))
        child = subprocess.Popen(list(argv), stdin=slave, stdout=slave, stderr=slave,
                                 env=env, close_fds=True, start_new_session=True)
        os.close(slave)
        screen = cls(master, child)
        try:
            yield screen
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
            screen.close()

    def _read(self) -> None:
        try:
            chunk = os.read(self.fd, 65536)
        except OSError:  # the child closed the terminal
            chunk = b""
        if not chunk:
            self._stop_reading()
        self.raw += chunk
        self._more.set()

    def _stop_reading(self) -> None:
        if self._reading:
            self._reading = False
            asyncio.get_running_loop().remove_reader(self.fd)

    def text(self) -> str:
        return self.ANSI.sub("", self.raw.decode(errors="ignore"))

    async def wait_for(self, pattern: str, timeout: float = 20.0) -> None:
        """Until ``pattern`` (a regex) shows in the last screenfuls drawn."""
        async def seen() -> None:
            while not re.search(pattern, self.text()[-4000:]):
                self._more.clear()
                await self._more.wait()
        try:
            await asyncio.wait_for(seen(), timeout)
        except TimeoutError:
            raise AssertionError(f"{pattern!r} not on screen:\n{self.text()[-2000:]}") from None

    def type(self, keys: str) -> None:
        os.write(self.fd, keys.encode())

    async def exited(self, timeout: float = 10.0) -> int:
        """The child's exit status, once it has exited."""
        assert self.child is not None
        return await asyncio.wait_for(asyncio.to_thread(self.child.wait), timeout)

    def close(self) -> None:
        self._stop_reading()
        os.close(self.fd)
