"""Shared plumbing for the benchmarks: network isolation, child processes, /proc sampling.

Only the standard library here: benchmark workers import this module too, and whatever it
imports would count in their resident memory.
"""

from __future__ import annotations

import atexit
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

NETNS_GUARD = "PIPHONE_BENCH_NETNS"  # set after the re-exec, so a failed isolation cannot loop


# --- network isolation ---------------------------------------------------------------------
def links() -> list[str]:
    """`ip -o link` lines: one per interface in this network namespace."""
    out = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, timeout=5,
                         check=True).stdout
    return [line for line in out.splitlines() if line.strip()]


def only_loopback() -> bool:
    names = [line.split(":", 2)[1].strip().split("@")[0] for line in links()]
    return names == ["lo"]


def ensure_isolated_network(argv: Sequence[str]) -> None:
    """Re-exec this script in a fresh network namespace unless it already has only `lo`.

    Benchmarks must never send a packet anywhere but 127.0.0.1; a private namespace makes
    that a property of the machine rather than of every config file being right.
    """
    if only_loopback():
        if not any("UP" in line.split("<", 1)[1].split(">", 1)[0].split(",")
                   for line in links()):
            subprocess.run(["ip", "link", "set", "lo", "up"], check=True, timeout=5)
        return
    if os.environ.get(NETNS_GUARD):
        sys.exit("still not in a loopback-only network namespace after unshare -n; giving up")
    env = dict(os.environ, **{NETNS_GUARD: "1"})
    cmd = ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$0" "$@"',
           sys.executable, *argv]
    os.execvpe("unshare", cmd, env)


# --- child processes -----------------------------------------------------------------------
_children: list[subprocess.Popen] = []
PR_SET_PDEATHSIG = 1
_libc = None  # loaded by the first spawn(): measured workers never spawn, never load ctypes


def _die_with_parent() -> None:
    # If the benchmark is killed outright (SIGKILL), its children must not linger.
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def spawn(cmd: Sequence[str], *, stdout=subprocess.PIPE, stderr=None, stdin=subprocess.DEVNULL,
          env: dict[str, str] | None = None, cwd: str | None = None) -> subprocess.Popen:
    """Start a child that is stopped on our exit, however we exit."""
    global _libc
    if _libc is None:
        import ctypes

        _libc = ctypes.CDLL(None)
    proc = subprocess.Popen(list(cmd), stdin=stdin, stdout=stdout, stderr=stderr, env=env,
                            cwd=cwd, preexec_fn=_die_with_parent)
    _children.append(proc)
    return proc


def stop(proc: subprocess.Popen, timeout: float = 3.0) -> None:
    """SIGTERM, then SIGKILL if it does not go within `timeout`."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)
    if proc in _children:
        _children.remove(proc)


def stop_all() -> None:
    for proc in reversed(list(_children)):
        try:
            stop(proc)
        except Exception:  # cleanup must reach every child
            pass


def _on_signal(signum: int, _frame: object) -> None:
    stop_all()
    sys.exit(128 + signum)


atexit.register(stop_all)


def install_signal_cleanup() -> None:
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _on_signal)


def wait_for_line(proc: subprocess.Popen, predicate: Callable[[str], bool], timeout: float,
                  what: str) -> str:
    """Read the child's stdout until a line satisfies `predicate`; raise on timeout or exit."""
    deadline = time.monotonic() + timeout
    stream = proc.stdout
    assert stream is not None
    os.set_blocking(stream.fileno(), False)
    pending = getattr(proc, "_bench_pending", b"")
    with selectors.DefaultSelector() as sel:
        sel.register(stream, selectors.EVENT_READ)
        while True:
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                text = line.decode(errors="replace").rstrip("\r")
                if predicate(text):
                    proc._bench_pending = pending  # type: ignore[attr-defined]
                    return text
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {what} within {timeout:.0f} s")
            if sel.select(min(left, 0.5)):
                chunk = stream.read(65536) or b""
                if not chunk and proc.poll() is not None:
                    raise RuntimeError(f"process exited (rc={proc.returncode}) before {what}")
                pending += chunk
            elif proc.poll() is not None:
                raise RuntimeError(f"process exited (rc={proc.returncode}) before {what}")


