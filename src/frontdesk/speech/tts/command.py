"""Voices from command-line engines (espeak-ng, flite) that write a WAV per sentence.

They are the fallback agent voice and the simulated callers' voices: each run is a short
child process, so a crash only fails that one sentence.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator

from frontdesk.audio import AudioFrame
from frontdesk.audio.wav import decode_wav
from frontdesk.speech.tts.base import TTSError

_TIMEOUT_S = 20.0


class CommandVoice:
    """A TTS whose engine is one command run per text, WAV on stdout."""

    name = "command"

    def __init__(self, argv: list[str], sample_rate: int, timeout: float = _TIMEOUT_S) -> None:
        if shutil.which(argv[0]) is None:
            raise TTSError(f"{argv[0]} is not installed (apt-get install {argv[0]})")
        self._argv = argv
        self.sample_rate = sample_rate
        self._timeout = timeout

    def _command(self, text: str) -> list[str]:
        return [*self._argv, text]

    async def synthesize(self, text: str) -> AsyncIterator[AudioFrame]:
        """The whole text's audio as one frame (these engines are fast enough per sentence)."""
        text = text.strip()
        if not text:
            return
        proc = await asyncio.create_subprocess_exec(
            *self._command(text),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
            # (barge-in) that lands just as the process finishes.
            async with asyncio.timeout(self._timeout):
                out, err = await proc.communicate()
        except TimeoutError as exc:
            proc.kill()
            await proc.wait()
            raise TTSError(f"{self._argv[0]} timed out after {self._timeout:.0f} s") from exc
        if proc.returncode != 0:
            raise TTSError(f"{self._argv[0]} failed ({proc.returncode}): {err.decode()[:200]}")
        pcm, rate = decode_wav(out)
        if rate != self.sample_rate:
            raise TTSError(f"{self._argv[0]} produced {rate} Hz, expected {self.sample_rate} Hz")
        yield AudioFrame(pcm if pcm.ndim == 1 else pcm[:, 0].copy(), rate)

    async def aclose(self) -> None:
        """Nothing persistent to stop."""


class EspeakVoice(CommandVoice):
    """espeak-ng (Debian). ``voice`` e.g. "en-us", "en-gb", "en-us+f3"; ``wpm`` speaking rate."""

    name = "espeak"

    def __init__(self, voice: str = "en-us", wpm: int = 165, pitch: int = 50) -> None:
        super().__init__(
            ["espeak-ng", "-v", voice, "-s", str(wpm), "-p", str(pitch), "--stdout"], 22050
        )


class FliteVoice(CommandVoice):
    """flite (Debian). ``voice`` one of kal, kal16, awb, rms, slt."""

    name = "flite"

    def __init__(self, voice: str = "slt") -> None:
        rate = 8000 if voice == "kal" else 16000
        super().__init__(["flite", "-voice", voice, "-o", "/dev/stdout", "-t"], rate)
