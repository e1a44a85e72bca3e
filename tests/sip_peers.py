"""sipp (Debian ``sip-tester``) as a real SIP peer for the SIP tests, pinned to 127.0.0.1,
plus the audio it plays (pcaps of G.711 RTP). baresip is in ``baresip_peer.py``.

Missing programs fail the test with the apt package to install, never a skip.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from frontdesk.audio.resample import resample
from frontdesk.speech.tts.command import FliteVoice

DATA = Path(__file__).parent / "data" / "sip"
SIPP_PCAPS = Path("/usr/share/sip-tester")
HOST = "127.0.0.1"


def need(program: str, package: str) -> str:
    """Path of ``program``; fails the test naming the Debian package when missing."""
    path = shutil.which(program)
    if path is None:
        pytest.fail(f"{program} is not installed: apt-get install -y {package}")
    return path


def free_udp_port() -> int:
    """A UDP port free on 127.0.0.1 right now (and the one after it, for RTP/RTCP)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind((HOST, 0))
            port = probe.getsockname()[1]
        if port % 2 == 0 and port < 65000:
            with (
                contextlib.suppress(OSError),
                socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s,
            ):
                s.bind((HOST, port + 1))
                return port
    raise RuntimeError("no free UDP port pair on 127.0.0.1")


async def speak(text: str, voice: str = "slt") -> np.ndarray:
    """``text`` in flite's ``voice`` as 8 kHz PCM16 (the phone line's rate)."""
    frames = [f async for f in FliteVoice(voice).synthesize(text)]
    pcm = np.concatenate([f.pcm for f in frames])
    return resample(pcm, frames[0].sample_rate, 8000)


def scenario(name: str, directory: Path, **values: object) -> Path:
    """tests/data/sip/``name`` with its ``@KEY@`` placeholders filled, written to
    ``directory``."""
    text = (DATA / name).read_text()
    for key, value in values.items():
        text = text.replace(f"@{key.upper()}@", str(value))
    left = re.findall(r"@[A-Z_]+@", text)
    assert not left, f"unfilled placeholders in {name}: {left}"
    out = directory / name
    out.write_text(text)
    return out


@dataclass(slots=True)
class SippResult:
    """A finished sipp run."""

    returncode: int
    stdout: str
    stderr: str
    messages: str
    """sipp's message trace (-trace_msg), every SIP message sent and received."""

    def explain(self) -> str:
        return f"sipp exited {self.returncode}\n{self.stderr[-2000:]}\n{self.messages[-4000:]}"


def _sipp_argv(scenario_path: Path, workdir: Path, sip_port: int, timeout_s: float) -> list[str]:
    return [
        need("sipp", "sip-tester"),
        "-sf",
        str(scenario_path),
        "-m",
        "1",
        "-i",
        HOST,
        "-p",
        str(sip_port),
        "-mi",
        HOST,
        "-mp",
        str(free_udp_port()),
        "-trace_msg",
        "-message_file",
        str(workdir / f"{scenario_path.stem}-messages.log"),
        "-trace_err",
        "-error_file",
        str(workdir / f"{scenario_path.stem}-errors.log"),
        "-nostdin",
        "-timeout",
        f"{int(timeout_s)}s",
        "-timeout_error",
    ]


class Sipp:
    """One sipp run (one call) of a scenario, as a client (given a target) or as a server
    waiting on ``port`` (a registrar, a callee)."""

    def __init__(
        self,
        scenario_path: Path,
        workdir: Path,
        target: tuple[str, int] | None = None,
        *,
        timeout_s: float = 60.0,
        extra: tuple[str, ...] = (),
    ) -> None:
        self.scenario = scenario_path
        self.workdir = workdir
        self.port = free_udp_port()
        self.timeout_s = timeout_s
        self.argv = _sipp_argv(scenario_path, workdir, self.port, timeout_s)
        if target is not None:
            self.argv.insert(1, f"{target[0]}:{target[1]}")
        self.argv += list(extra)
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def address(self) -> tuple[str, int]:
        """Where this sipp listens for SIP."""
        return HOST, self.port

    async def start(self) -> Sipp:
        """Start sipp (a server is ready within milliseconds; UDP retransmits cover it).
        Its screen goes to a file: an unread pipe would fill up and stall a long run."""
        stem = self.scenario.stem
        with (
            (self.workdir / f"{stem}-stdout.log").open("wb") as out,
            (self.workdir / f"{stem}-stderr.log").open("wb") as err,
        ):
            self.proc = await asyncio.create_subprocess_exec(
                *self.argv, cwd=self.workdir, stdout=out, stderr=err
            )
        await asyncio.sleep(0.2)
        return self

    async def stop_after(self, seconds: float) -> None:
        """Give sipp ``seconds`` to finish its scenario, then kill it (the run fails)."""
        if self.proc is not None and self.proc.returncode is None:
            try:
                async with asyncio.timeout(seconds):
                    await self.proc.wait()
            except TimeoutError:
                await self.stop()

    async def wait(self) -> SippResult:
        """Wait for the scenario to end (killed after its timeout) and read its traces."""
        assert self.proc is not None, "start() first"
        await self.stop_after(self.timeout_s + 10)
        stem = self.scenario.stem

        def read(suffix: str) -> str:
            path = self.workdir / f"{stem}-{suffix}.log"
            return path.read_text(errors="replace") if path.exists() else ""

        return SippResult(
            self.proc.returncode or 0,
            read("stdout"),
            read("stderr"),
            read("messages") + read("errors"),
        )

    async def stop(self) -> None:
        """Kill sipp if it is still running (a test that failed half-way)."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


async def run_sipp(
    scenario_path: Path,
    target: tuple[str, int],
    workdir: Path,
    *,
    timeout_s: float = 60.0,
    extra: tuple[str, ...] = (),
) -> SippResult:
    """Run one sipp call with ``scenario_path`` against ``target`` and wait for it."""
    sipp = Sipp(scenario_path, workdir, target, timeout_s=timeout_s, extra=extra)
    await sipp.start()
    try:
        return await sipp.wait()
    finally:
        await sipp.stop()


@contextlib.asynccontextmanager
async def udp_socket() -> AsyncIterator[socket.socket]:
    """A plain UDP socket on 127.0.0.1 (for raw malformed datagrams)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((HOST, 0))
    sock.setblocking(False)
    try:
        yield sock
    finally:
        sock.close()


async def exchange(
    sock: socket.socket, data: bytes, target: tuple[str, int], wait_s: float = 2.0
) -> bytes | None:
    """Send one datagram and return the first answer (None when nothing comes back)."""
    await asyncio.get_running_loop().sock_sendto(sock, data, target)
    return await exchange_recv(sock, wait_s)


async def exchange_recv(sock: socket.socket, wait_s: float = 2.0) -> bytes | None:
    """The next datagram on ``sock`` (None when nothing comes within ``wait_s``)."""
    try:
        async with asyncio.timeout(wait_s):
            return await asyncio.get_running_loop().sock_recv(sock, 65535)
    except TimeoutError:
        return None


async def until(predicate: Callable[[], object], timeout_s: float = 10.0) -> None:
    """Poll ``predicate`` every 20 ms until it is true; TimeoutError after ``timeout_s``."""
    for _ in range(int(timeout_s / 0.02)):
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise TimeoutError(f"condition not met within {timeout_s} s")