def free_port(*, also_next: bool = False) -> int:
    """A free TCP+UDP port on 127.0.0.1 (and port+1 too, for baresip's SIP/TLS listener)."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        wanted = [port, port + 1] if also_next else [port]
        if all(_port_free(p) for p in wanted):
            return port
    raise RuntimeError("no free port pair on 127.0.0.1")


def _port_free(port: int) -> bool:
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def wait_for_port(port: int, timeout: float, what: str, proc: subprocess.Popen | None = None
                  ) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited (rc={proc.returncode}) before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"{what} not listening on 127.0.0.1:{port} within {timeout:.0f} s")


def connect_nodelay(port: int, timeout: float = 5.0) -> socket.socket:
    """A TCP connection to 127.0.0.1 with Nagle off: small control messages must not wait."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


# --- netstring JSON (baresip ctrl_tcp, and our own SDP exchange) ---------------------------------
def netstring(obj: object) -> bytes:
    data = json.dumps(obj).encode()
    return b"%d:%s," % (len(data), data)


class NetstringReader:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def read(self, timeout: float) -> dict | None:
        """The next message, or None if none came within `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            message = self._parse()
            if message is not None:
                return message
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                return None
            if not chunk:
                raise ConnectionError("control connection closed")
            self.buf += chunk

    def _parse(self) -> dict | None:
        head, colon, rest = self.buf.partition(b":")
        if not colon:
            return None
        length = int(head)
        if len(rest) < length + 1:
            return None
        self.buf = rest[length + 1:]
        return json.loads(rest[:length])


# --- /proc sampling ------------------------------------------------------------------------------
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """CPU time of the whole process (all threads, live and exited), in seconds.

    /proc/PID/stat counts in clock ticks (10 ms): a call costs a few dozen ticks in a 10 s
    window, so one tick is 2-4 % of it, as large as the levers measured. The scheduler's own
    count per thread (/proc/PID/task/TID/schedstat, nanoseconds) is exact: live threads are
    read there, and exited threads (counted only in the process's ticks) by difference."""
    ticks = _ticks(f"/proc/{pid}/stat")
    live_ns = live_ticks = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                ns = int(f.read().split()[0])
            thread_ticks = _ticks(f"/proc/{pid}/task/{tid}/stat")
        except (FileNotFoundError, ProcessLookupError):  # the thread ended meanwhile
            continue
        live_ns += ns
        live_ticks += thread_ticks
    return live_ns / 1e9 + max(0, ticks - live_ticks) / CLK_TCK


def _ticks(path: str) -> int:
    """utime + stime of a /proc stat file, in clock ticks."""
    with open(path) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    return int(fields[11]) + int(fields[12])


def memory_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, RssAnon) in MB: all resident memory, and the part no other process shares
    (RssFile, the rest, is mostly shared-library pages)."""
    found: dict[str, float] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key = line.split(":", 1)[0]
            if key in ("VmRSS", "RssAnon"):
                found[key] = int(line.split()[1]) / 1024
    if len(found) != 2:
        raise RuntimeError(f"no VmRSS/RssAnon for pid {pid}")
    return found["VmRSS"], found["RssAnon"]


@dataclass
class Usage:
    cpu_per_s: float  # CPU seconds per second of wall clock (= per call-second)
    rss_mb: float  # largest VmRSS seen during the window
    private_mb: float  # largest RssAnon seen during the window


def measure(pids: Sequence[int], seconds: float,
            alive: Callable[[], None] | None = None) -> list[Usage]:
    """CPU and RSS of each pid over one shared window of `seconds`.

    `alive` is called every second and should raise if the call dropped, so that a window
    during which the call was not up is never reported.
    """
    start_cpu = [cpu_seconds(p) for p in pids]
    start = time.monotonic()
    peak = [memory_mb(p) for p in pids]
    end = start + seconds
    while (now := time.monotonic()) < end:
        time.sleep(min(1.0, end - now))
        peak = [(max(r, m[0]), max(a, m[1]))
                for (r, a), m in zip(peak, map(memory_mb, pids), strict=True)]
        if alive is not None:
            alive()
    elapsed = time.monotonic() - start
    return [Usage((cpu_seconds(p) - c0) / elapsed, rss, private)
            for p, c0, (rss, private) in zip(pids, start_cpu, peak, strict=True)]
