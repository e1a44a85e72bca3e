"""Real SIP peers for the SIP tests: sipp (Debian ``sip-tester``) and baresip
(``baresip-core``), both pinned to 127.0.0.1, plus the audio they play.

Missing programs fail the test with the apt package to install, never a skip.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
import socket
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from frontdesk.audio.g711 import ulaw_encode
from frontdesk.audio.resample import resample
from frontdesk.audio.wav import read_wav, write_wav
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


def write_rtp_pcap(path: Path, pcm8k: np.ndarray, payload_type: int = 0) -> float:
    """Write ``pcm8k`` as a pcap of 20 ms PCMU RTP packets (what sipp's
    ``play_pcap_audio`` replays; sipp rewrites the addresses). Returns seconds of audio."""
    payload = ulaw_encode(pcm8k)
    payload += b"\xff" * (-len(payload) % 160)  # pad to whole packets with mu-law silence
    packets = [payload[i : i + 160] for i in range(0, len(payload), 160)]
    with path.open("wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for index, chunk in enumerate(packets):
            rtp = (
                struct.pack(
                    "!BBHII",
                    0x80,
                    payload_type | (0x80 if index == 0 else 0),
                    index,
                    index * 160,
                    0x5EED,
                )
                + chunk
            )
            udp = struct.pack("!HHHH", 6000, 6002, 8 + len(rtp), 0) + rtp
            ip = _ipv4(udp)
            frame = b"\x00" * 12 + b"\x08\x00" + ip
            at = index * 0.02
            out.write(struct.pack("<IIII", int(at), int((at % 1) * 1e6), len(frame), len(frame)))
            out.write(frame)
    return len(packets) * 0.02


def _ipv4(udp: bytes) -> bytes:
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + len(udp),
        0,
        0,
        64,
        17,
        0,
        socket.inet_aton(HOST),
        socket.inet_aton(HOST),
    )
    total = sum(struct.unpack("!10H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    checksum = ~total & 0xFFFF
    return header[:10] + struct.pack("!H", checksum) + header[12:] + udp


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


async def run_sipp(
    scenario_path: Path,
    target: tuple[str, int],
    workdir: Path,
    *,
    timeout_s: float = 60.0,
    extra: tuple[str, ...] = (),
) -> SippResult:
    """Run one sipp call with ``scenario_path`` against ``target`` and wait for it."""
    sipp = need("sipp", "sip-tester")
    sip_port, media_port = free_udp_port(), free_udp_port()
    argv = [
        sipp,
        f"{target[0]}:{target[1]}",
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
        str(media_port),
        "-trace_msg",
        "-message_file",
        str(workdir / "sipp-messages.log"),
        "-trace_err",
        "-error_file",
        str(workdir / "sipp-errors.log"),
        "-nostdin",
        "-timeout",
        f"{int(timeout_s)}s",
        "-timeout_error",
        *extra,
    ]
    proc = await asyncio.create_subprocess_exec(
        *argv, cwd=workdir, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        async with asyncio.timeout(timeout_s + 10):
            out, err = await proc.communicate()
    except TimeoutError:
        proc.kill()
        out, err = await proc.communicate()
    log = workdir / "sipp-messages.log"
    errors = workdir / "sipp-errors.log"
    messages = (log.read_text(errors="replace") if log.exists() else "") + (
        errors.read_text(errors="replace") if errors.exists() else ""
    )
    return SippResult(
        proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace"), messages
    )


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


def write_mic_wav(path: Path, pcm8k: np.ndarray, lead_s: float = 0.0, tail_s: float = 0.0) -> None:
    """A WAV for baresip's aufile source: silence, the speech, silence (8 kHz mono)."""
    lead = np.zeros(int(8000 * lead_s), np.int16)
    tail = np.zeros(int(8000 * tail_s), np.int16)
    write_wav(path, np.concatenate([lead, pcm8k, tail]), 8000)


