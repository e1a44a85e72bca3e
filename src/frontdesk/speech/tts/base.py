"""The TTS protocol: text of one sentence or clause in, audio out as it is produced."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from frontdesk.audio import AudioFrame


class TTSError(RuntimeError):
    """Synthesis failed (the engine crashed, timed out or rejected the text)."""


class TTS(Protocol):
    """A voice. ``synthesize`` yields frames of any length at ``sample_rate``."""

    name: str
    sample_rate: int

    def synthesize(self, text: str) -> AsyncIterator[AudioFrame]:
        """Audio for ``text`` (one sentence or clause), streamed as the engine produces it."""
        ...

    async def aclose(self) -> None:
        """Stop the engine (child processes included)."""
        ...
