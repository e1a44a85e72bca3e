"""A voice engine that fails does not leave the caller in dead air: espeak-ng stands in."""

from __future__ import annotations

import numpy as np
import pytest

from frontdesk.speech.tts import TTSError, Voice
from frontdesk.speech.tts.command import CommandVoice, EspeakVoice

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def words(*parts: str):
    for part in parts:
        yield part


async def test_a_failing_engine_is_replaced_sentence_by_sentence() -> None:
    broken = CommandVoice(["false"], 22050)  # a real engine process that always fails
    voice = Voice(broken, out_rate=8000, fallback=EspeakVoice())
    frames = [s async for s in voice.speak(words("Hello there, this is Sam. ", "How are you?"))]
    assert voice.fallbacks == len({s.chunk_index for s in frames}) >= 2
    pcm = np.concatenate([s.frame.pcm for s in frames])
    assert len(pcm) / 8000 > 1.0 and np.abs(pcm).max() > 1000, "the caller hears speech"
    assert all(len(s.frame.pcm) == 160 for s in frames)


async def test_without_a_fallback_the_failure_reaches_the_call() -> None:
    voice = Voice(CommandVoice(["false"], 22050), out_rate=8000)
    with pytest.raises(TTSError, match="false failed"):
        [s async for s in voice.speak(words("Hello there."))]
