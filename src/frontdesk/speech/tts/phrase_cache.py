"""Fixed lines (greeting, fillers, the hand-off line) synthesized once and replayed instantly.

A filler like "Let me check the calendar." exists to cover a slow tool call, so it must not
itself wait for the engine. Lines are keyed by their normalised text and the voice that spoke
them; with a directory, each is also stored as a WAV named by the sha256 of that key, so a
restarted server is warm at once.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import numpy as np

from frontdesk.audio import AudioFormatError, AudioFrame
from frontdesk.audio.wav import read_wav, write_wav
from frontdesk.speech.tts.base import TTS, TTSError

_LOG = logging.getLogger(__name__)


def normalise(text: str) -> str:
    """The cache form of a line: whitespace collapsed, case folded (punctuation kept: it
    changes the intonation)."""
    return " ".join(text.split()).casefold()


class PhraseCache:
    """Pre-synthesized lines of one voice; anything not cached falls through to the voice.

    ``directory``: where to persist lines as WAV (created if missing); None keeps them in
    memory only.
    """

    def __init__(self, tts: TTS, directory: str | Path | None = None) -> None:
        self.tts = tts
        # a voice may say which model/settings it is, so a cache never replays another voice
        self.voice_id: str = getattr(tts, "voice_id", tts.name)
        self.directory = Path(directory) if directory is not None else None
        self._lines: dict[str, AudioFrame] = {}

    def key(self, text: str) -> str:
        """sha256 of voice id and normalised text: the file name of the line on disk."""
        return hashlib.sha256(f"{self.voice_id}\n{normalise(text)}".encode()).hexdigest()

    def __contains__(self, text: object) -> bool:
        return isinstance(text, str) and normalise(text) in self._lines

    def __len__(self) -> int:
        return len(self._lines)

    def get(self, text: str) -> AudioFrame | None:
        """The stored audio of ``text`` (one frame at the voice's rate), or None."""
        return self._lines.get(normalise(text))

    async def warm(self, lines: Iterable[str]) -> None:
        """Make every line instant: load it from disk, or synthesize (and save) it once."""
        for text in lines:
            if not normalise(text) or text in self:
                continue
            frame = self._load(text)
            if frame is None:
                frame = await self._synthesize(text)
                self._save(text, frame)
            self._lines[normalise(text)] = frame

    async def synthesize(self, text: str) -> AsyncIterator[AudioFrame]:
        """The cached audio of ``text`` if there is any, else the voice's, streamed."""
        frame = self.get(text)
        if frame is not None:
            yield frame
            return
        async for frame in self.tts.synthesize(text):
            yield frame

    async def _synthesize(self, text: str) -> AudioFrame:
        parts = [frame.pcm async for frame in self.tts.synthesize(text)]
        if not parts:
            raise TTSError(f"{self.tts.name} produced no audio for {text!r}")
        return AudioFrame(np.concatenate(parts), self.tts.sample_rate)

    def _path(self, text: str) -> Path | None:
        return self.directory / f"{self.key(text)}.wav" if self.directory else None

    def _load(self, text: str) -> AudioFrame | None:
        path = self._path(text)
        if path is None or not path.is_file():
            return None
        try:
            pcm, rate = read_wav(path)
        except (OSError, AudioFormatError) as exc:
            _LOG.warning("ignoring unreadable cached phrase %s: %s", path, exc)
            return None
        if rate != self.tts.sample_rate or pcm.ndim != 1 or not len(pcm):
            _LOG.warning("ignoring cached phrase %s: not mono audio at %s Hz", path, rate)
            return None
        return AudioFrame(pcm, rate)

    def _save(self, text: str, frame: AudioFrame) -> None:
        path = self._path(text)
        if path is None:
            return
        # write then rename, so a crash never leaves a truncated WAV behind the right name
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        write_wav(tmp, frame.pcm, frame.sample_rate)
        tmp.replace(path)
