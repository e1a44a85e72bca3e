"""A simulated caller that follows a script: it listens to the agent and talks back.

Each line is spoken when the agent has finished its reply (after a human-like delay), or
``barge_in_ms`` into the agent's reply to interrupt it. ``<pause 1500>`` inside a line is a
mid-thought silence. Lines are synthesized before the call with a voice that is not the
agent's, so synthesis never disturbs the call's timing. Everything the caller does and hears
is logged on the line's clock: that is what the caller-side measurements are made from.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from frontdesk.audio import frame_samples
from frontdesk.audio.resample import resample
from frontdesk.speech.tts.base import TTS
from frontdesk.transports.base import INBOUND_RATE
from frontdesk.transports.local import TICK_S, CallerTick

_PAUSE = re.compile(r"<pause\s+(\d+)>")
CALLER_VOICED = 200
"""Peak amplitude above which the caller's own audio counts as speech."""
AGENT_VOICED = 300
"""Peak amplitude above which a played agent frame counts as speech."""


@dataclass(slots=True)
class CallerLine:
    """One thing the caller says (or presses, or does)."""

    text: str = ""
    barge_in_ms: int | None = None
    """Speak this many ms into the agent's reply instead of waiting for it to finish."""
    delay_ms: int = 400
    """Gap after the agent's last word before the caller speaks."""
    dtmf: str = ""
    """Keys pressed instead of (or before) speaking."""
    hang_up: bool = False
    """Hang up right after this line (mid-call drop)."""


@dataclass(slots=True)
class LineLog:
    """What happened around one caller line, in seconds on the line clock."""

    text: str
    started: float
    voiced_end: float  # the caller's last voiced audio of the line
    voiced_start: float  # the caller's first voiced audio of the line


