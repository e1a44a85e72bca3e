"""baresip (Debian ``baresip-core``) as a real SIP phone for the SIP tests, pinned to
127.0.0.1: it answers or dials, plays WAVs as its microphone, records what it hears, and is
driven over its ``ctrl_tcp`` interface.

A missing program fails the test with the apt package to install, never a skip.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from frontdesk.audio import AudioFormatError
from frontdesk.audio.wav import read_wav, write_wav
from sip_peers import HOST, free_udp_port, need

USER = "+15550142"
"""The phone's number (its SIP user): the agent's record shows it as the caller."""


def write_mic_wav(path: Path, pcm8k: np.ndarray, lead_s: float = 0.0, tail_s: float = 0.0) -> None:
    """A WAV for baresip's aufile source: silence, the speech, silence (8 kHz mono)."""
    lead = np.zeros(int(8000 * lead_s), np.int16)
    tail = np.zeros(int(8000 * tail_s), np.int16)
    write_wav(path, np.concatenate([lead, pcm8k, tail]), 8000)


class Baresip:
    """baresip on 127.0.0.1 as a phone: auto-answers as ``sip:+15550142@...``, plays a WAV as
    its microphone (``aufile``; ``ausrc aufile,<wav>`` switches it mid-call), records what it
    hears (``sndfile``: dump-*-dec.wav) and takes commands over one ``ctrl_tcp`` connection,
    on which it also reports events (call established, closed, DTMF received)."""

    def __init__(self, workdir: Path, mic: Path, codecs: str = "PCMU,PCMA") -> None:
        self.workdir = workdir
        self.mic = mic
        self.codecs = codecs
        self.sip_port = free_udp_port()
        self.ctrl_port = free_udp_port()  # TCP: a free UDP port is free enough here
        self.proc: asyncio.subprocess.Process | None = None
        self.events: list[dict] = []
        """Every ctrl_tcp event so far (``type``: CALL_ESTABLISHED, CALL_CLOSED, ...)."""
        self._tokens = 0
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._responses: dict[str, asyncio.Future[dict]] = {}
        self._changed = asyncio.Event()

    @property
    def uri(self) -> str:
        """Where to call it."""
        return f"sip:{USER}@{HOST}:{self.sip_port}"

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
            f"<{self.uri}>;regint=0;answermode=auto;audio_codecs={self.codecs}\n"
        )
        return config

    async def start(self) -> None:
        """Start baresip and connect to its control port."""
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
                # ctrl_tcp serves one connection at a time: keep this one for everything.
                reader, self._writer = await asyncio.open_connection(HOST, self.ctrl_port)
                self._reader_task = asyncio.create_task(self._read(reader))
                return
            await asyncio.sleep(0.05)
        pytest.fail(f"baresip did not start:\n{self.log()[-2000:]}")

    async def _read(self, reader: asyncio.StreamReader) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError, ValueError):
            while True:
                size = int((await reader.readuntil(b":"))[:-1])
                message = json.loads((await reader.readexactly(size + 1))[:-1])
                if message.get("event"):
                    self.events.append(message)
                    self._changed.set()
                elif message.get("response"):
                    waiter = self._responses.pop(str(message.get("token")), None)
                    if waiter is not None and not waiter.done():
                        waiter.set_result(message)

    def log(self) -> str:
        """baresip's console output so far."""
        path = self.workdir / "baresip.log"
        return path.read_text(errors="replace") if path.exists() else ""

    async def command(self, command: str, params: str = "") -> dict:
        """Run one ctrl_tcp command and return its JSON response."""
        assert self._writer is not None, "start() first"
        self._tokens += 1
        token = str(self._tokens)
        waiter = self._responses[token] = asyncio.get_running_loop().create_future()
        body = json.dumps({"command": command, "params": params, "token": token}).encode()
        self._writer.write(str(len(body)).encode() + b":" + body + b",")
        await self._writer.drain()
        async with asyncio.timeout(5):
            return await waiter

    async def wait_event(self, kind: str, timeout_s: float = 10.0) -> dict:
        """The first event of type ``kind`` (already seen, or the next one)."""
        async with asyncio.timeout(timeout_s):
            while True:
                found = next((e for e in self.events if e.get("type") == kind), None)
                if found is not None:
                    return found
                self._changed.clear()
                await self._changed.wait()

    async def recording(self, timeout_s: float = 5.0) -> tuple[np.ndarray, int]:
        """What baresip heard on its last call (sndfile's decode dump), once the file is
        complete: sndfile writes the WAV header when the call's audio stream closes."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            dumps = sorted(self.workdir.glob("dump-*-dec.wav"))
            if dumps:
                with contextlib.suppress(AudioFormatError):
                    pcm, rate = read_wav(dumps[-1])
                    if len(pcm):
                        return pcm, rate
            if asyncio.get_running_loop().time() > deadline:
                pytest.fail(f"baresip recorded nothing readable:\n{self.log()[-2000:]}")
            await asyncio.sleep(0.1)

    async def stop(self) -> None:
        """Quit baresip."""
        if self._writer is not None:
            self._writer.close()
        if self._reader_task is not None:
            self._reader_task.cancel()
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            try:
                async with asyncio.timeout(5):
                    await self.proc.wait()
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


@contextlib.asynccontextmanager
async def baresip(workdir: Path, mic: Path, codecs: str = "PCMU,PCMA") -> AsyncIterator[Baresip]:
    """A running :class:`Baresip` for the duration of the block."""
    peer = Baresip(workdir, mic, codecs)
    await peer.start()
    try:
        yield peer
    finally:
        await peer.stop()
