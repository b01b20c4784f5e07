#!/usr/bin/env python3
"""What one party of a call costs: CPU seconds per call-second and resident memory.

Three rows, measured in one run over the same window length, each process alone:

  baresip agent     two baresip agents call each other by SIP URI (ausine -> Opus)
  bare aiortc peer  two RTCPeerConnections, one per process, 440 Hz sine -> Opus
  piphone client    one piphone Device in a call to the exchange's echo line

and, with ``--only together``, the CPU goal in the same windows: the baresip pair and a
piphone client running at once, measured over the same seconds (rows measured one after the
other move apart with a shared machine's load), ``--windows`` of them one after the other in
the same calls; the goal is judged on the median ratio (one window's ratio moves by +-20 %
between windows on the 2-core test machine).

Measured here, a baresip agent costs about 0.037 CPU-s per call-second, not the 0.017 once
quoted for this kind of machine: about 0.03 of it is the thread that makes the 48 kHz stereo
sine and encodes Opus (lower Opus complexity or a 28 kbit/s bitrate only bring it to about
0.035), and the main thread about 0.009. The ratios use the figure measured in the same run.

Usage:  .venv/bin/python scripts/bench/call_cost.py [--seconds 10]

It re-executes itself under `unshare -n` (a private network namespace holding only `lo`)
unless it already runs in one, so no packet can leave 127.0.0.1. Being root is needed for
that; the equivalent by hand is
    unshare -n sh -c 'ip link set lo up && exec .venv/bin/python scripts/bench/call_cost.py'

Workers (`--worker aiortc-peer|piphone-client`) are this same file run as a child; they
import only what their row needs, so their RSS is theirs.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _breakdown  # noqa: E402
import _common as common  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
FIRMWARE = REPO / "firmware"
BARESIP = shutil.which("baresip") or "/usr/bin/baresip"
BARESIP_MODULES = "/usr/lib/baresip/modules"

# issue 19's goals, as ratios or bounds measured in the same run
GOAL_CPU_RATIO = 1.5  # piphone client's CPU per call-second, x a baresip agent's
GOAL_RSS_MB = 70.0  # resident memory in a call
GOAL_PRIVATE_MB = 30.0  # private (anonymous) memory in a call
GOAL_FORWARDED_PER_CORE = 100  # forwarded calls one exchange core carries

READY = "BENCH READY"  # a worker prints this once its call carries audio both ways
LISTENING = "BENCH LISTENING"


@dataclass
class Row:
    name: str
    usage: common.Usage | None
    note: str = ""


@dataclass
class Options:
    seconds: float
    warmup: float
    timeout: float
    windows: int = 1  # the together row's windows, one after the other in the same calls


# =================================================================================================
# baresip
# =================================================================================================
def baresip_config(sip_port: int, ctrl_port: int, name: str) -> str:
    """A minimal agent: Opus only, sine source, a player that plays nowhere, ctrl_tcp control.

    - net_interface must be an address: the interface name `lo` is rejected in 1.0.0.
    - aubridge is the null player: the far end's Opus is still decoded (that happens on
      receipt), but the bridge device has no source attached, so nothing is played.
    - menu.so provides the `dial`/`hangup` commands and auto-answer; its status line is
      turned off (statmode_default), or it would print ten times a second.
    """
    return f"""\