@dataclass
class ScriptedCaller:
    """Implements :class:`~frontdesk.transports.local.CallerSide` from a list of lines."""

    lines: list[CallerLine]
    noise: np.ndarray | None = None
    """Background noise at ``rate``, looped under the caller's whole side of the call."""
    patience_s: float = 8.0
    """Speak anyway when the agent says nothing for this long (never wait forever)."""
    log: list[LineLog] = field(default_factory=list)
    rate: int = INBOUND_RATE
    """The caller's audio rate: 16 kHz into a Transport in-process; 8 kHz for a phone line,
    so that nothing between the caller's mouth and the wire has to resample it (a streaming
    resampler would send each 20 ms a tick late)."""

    def __post_init__(self) -> None:
        self._frame = frame_samples(self.rate)
        self._audio: list[np.ndarray] = []
        self._voiced: list[tuple[int, int]] = []
        self._line = 0
        self._pos = 0  # sample within the current line while speaking
        self._speaking = False
        self._agent_spoke_since_line = False
        self._reply_start: int | None = None
        self._last_agent_voice: int | None = None
        self._idle_since = 0
        self._finished = False

    async def prepare(self, voice: TTS) -> None:
        """Synthesize every line with ``voice`` (call once before the call starts).

        ``<pause N>`` is N ms from the last voiced sample before it to the first one after
        it: the silence the synthesizer pads each piece with (60-320 ms for flite) is cut
        at a pause, or a 1.8 s pause would really be 2.1 s."""
        for line in self.lines:
            pieces = _PAUSE.split(line.text)
            parts: list[np.ndarray] = []
            for i, piece in enumerate(pieces):
                if i % 2:
                    parts.append(np.zeros(int(self.rate * int(piece) / 1000), np.int16))
                elif piece.strip():
                    audio = await synthesize(voice, piece.strip(), self.rate)
                    parts.append(_trim(audio, lead=i > 0, trail=i + 1 < len(pieces)))
            audio = np.concatenate(parts) if parts else np.zeros(0, np.int16)
            voiced = np.flatnonzero(np.abs(audio.astype(np.int32)) > CALLER_VOICED)
            self._voiced.append((int(voiced[0]), int(voiced[-1]) + 1) if len(voiced) else (0, 0))
            pad = (-len(audio)) % self._frame
            self._audio.append(np.concatenate([audio, np.zeros(pad, np.int16)]))

    def speech(self) -> np.ndarray:
        """The voiced part of every prepared line, end to end (for speech levels)."""
        parts = [
            audio[a:b] for audio, (a, b) in zip(self._audio, self._voiced, strict=True) if b > a
        ]
        return np.concatenate(parts) if parts else np.zeros(0, np.int16)

    @property
    def done(self) -> bool:
        """All lines were said."""
        return self._finished

    def tick(self, index: int, heard: np.ndarray) -> CallerTick:
        """One 20 ms step: listen to ``heard``, decide, and produce caller audio."""
        now = index * TICK_S
        self._listen(index, heard)
        pcm = np.zeros(self._frame, np.int16)
        dtmf: str | None = None
        hang_up = False
        if self._speaking:
            pcm = self._next_audio()
        elif self._line < len(self.lines):
            line = self.lines[self._line]
            if self._should_start(line, index):
                dtmf = line.dtmf or None
                self._begin_line(index, now)
                if self._speaking:
                    pcm = self._next_audio()
        elif not self._finished and self._agent_done(index):
            self._finished = True
            hang_up = True
        if not self._speaking and self._line > 0:
            previous = self.lines[self._line - 1]
            if previous.hang_up and not self._finished:
                self._finished = True
                hang_up = True
        if self.noise is not None:
            pcm = _mix(pcm, self.noise, index * self._frame)
        return CallerTick(pcm, dtmf, hang_up)

    # --- internals -------------------------------------------------------------------
    def _listen(self, index: int, heard: np.ndarray) -> None:
        if not np.any(np.abs(heard.astype(np.int32)) > AGENT_VOICED):
            return
        if not self._agent_spoke_since_line:
            self._agent_spoke_since_line = True
            self._reply_start = index
        self._last_agent_voice = index

    def _should_start(self, line: CallerLine, index: int) -> bool:
        if line.barge_in_ms is not None:
            return (
                self._reply_start is not None
                and self._agent_spoke_since_line
                and (index - self._reply_start) * TICK_S * 1000 >= line.barge_in_ms
            )
        if self._agent_spoke_since_line and self._last_agent_voice is not None:
            return (index - self._last_agent_voice) * TICK_S * 1000 >= line.delay_ms
        return (index - self._idle_since) * TICK_S >= self.patience_s

    def _agent_done(self, index: int) -> bool:
        quiet_since = self._last_agent_voice if self._agent_spoke_since_line else None
        if quiet_since is None:
            return (index - self._idle_since) * TICK_S >= self.patience_s
        return (index - quiet_since) * TICK_S >= 1.5

    def _begin_line(self, index: int, now: float) -> None:
        audio = self._audio[self._line]
        self.log.append(
            LineLog(
                text=_PAUSE.sub("...", self.lines[self._line].text),
                started=now,
                voiced_start=now + self._voiced[self._line][0] / self.rate,
                voiced_end=now + self._voiced[self._line][1] / self.rate,
            )
        )
        self._pos = 0
        self._speaking = len(audio) > 0
        if not self._speaking:
            self._end_line(index)

    def _next_audio(self) -> np.ndarray:
        audio = self._audio[self._line]
        pcm = audio[self._pos : self._pos + self._frame]
        self._pos += self._frame
        if self._pos >= len(audio):
            self._speaking = False
            self._end_line(None)
        return pcm

    def _end_line(self, index: int | None) -> None:
        self._line += 1
        self._agent_spoke_since_line = False
        self._reply_start = None
        if index is not None:
            self._idle_since = index
        else:
            self._idle_since = round(self.log[-1].voiced_end / TICK_S)


async def synthesize(voice: TTS, text: str, rate: int = INBOUND_RATE) -> np.ndarray:
    """``text`` in ``voice``, as PCM at ``rate`` (16 kHz by default)."""
    chunks = [frame async for frame in voice.synthesize(text)]
    if not chunks:
        return np.zeros(0, np.int16)
    pcm = np.concatenate([c.pcm for c in chunks])
    source = chunks[0].sample_rate
    return pcm if source == rate else resample(pcm, source, rate)


def _trim(pcm: np.ndarray, *, lead: bool, trail: bool) -> np.ndarray:
    """``pcm`` without its leading and/or trailing silence."""
    voiced = np.flatnonzero(np.abs(pcm.astype(np.int32)) > CALLER_VOICED)
    if not len(voiced):
        return pcm
    return pcm[int(voiced[0]) if lead else 0 : int(voiced[-1]) + 1 if trail else len(pcm)]


def _mix(pcm: np.ndarray, noise: np.ndarray, at: int) -> np.ndarray:
    start = at % len(noise)
    bed = np.take(noise, range(start, start + len(pcm)), mode="wrap")
    return np.clip(pcm.astype(np.int32) + bed, -32768, 32767).astype(np.int16)
