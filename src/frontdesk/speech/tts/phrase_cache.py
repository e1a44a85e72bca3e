"""Fixed lines (greeting, fillers, the hand-off line) synthesized once and replayed instantly.

A filler like "Let me check the calendar." exists to cover a slow tool call, so it must not
itself wait for the engine. Lines are keyed by their normalised text and the voice that spoke
them; with a directory, each is also stored as a WAV named by the sha256 of that key, so a
restarted server is warm at once.

The cache also learns: a chunk the voice is asked for a second time (a question the agent
asks every call, a stock reply) is kept, up to ``max_learned`` of them, least recently used
out first. One-off text (a caller's name, a time) is never stored.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections import Counter, OrderedDict
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

    def __init__(
        self, tts: TTS, directory: str | Path | None = None, max_learned: int = 256
    ) -> None:
        self.tts = tts
        # a voice may say which model/settings it is, so a cache never replays another voice
        self.voice_id: str = getattr(tts, "voice_id", tts.name)
        self.directory = Path(directory) if directory is not None else None
        self._lines: dict[str, AudioFrame] = {}
        self.max_learned = max_learned
        self._learned: OrderedDict[str, None] = OrderedDict()
        self._asked: Counter[str] = Counter()

    def key(self, text: str) -> str:
        """sha256 of voice id and normalised text: the file name of the line on disk."""
        return hashlib.sha256(f"{self.voice_id}\n{normalise(text)}".encode()).hexdigest()

    def __contains__(self, text: object) -> bool:
        return isinstance(text, str) and normalise(text) in self._lines

    def __len__(self) -> int:
        return len(self._lines)

    def get(self, text: str) -> AudioFrame | None:
        """The stored audio of ``text`` (one frame at the voice's rate), or None."""
        key = normalise(text)
        if key in self._learned:
            self._learned.move_to_end(key)
        return self._lines.get(key)

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
        if frame is None and (frame := self._load(text)) is not None:
            self._learn(text, frame, save=False)  # learned by an earlier run
        if frame is not None:
            yield frame
            return
        key = normalise(text)
        self._asked[key] += 1
        parts: list[np.ndarray] = []
        async for frame in self.tts.synthesize(text):
            parts.append(frame.pcm)
            yield frame
        if self._asked[key] >= 2 and parts and self.max_learned:
            self._learn(text, AudioFrame(np.concatenate(parts), self.tts.sample_rate))

    def _learn(self, text: str, frame: AudioFrame, save: bool = True) -> None:
        key = normalise(text)
        self._lines[key] = frame
        self._learned[key] = None
        del self._asked[key]
        if save:
            self._save(text, frame)
        while len(self._learned) > self.max_learned:
            old, _ = self._learned.popitem(last=False)
            self._lines.pop(old, None)

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