poll_method\t\tepoll
sip_listen\t\t127.0.0.1:{sip_port}
net_interface\t\t127.0.0.1
call_local_timeout\t30
call_max_calls\t\t1
audio_player\t\taubridge,null_{name}
audio_alert\t\taubridge,alert_{name}
audio_source\t\tausine,440
audio_level\t\tno
rtp_stats\t\tno
rtcp_mux\t\tno
module_path\t\t{BARESIP_MODULES}
module\t\t\topus.so
module\t\t\tausine.so
module\t\t\taubridge.so
module_tmp\t\taccount.so
module_app\t\tmenu.so
module_app\t\tctrl_tcp.so
ctrl_tcp_listen\t\t127.0.0.1:{ctrl_port}
statmode_default\toff
"""


def baresip_account(user: str, auto_answer: bool) -> str:
    # regint=0: no registrar, the agents reach each other by URI.
    mode = ";answermode=auto" if auto_answer else ""
    return f"<sip:{user}@127.0.0.1>;regint=0;audio_codecs=opus/48000/2{mode}\n"


@dataclass
class Agent:
    name: str
    proc: subprocess.Popen
    ctrl: common.NetstringReader
    log: Path


def start_agent(root: Path, name: str, auto_answer: bool, timeout: float) -> tuple[Agent, int]:
    """One baresip in its own config dir; returns it and its SIP port."""
    # baresip also opens SIP/TLS on sip_port+1, so that one must be free too.
    sip_port = common.free_port(also_next=True)
    ctrl_port = common.free_port()
    conf = root / name
    conf.mkdir()
    (conf / "config").write_text(baresip_config(sip_port, ctrl_port, name))
    (conf / "accounts").write_text(baresip_account(name, auto_answer))
    log = root / f"{name}.log"
    with open(log, "wb") as out:
        proc = common.spawn([BARESIP, "-f", str(conf)], stdout=out, stderr=subprocess.STDOUT)
    common.wait_for_port(ctrl_port, timeout, f"baresip {name} ctrl_tcp", proc)
    sock = common.connect_nodelay(ctrl_port)
    return Agent(name, proc, common.NetstringReader(sock), log), sip_port


def ctrl_command(agent: Agent, command: str, params: str = "") -> None:
    agent.ctrl.sock.sendall(common.netstring(
        {"command": command, "params": params, "token": command}))


def wait_events(agent: Agent, kinds: set[str], timeout: float) -> None:
    """Read ctrl_tcp events until each of `kinds` was seen, in any order.

    Fails on an error response, CALL_CLOSED, or timeout.
    """
    missing = set(kinds)
    deadline = time.monotonic() + timeout
    while missing and (left := deadline - time.monotonic()) > 0:
        msg = agent.ctrl.read(left)
        if msg is None:
            break
        if msg.get("response") and not msg.get("ok"):
            raise RuntimeError(f"baresip {agent.name}: {msg.get('data', '').strip()}")
        if msg.get("type") == "CALL_CLOSED":
            raise RuntimeError(f"baresip {agent.name}: call closed ({msg.get('param')})")
        missing.discard(msg.get("type"))
    if missing:
        raise TimeoutError(f"baresip {agent.name}: no {', '.join(sorted(missing))} "
                           f"within {timeout:.0f} s")


def agent_alive(agent: Agent) -> None:
    """Raise if the agent exited or its call closed (drains pending events)."""
    if agent.proc.poll() is not None:
        raise RuntimeError(f"baresip {agent.name} exited (rc={agent.proc.returncode})")
    while (msg := agent.ctrl.read(0)) is not None:
        if msg.get("type") == "CALL_CLOSED":
            raise RuntimeError(f"baresip {agent.name}: call closed ({msg.get('param')})")


def bench_baresip(opts: Options) -> Row:
    if not os.path.exists(BARESIP):
        return Row("baresip agent", None, "baresip not installed")
    with tempfile.TemporaryDirectory(prefix="bench-baresip-") as tmp:
        root = Path(tmp)
        agents: list[Agent] = []
        try:
            callee, callee_port = start_agent(root, "b", auto_answer=True, timeout=opts.timeout)
            agents.append(callee)
            caller, _ = start_agent(root, "a", auto_answer=False, timeout=opts.timeout)
            agents.append(caller)
            ctrl_command(caller, "dial", f"sip:b@127.0.0.1:{callee_port}")
            for agent in (caller, callee):  # answered, and RTP arriving from the other side
                wait_events(agent, {"CALL_ESTABLISHED", "CALL_RTPESTAB"}, opts.timeout)
            time.sleep(opts.warmup)
            usage = common.measure([caller.proc.pid, callee.proc.pid], opts.seconds,
                                   alive=lambda: [agent_alive(a) for a in agents])
            ctrl_command(caller, "hangup")
        except Exception as exc:
            return Row("baresip agent", None, f"failed: {exc}; logs: {tail_logs(agents)}")
        finally:
            for agent in agents:
                agent.ctrl.sock.close()
                common.stop(agent.proc)
    return average("baresip agent", usage, ("caller", "callee"))


def tail_logs(agents: list[Agent]) -> str:
    parts = []
    for agent in agents:
        try:
            lines = agent.log.read_text(errors="replace").splitlines()[-4:]
        except OSError:
            lines = []
        parts.append(f"[{agent.name}] " + " | ".join(lines))
    return " ".join(parts)


def average(name: str, usage: list[common.Usage], labels: tuple[str, ...]) -> Row:
    """One row from two symmetric processes: their mean, with each one in the note."""
    mean = common.Usage(sum(u.cpu_per_s for u in usage) / len(usage),
                        sum(u.rss_mb for u in usage) / len(usage),
                        sum(u.private_mb for u in usage) / len(usage))
    note = ", ".join(f"{label} {u.cpu_per_s:.4f} CPU-s/s {u.rss_mb:.1f} MB"
                     for label, u in zip(labels, usage, strict=True))
    return Row(name, mean, f"mean of 2 ({note})")


# =================================================================================================
# bare aiortc
# =================================================================================================
def worker_cmd(*args: str) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "--worker", *args]


def bench_aiortc(opts: Options) -> Row:
    port = common.free_port()
    try:
        offerer = common.spawn(worker_cmd("aiortc-peer", "--role", "offer", "--port", str(port)))
        common.wait_for_line(offerer, lambda s: s == LISTENING, opts.timeout, "offerer socket")
        answerer = common.spawn(worker_cmd("aiortc-peer", "--role", "answer",
                                           "--port", str(port)))
        for proc, label in ((offerer, "offerer"), (answerer, "answerer")):
            common.wait_for_line(proc, lambda s: s == READY, opts.timeout, f"{label} media")
        time.sleep(opts.warmup)
        usage = common.measure([offerer.pid, answerer.pid], opts.seconds,
                               alive=lambda: procs_alive(offerer, answerer))
    except Exception as exc:
        return Row("bare aiortc peer", None, f"failed: {exc}")
    finally:
        common.stop_all()
    return average("bare aiortc peer", usage, ("offerer", "answerer"))


def procs_alive(*procs: subprocess.Popen) -> None:
    for proc in procs:
        if proc.poll() is not None:
            raise RuntimeError(f"worker pid {proc.pid} exited (rc={proc.returncode})")


async def aiortc_peer(role: str, port: int) -> None:
    """One RTCPeerConnection sending a sine, draining what it receives; SDP over TCP."""
    import asyncio
    import json
    import signal
    import socket

    import aioice.ice

    # aioice leaves loopback out of host candidates; in a lo-only namespace that is all.
    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription

    SineTrack = make_sine_track_class()
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))  # [] : no public STUN server
    got_audio = asyncio.Event()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    @pc.on("track")
    def on_track(track) -> None:
        asyncio.ensure_future(drain(track, got_audio))

    def add_sine() -> None:
        pc.addTrack(SineTrack(440.0))
        opus = [c for c in RTCRtpSender.getCapabilities("audio").codecs
                if c.mimeType.lower() == "audio/opus"]
        for transceiver in pc.getTransceivers():
            transceiver.setCodecPreferences(opus)

    async def exchange(reader, writer) -> None:
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if role == "offer":
            add_sine()
            await pc.setLocalDescription(await pc.createOffer())  # gathers all candidates
            writer.write(json.dumps({"sdp": pc.localDescription.sdp}).encode() + b"\n")
            await writer.drain()
            answer = json.loads(await reader.readline())
            await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))
        else:
            offer = json.loads(await reader.readline())
            await pc.setRemoteDescription(RTCSessionDescription(offer["sdp"], "offer"))
            add_sine()  # attaches to the transceiver the offer created
            await pc.setLocalDescription(await pc.createAnswer())
            writer.write(json.dumps({"sdp": pc.localDescription.sdp}).encode() + b"\n")
            await writer.drain()
        writer.close()

    if role == "offer":
        done = asyncio.Event()

        async def on_client(reader, writer) -> None:
            await exchange(reader, writer)
            done.set()

        server = await asyncio.start_server(on_client, "127.0.0.1", port)
        print(LISTENING, flush=True)
        await asyncio.wait_for(done.wait(), 30)
        server.close()
    else:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port), 10)
        await asyncio.wait_for(exchange(reader, writer), 30)

    await asyncio.wait_for(got_audio.wait(), 20)
    print(READY, flush=True)
    await stop.wait()
    await asyncio.wait_for(pc.close(), 5)


async def drain(track, first_frame) -> None:
    """Read and discard: aiortc queues decoded frames without bound until someone reads."""
    from aiortc.mediastreams import MediaStreamError

    try:
        while True:
            await track.recv()
            first_frame.set()
    except MediaStreamError:
        pass


def make_sine_track_class():
    """SineTrack, defined lazily so the parent process never imports aiortc or numpy."""
    import asyncio
    import fractions
    import math

    import av
    import numpy as np
    from aiortc.mediastreams import MediaStreamTrack

    rate, samples = 48_000, 960  # 20 ms frames

    class SineTrack(MediaStreamTrack):
        """A paced mono s16 sine at -12 dBFS: the least a real-time audio source can do."""

        kind = "audio"

        def __init__(self, frequency: float) -> None:
            super().__init__()
            self._step = 2 * math.pi * frequency / rate
            self._amplitude = 32767 * 10 ** (-12 / 20)
            self._start: float | None = None
            self._pts = 0

        async def recv(self):
            loop = asyncio.get_running_loop()
            if self._start is None:
                self._start = loop.time()
            else:
                self._pts += samples
                wait = self._start + self._pts / rate - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
            n = np.arange(self._pts, self._pts + samples)
            pcm = (self._amplitude * np.sin(self._step * n)).astype(np.int16)
            frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16",
                                               layout="mono")
            frame.sample_rate = rate
            frame.pts = self._pts
            frame.time_base = fractions.Fraction(1, rate)
            return frame

    return SineTrack


# =================================================================================================
# piphone
# =================================================================================================
@contextlib.contextmanager
def running_exchange(opts: Options):
    """A piphone exchange on 127.0.0.1 from the starter config; yields (config, url, proc, env).
    Raises with the tail of its log when it does not start."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (str(FIRMWARE), os.environ.get("PYTHONPATH", "")) if p))
    with tempfile.TemporaryDirectory(prefix="bench-piphone-") as tmp:
        config = Path(tmp) / "exchange.toml"
        log = Path(tmp) / "exchange.log"
        try:
            init = subprocess.run(
                [sys.executable, "-m", "piphone", "exchange", "--init-config", str(config)],
                env=env, capture_output=True, text=True, timeout=opts.timeout, cwd=tmp)
            if init.returncode != 0 or not config.exists():
                raise RuntimeError("piphone exchange --init-config failed: "
                                   + (init.stderr.strip().splitlines() or ["?"])[-1])
            offer_loopback(config)
            port = common.free_port(also_next=True)  # the event gateway takes port + 1
            with open(log, "wb") as out:
                exchange = common.spawn(
                    [sys.executable, "-m", "piphone", "exchange", "--config", str(config),
                     "--host", "127.0.0.1", "--port", str(port)],
                    env=env, stdout=out, stderr=subprocess.STDOUT, cwd=tmp)
            common.wait_for_port(port, opts.timeout, "piphone exchange", exchange)
            yield config, f"ws://127.0.0.1:{port}/signal", exchange, dict(env, cwd=tmp)
        except Exception as exc:
            tail = " | ".join(log.read_text(errors="replace").splitlines()[-4:]) \
                if log.exists() else ""
            raise RuntimeError(f"{exc}" + (f"; exchange log: {tail}" if tail else "")) from exc
        finally:
            common.stop_all()