class Baresip:
    """baresip on 127.0.0.1 as a phone: auto-answers as ``sip:bob@...``, plays a WAV as
    its microphone (``aufile``), records what it hears (``sndfile``: dump-*-dec.wav) and
    takes commands over ``ctrl_tcp`` (``ausrc aufile,<wav>`` switches the microphone)."""

    def __init__(self, workdir: Path, mic: Path) -> None:
        self.workdir = workdir
        self.mic = mic
        self.sip_port = free_udp_port()
        self.ctrl_port = free_udp_port()  # TCP: a free UDP port is free enough here
        self.proc: asyncio.subprocess.Process | None = None
        self._tokens = 0

    @property
    def uri(self) -> str:
        """Where to call it."""
        return f"sip:bob@{HOST}:{self.sip_port}"

    def _write_config(self) -> Path:
        config = self.workdir / "baresip"
        config.mkdir(exist_ok=True)
        rtp = free_udp_port()
        (config / "config").write_text(
            "\n".join(
                [
                    "poll_method epoll",
                    f"sip_listen {HOST}:{self.sip_port}",
                    f"net_interface {HOST}",
                    "audio_player aubridge,nil",
                    "audio_alert aubridge,nil",
                    f"audio_source aufile,{self.mic}",
                    "module_path /usr/lib/baresip/modules",
                    "module g711.so",
                    "module aufile.so",
                    "module aubridge.so",
                    "module sndfile.so",
                    "module_app account.so",
                    "module_app menu.so",
                    "module_app ctrl_tcp.so",
                    f"ctrl_tcp_listen {HOST}:{self.ctrl_port}",
                    f"snd_path {self.workdir}",
                    f"rtp_ports {rtp}-{rtp + 1}",
                    "",
                ]
            )
        )
        (config / "accounts").write_text(
            f"<sip:bob@{HOST}:{self.sip_port}>;regint=0;answermode=auto;audio_codecs=PCMU,PCMA\n"
        )
        return config

    async def start(self) -> None:
        """Start baresip and wait until its control port answers."""
        baresip = need("baresip", "baresip-core")
        config = self._write_config()
        log = (self.workdir / "baresip.log").open("wb")
        self.proc = await asyncio.create_subprocess_exec(
            baresip,
            "-f",
            str(config),
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
            stdin=asyncio.subprocess.DEVNULL,
        )
        for _ in range(100):
            if self.proc.returncode is not None:
                break
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection(HOST, self.ctrl_port)
                writer.close()
                return
            await asyncio.sleep(0.05)
        pytest.fail(f"baresip did not start:\n{self.log()[-2000:]}")

    def log(self) -> str:
        """baresip's console output so far."""
        path = self.workdir / "baresip.log"
        return path.read_text(errors="replace") if path.exists() else ""

    async def command(self, command: str, params: str = "") -> dict:
        """Run one ctrl_tcp command and return its JSON response."""
        self._tokens += 1
        token = str(self._tokens)
        reader, writer = await asyncio.open_connection(HOST, self.ctrl_port)
        try:
            body = json.dumps({"command": command, "params": params, "token": token}).encode()
            writer.write(str(len(body)).encode() + b":" + body + b",")
            await writer.drain()
            async with asyncio.timeout(5):
                while True:
                    size = int((await reader.readuntil(b":"))[:-1])
                    message = json.loads((await reader.readexactly(size + 1))[:-1])
                    if message.get("response") and message.get("token") == token:
                        return message
        finally:
            writer.close()

    def recording(self) -> tuple[np.ndarray, int]:
        """What baresip heard on its last call (sndfile's decode dump)."""
        dumps = sorted(self.workdir.glob("dump-*-dec.wav"))
        if not dumps:
            pytest.fail(f"baresip recorded nothing:\n{self.log()[-2000:]}")
        return read_wav(dumps[-1])

    async def stop(self) -> None:
        """Quit baresip."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            try:
                async with asyncio.timeout(5):
                    await self.proc.wait()
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


@contextlib.asynccontextmanager
async def baresip(workdir: Path, mic: Path) -> AsyncIterator[Baresip]:
    """A running :class:`Baresip` for the duration of the block."""
    peer = Baresip(workdir, mic)
    await peer.start()
    try:
        yield peer
    finally:
        await peer.stop()