def spawn_worker(env: dict[str, str], *args: str) -> subprocess.Popen:
    env = dict(env)
    cwd = env.pop("cwd")
    return common.spawn(worker_cmd(*args), env=env, cwd=cwd)


def bench_piphone(opts: Options, wav: str | None = None) -> Row:
    """One piphone Device calling the exchange's echo line; the client is measured alone.
    ``wav``: it sends that file's speech (looped) instead of the 440 Hz tone."""
    name = "piphone client"
    try:
        with running_exchange(opts) as (config, url, exchange, env):
            client = spawn_worker(env, "piphone-client", "--config", str(config), "--url", url,
                                  *(["--wav", wav] if wav else []))
            common.wait_for_line(client, lambda s: s == READY, opts.timeout, "piphone call")
            time.sleep(opts.warmup)
            usage = common.measure([client.pid], opts.seconds,
                                   alive=lambda: procs_alive(client, exchange))[0]
    except Exception as exc:
        return Row(name, None, f"failed: {exc}")
    return Row(name, usage, "one process, quality monitor on; exchange not counted")


def bench_forwarded(opts: Options) -> list[Row]:
    """Two piphone clients call each other through the exchange (both Opus: it forwards);
    the exchange's CPU is that of one forwarded call."""
    names = ("exchange/fwd call", "piphone caller")
    try:
        with running_exchange(opts) as (config, url, exchange, env):
            callee = spawn_worker(env, "piphone-callee", "--config", str(config), "--url", url,
                                  "--identity", "bench-b")
            common.wait_for_line(callee, lambda s: s == LISTENING, opts.timeout,
                                 "callee registered")
            caller = spawn_worker(env, "piphone-client", "--config", str(config), "--url", url,
                                  "--to", "bench-b", "--identity", "bench-a")
            for proc, what in ((caller, "caller"), (callee, "callee")):
                common.wait_for_line(proc, lambda s: s == READY, opts.timeout, f"{what} audio")
            time.sleep(opts.warmup)
            ex, call = common.measure([exchange.pid, caller.pid], opts.seconds,
                                      alive=lambda: procs_alive(caller, callee, exchange))
    except Exception as exc:
        return [Row(names[0], None, f"failed: {exc}")]
    return [Row(names[0], ex, "the exchange process, one call between two piphone clients"),
            Row(names[1], call, "the same call's caller, for comparison")]


def bench_uvloop(opts: Options) -> list[Row]:
    """Lever: uvloop. Two piphone clients call the echo line at once, one on asyncio's own
    event loop, one on uvloop, measured over the same window (a ratio, whatever the load).
    Skipped when uvloop cannot be imported."""
    probe = subprocess.run([sys.executable, "-c", "import uvloop"], capture_output=True)
    if probe.returncode != 0:
        return [Row("client on uvloop", None, "uvloop not installed")]
    try:
        with running_exchange(opts) as (config, url, exchange, env):
            workers = [spawn_worker(env, "piphone-client", "--config", str(config), "--url",
                                    url, "--identity", f"bench-{loop}", "--loop", loop)
                       for loop in ("asyncio", "uvloop")]
            for proc in workers:
                common.wait_for_line(proc, lambda s: s == READY, opts.timeout, "call")
            time.sleep(opts.warmup)
            usage = common.measure([w.pid for w in workers], opts.seconds,
                                   alive=lambda: procs_alive(*workers, exchange))
    except Exception as exc:
        return [Row("client on uvloop", None, f"failed: {exc}")]
    ratio = usage[1].cpu_per_s / usage[0].cpu_per_s
    return [Row("client on asyncio", usage[0], "A/B with the row below, same window"),
            Row("client on uvloop", usage[1], f"{ratio:.2f}x the asyncio client's CPU")]


def bench_together(opts: Options) -> list[Row]:
    """The CPU goal in one window: a baresip pair in its call and a piphone client calling the
    echo line, all running at once and measured over the same seconds, so that the ratio does
    not move with the load of a shared machine between rows (the rows above are measured one
    after the other)."""
    names = ("baresip (together)", "piphone (together)")
    if not os.path.exists(BARESIP):
        return [Row(names[0], None, "baresip not installed")]
    with tempfile.TemporaryDirectory(prefix="bench-baresip-") as tmp:
        agents: list[Agent] = []
        try:
            callee, callee_port = start_agent(Path(tmp), "b", auto_answer=True,
                                              timeout=opts.timeout)
            agents.append(callee)
            caller, _ = start_agent(Path(tmp), "a", auto_answer=False, timeout=opts.timeout)
            agents.append(caller)
            ctrl_command(caller, "dial", f"sip:b@127.0.0.1:{callee_port}")
            for agent in (caller, callee):
                wait_events(agent, {"CALL_ESTABLISHED", "CALL_RTPESTAB"}, opts.timeout)
            with running_exchange(opts) as (config, url, exchange, env):
                client = spawn_worker(env, "piphone-client", "--config", str(config), "--url",
                                      url)
                common.wait_for_line(client, lambda s: s == READY, opts.timeout, "piphone call")
                time.sleep(opts.warmup)
                windows = [common.measure(
                    [caller.proc.pid, callee.proc.pid, client.pid], opts.seconds,
                    alive=lambda: ([agent_alive(x) for x in agents],
                                   procs_alive(client, exchange)))
                    for _ in range(opts.windows)]
            ctrl_command(caller, "hangup")
        except Exception as exc:
            return [Row(names[0], None, f"failed: {exc}; logs: {tail_logs(agents)}")]
        finally:
            for agent in agents:
                agent.ctrl.sock.close()
                common.stop(agent.proc)
    TOGETHER_RATIOS[:] = [p.cpu_per_s / ((a.cpu_per_s + b.cpu_per_s) / 2)
                          for a, b, p in windows if a.cpu_per_s + b.cpu_per_s > 0]
    if not TOGETHER_RATIOS:
        return [Row(names[0], None, "the baresip agents used no CPU: no ratio")]
    ratio = statistics.median(TOGETHER_RATIOS)
    a, b, p = (mean_usage([w[i] for w in windows]) for i in range(3))
    base = average(names[0], [a, b], ("caller", "callee"))
    verdict = "met" if ratio <= GOAL_CPU_RATIO else "MISSED"
    spread = (f"median of {len(windows)} windows, {min(TOGETHER_RATIOS):.2f}-"
              f"{max(TOGETHER_RATIOS):.2f}" if len(windows) > 1 else "one window")
    return [base, Row(names[1], p, f"{ratio:.2f}x the baresip agent's CPU in the same window "
                                   f"({spread}; goal {GOAL_CPU_RATIO}x: {verdict})")]


def mean_usage(usage: list[common.Usage]) -> common.Usage:
    """One process over several windows: mean CPU, peak memory."""
    return common.Usage(statistics.fmean(u.cpu_per_s for u in usage),
                        max(u.rss_mb for u in usage), max(u.private_mb for u in usage))


TOGETHER_RATIOS: list[float] = []  # piphone / baresip agent, per window of the together row
BREAKDOWN: dict[str, float] = {}


def bench_breakdown(opts: Options) -> list[Row]:
    """A piphone client calling the echo line with _breakdown.py's clocks in: where its CPU
    goes. Measured apart (the clocks cost CPU); reported as shares of its own CPU."""
    try:
        with running_exchange(opts) as (config, url, exchange, env):
            client = spawn_worker(env, "piphone-client", "--config", str(config), "--url", url,
                                  "--profile")
            common.wait_for_line(client, lambda s: s == READY, opts.timeout, "profiled call")
            deadline = time.monotonic() + opts.seconds
            while time.monotonic() < deadline:
                time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
                procs_alive(client, exchange)
            common.stop(client)
            line = common.wait_for_line(client, lambda s: s.startswith("BREAKDOWN "),
                                        opts.timeout, "breakdown")
            BREAKDOWN.update(_breakdown.parse_line(line))
    except Exception as exc:
        return [Row("piphone (profiled)", None, f"failed: {exc}")]
    return []


def offer_loopback(config: Path) -> None:
    """Make the exchange's ICE offer 127.0.0.1: by default it offers all but loopback, which
    in a lo-only namespace is nothing. And serve ws:// (allowed on loopback): the benches'
    clients do not load the starter's CA, and TLS on signaling costs nothing per call."""
    text = config.read_text()
    line = 'ice_addresses = ["127.0.0.1"]\n'
    if "\nice_addresses" in text:
        raise RuntimeError(f"{config} already sets ice_addresses; expected the starter config")
    text = "".join(x for x in text.splitlines(keepends=True)
                   if not x.startswith(("tls_cert", "tls_key", "tls_ca")))
    config.write_text(text.replace("[exchange]\n", "[exchange]\n" + line, 1))


def token_from_config(path: str, identity: str) -> str:
    """A token signed with the exchange's keys, found by name anywhere in its TOML."""
    import tomllib

    from piphone.voice.tokens import mint

    with open(path, "rb") as f:
        config = tomllib.load(f)
    keys = find_keys(config, ("account_sid", "api_key_sid", "api_key_secret"))
    missing = [k for k in ("account_sid", "api_key_sid", "api_key_secret") if k not in keys]
    if missing:
        raise RuntimeError(f"{path} has no {', '.join(missing)}")
    return mint(identity=identity, ttl=3600, **keys)


def find_keys(table: dict, names: tuple[str, ...]) -> dict[str, str]:
    found: dict[str, str] = {}
    for key, value in table.items():
        if isinstance(value, dict):
            for k, v in find_keys(value, names).items():
                found.setdefault(k, v)
        elif key in names and isinstance(value, str):
            found.setdefault(key, value)
    return found


def echo_sink(echoed):
    """A PCM sink class (as the phone's earpiece is: piphone.pcm.PcmSink) that sets ``echoed``
    at each frame: proof the echo comes back. Shared with quality_cost.py."""

    class EchoSink:
        def start(self) -> None:
            pass

        def write(self, samples, sample_rate: int) -> None:
            echoed.set()

    return EchoSink


async def call_echo_until_stopped(device, echoed, on_call=None, on_ready=None,
                                  on_stop=None, to: str = "echo") -> None:
    """Register ``device``, call the exchange's echo line, print READY once it answers and the
    echo flows, then hold the call until SIGTERM/SIGINT or the far end hangs up; destroys the
    device. ``on_call(call)`` runs before the waits, ``on_ready()`` just after READY, ``on_stop()``
    when told to stop, before the hang-up."""
    import asyncio
    import signal

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await device.register()
        call = await device.connect({"To": to})
        accepted = asyncio.Event()
        call.on("accept", lambda *_: accepted.set())
        call.on("disconnect", lambda *_: stop.set())
        if on_call is not None:
            on_call(call)
        await asyncio.wait_for(accepted.wait(), 20)
        await asyncio.wait_for(echoed.wait(), 10)
        print(READY, flush=True)
        if on_ready is not None:
            on_ready()
        await stop.wait()
        if on_stop is not None:
            on_stop()
        call.disconnect()
    finally:
        await asyncio.wait_for(device.destroy(), 10)


def wav_source(path: str):
    """A factory of paced sources that loop a WAV file's speech (any rate, mono or stereo, 16 bit):
    what a phone really encodes, where libopus costs about three times what a tone does."""
    import wave

    import numpy as np
    import soxr

    from piphone.pcm import SAMPLE_RATE, SAMPLES_PER_FRAME, PacedSource

    with wave.open(path) as w:
        rate, channels = w.getframerate(), w.getnchannels()
        pcm = np.frombuffer(w.readframes(w.getnframes()), np.int16).reshape(-1, channels)
    samples = soxr.resample(pcm.mean(axis=1), rate, SAMPLE_RATE).astype(np.int16)
    samples = samples[:len(samples) // SAMPLES_PER_FRAME * SAMPLES_PER_FRAME]

    class Speech(PacedSource):
        async def read(self):
            start = (await self._next_frame()) * SAMPLES_PER_FRAME % len(samples)
            return samples[start:start + SAMPLES_PER_FRAME]

    return Speech


async def piphone_client(config: str, url: str, to: str = "echo", profile: bool = False,
                         identity: str = "bench", wav: str | None = None) -> None:
    """Calls ``to`` (the echo line, or the callee worker) and holds the call. ``profile``:
    counts where the CPU goes (_breakdown.py) and prints it when stopped. ``wav``: send that
    file's speech in a loop in place of the 440 Hz tone."""
    import asyncio

    if profile:
        import _breakdown

        _breakdown.install()
    from piphone.pcm import Tone
    from piphone.voice import Device

    echoed = asyncio.Event()
    token = token_from_config(config, identity)
    device = Device(token, signaling_url=url, ice_addresses=["127.0.0.1"],
                    codec_preferences=("opus",),
                    audio_source=wav_source(wav) if wav else (lambda: Tone(440)),
                    audio_sink=echo_sink(echoed))
    if not profile:
        await call_echo_until_stopped(device, echoed, to=to)
        return
    await call_echo_until_stopped(
        device, echoed, to=to, on_ready=_breakdown.start_window,
        on_stop=lambda: print(_breakdown.format_line(_breakdown.report()), flush=True))


async def piphone_callee(config: str, url: str, identity: str) -> None:
    """Registers as ``identity``, answers the first call, sends a tone, holds until stopped."""
    import asyncio
    import signal

    from piphone.pcm import Tone
    from piphone.voice import Device

    heard = asyncio.Event()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    device = Device(token_from_config(config, identity), signaling_url=url,
                    ice_addresses=["127.0.0.1"], codec_preferences=("opus",),
                    audio_source=lambda: Tone(660), audio_sink=echo_sink(heard))
    device.on("incoming", lambda call: call.accept())
    try:
        await device.register()
        print(LISTENING, flush=True)
        await asyncio.wait_for(heard.wait(), 30)
        print(READY, flush=True)
        await stop.wait()
    finally:
        await asyncio.wait_for(device.destroy(), 10)


# =================================================================================================
# report
# =================================================================================================
def print_table(rows: list[Row], opts: Options) -> None:
    base = rows[0].usage if rows and rows[0].name == "baresip agent" else None
    print(f"\nCost of one party in a call: {opts.seconds:.0f} s window after "
          f"{opts.warmup:.0f} s warm-up, Opus, 440 Hz sine, loopback only\n")
    header = f"{'':18} {'CPU-s/call-s':>13} {'RSS MB':>8} {'private MB':>11} " \
             f"{'CPU x baresip':>14} {'RSS x baresip':>14}"
    print(header)
    print("-" * len(header))
    for row in rows:
        if row.usage is None:
            print(f"{row.name:18} {'n/a':>13} {'n/a':>8} {'n/a':>11} {'':>14} {'':>14}")
            continue
        cpu_ratio = f"{row.usage.cpu_per_s / base.cpu_per_s:.2f}x" \
            if base and base.cpu_per_s > 0 else "n/a"
        rss_ratio = f"{row.usage.rss_mb / base.rss_mb:.2f}x" if base else "n/a"
        print(f"{row.name:18} {row.usage.cpu_per_s:13.4f} {row.usage.rss_mb:8.1f} "
              f"{row.usage.private_mb:11.1f} {cpu_ratio:>14} {rss_ratio:>14}")
    print()
    for row in rows:
        if row.note:
            print(f"  {row.name}: {row.note}")
    print_goals(rows, base)
    print_memory_floor(rows)
    print_breakdown(rows)


def import_floor_mb() -> float:
    """RSS of a process that only imports the stack piphone must use (aiortc, numpy) and
    makes no call: the floor under any aiortc phone's memory on this machine."""
    out = subprocess.run(
        [sys.executable, "-c", "import aiortc, numpy, re; print(re.search(r'VmRSS:\\s+(\\d+)', "
         "open('/proc/self/status').read()).group(1))"],
        capture_output=True, text=True, check=True, timeout=60)
    return int(out.stdout) / 1024


def print_memory_floor(rows: list[Row]) -> None:
    """The RSS goal is only meaningful next to what the required stack costs by itself."""
    piphone = next((r.usage for r in rows if r.name == "piphone client"), None)
    peer = next((r.usage for r in rows if r.name == "bare aiortc peer"), None)
    floor = import_floor_mb()
    print(f"\nMemory floor: import aiortc + numpy, no call: {floor:.1f} MB RSS")
    if piphone and peer:
        print(f"  piphone client / bare aiortc peer in a call: "
              f"RSS {piphone.rss_mb / peer.rss_mb:.2f}x, "
              f"private {piphone.private_mb / peer.private_mb:.2f}x")
    if piphone:
        print(f"  piphone client above the import floor: {piphone.rss_mb - floor:+.1f} MB")


def print_goals(rows: list[Row], base: common.Usage | None) -> None:
    """Issue 19's goals, each met or MISSED, from the figures of this run. The CPU goal is
    judged only in the same windows (``--only together``, their median ratio): rows measured
    one after the other move apart with the load of the moment (one run here: 1.22x in rows,
    2.11x in one window)."""
    usage = {r.name: r.usage for r in rows if r.usage is not None}
    piphone = usage.get("piphone client") or usage.get("piphone (together)")
    together = usage.get("piphone (together)")
    exchange = usage.get("exchange/fwd call")
    print("\nGoals (issue 19):")
    sequential = (None if piphone is None or not base or base.cpu_per_s <= 0 else
                  piphone.cpu_per_s / base.cpu_per_s)
    checks = [
        (f"client CPU <= {GOAL_CPU_RATIO}x baresip agent (same windows)",
         None if not TOGETHER_RATIOS else
         (f"{statistics.median(TOGETHER_RATIOS):.2f}x",
          statistics.median(TOGETHER_RATIOS) <= GOAL_CPU_RATIO)),
        (f"client RSS <= {GOAL_RSS_MB:.0f} MB",
         None if piphone is None else (f"{piphone.rss_mb:.1f} MB",
                                       piphone.rss_mb <= GOAL_RSS_MB)),
        (f"client private <= {GOAL_PRIVATE_MB:.0f} MB",
         None if piphone is None else (f"{piphone.private_mb:.1f} MB",
                                       piphone.private_mb <= GOAL_PRIVATE_MB)),
        (f"exchange >= {GOAL_FORWARDED_PER_CORE} fwd calls/core (1 call)",
         None if exchange is None or exchange.cpu_per_s <= 0 else
         (f"{1 / exchange.cpu_per_s:.0f}", 1 / exchange.cpu_per_s >= GOAL_FORWARDED_PER_CORE)),
    ]
    for label, result in checks:
        if result is None:
            print(f"  {label:48} not measured")
        else:
            value, ok = result
            print(f"  {label:48} {value:>9}  {'met' if ok else 'MISSED'}")
    if together is None and sequential is not None:
        print(f"  (CPU in rows one after the other: {sequential:.2f}x, not judged: "
              "--only together measures the goal)")
    print("  (one call bears all of the exchange's idle work; calls/core under load, transcoding"
          "\n   >= 25 calls/core and the saturation point: exchange_capacity.py)")


def print_breakdown(rows: list[Row]) -> None:
    """Where a profiled client's call-second goes, as shares of its own CPU; and what that
    share would be of the unprofiled client's CPU measured in this run."""
    if not BREAKDOWN:
        return
    total = BREAKDOWN["total"]
    piphone = next((r.usage for r in rows if r.name == "piphone client"), None)
    print(f"\nWhere a call-second goes (piphone client calling the echo line, profiled "
          f"apart: {total:.4f} CPU-s/s with the clocks in"
          + (f", {total / piphone.cpu_per_s:.2f}x the unprofiled client)" if piphone else ")"))
    parts = sorted(((k, v) for k, v in BREAKDOWN.items() if k != "total"),
                   key=lambda kv: -kv[1])
    for piece, value in parts:
        print(f"  {piece:28} {value / total:6.1%}")


# =================================================================================================
# entry points
# =================================================================================================
BENCHES = {"baresip": bench_baresip, "aiortc": bench_aiortc, "piphone": bench_piphone,
           "forwarded": bench_forwarded, "breakdown": bench_breakdown, "uvloop": bench_uvloop,
           "together": bench_together}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0,
                        help="measurement window per row, in seconds (default 10)")
    parser.add_argument("--windows", type=int, default=5,
                        help="windows of the together row, in the same calls; the CPU goal "
                             "is judged on their median ratio (default 5)")
    parser.add_argument("--warmup", type=float, default=2.0,
                        help="seconds between call set-up and measuring (default 2)")
    parser.add_argument("--timeout", type=float, default=20.0,
                        help="bound on every start-up wait, in seconds (default 20)")
    parser.add_argument("--only", action="append", choices=sorted(BENCHES),
                        help="run just this row (repeatable)")
    # Internal: the same file run as a measured child.
    parser.add_argument("--worker", choices=("aiortc-peer", "piphone-client", "piphone-callee"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--to", default="echo", help=argparse.SUPPRESS)
    parser.add_argument("--identity", default="bench", help=argparse.SUPPRESS)
    parser.add_argument("--profile", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--wav", help=argparse.SUPPRESS)
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio",
                        help=argparse.SUPPRESS)
    parser.add_argument("--role", choices=("offer", "answer"), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def run_worker(args: argparse.Namespace) -> None:
    import asyncio

    if args.worker == "aiortc-peer":
        asyncio.run(aiortc_peer(args.role, args.port))
    elif args.worker == "piphone-callee":
        asyncio.run(piphone_callee(args.config, args.url, args.identity))
    else:
        factory = None
        if args.loop == "uvloop":
            import uvloop

            factory = uvloop.new_event_loop
        with asyncio.Runner(loop_factory=factory) as runner:  # 3.11: no asyncio.run(loop_factory)
            runner.run(piphone_client(args.config, args.url, args.to, args.profile,
                                      args.identity, args.wav))


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    if args.worker:
        run_worker(args)
        return
    common.ensure_isolated_network([str(Path(__file__).resolve()), *argv])
    common.install_signal_cleanup()
    opts = Options(args.seconds, args.warmup, args.timeout, args.windows)
    rows = []
    for key in (k for k in BENCHES if not args.only or k in args.only):
        print(f"measuring {key} ...", file=sys.stderr, flush=True)
        result = BENCHES[key](opts)
        rows += result if isinstance(result, list) else [result]
    print_table(rows, opts)
    sys.stdout.flush()


if __name__ == "__main__":
    main(sys.argv[1:])
