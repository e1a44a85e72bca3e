"""ReplyPlayback over a real loopback line: what the caller heard, suspend/resume, stop."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from frontdesk.audio import AudioFrame
from frontdesk.call.playback import ReplyPlayback
from frontdesk.evals.recording import CallRecording
from frontdesk.transports.local import CallerTick, LocalTransport

pytestmark = pytest.mark.asyncio(loop_scope="session")
FRAME = 320  # 20 ms at 16 kHz


class SilentCaller:
    def tick(self, index: int, heard: np.ndarray) -> CallerTick:
        return CallerTick(np.zeros(FRAME, np.int16))


def tone(frames: int) -> list[AudioFrame]:
    pcm = (3000 * np.sin(np.arange(frames * FRAME) * 0.2)).astype(np.int16)
    return [AudioFrame(pcm[i : i + FRAME], 16000) for i in range(0, len(pcm), FRAME)]


async def play(playback: ReplyPlayback, chunks: list[tuple[str, int]]) -> None:
    for key, (text, frames) in enumerate(chunks):
        pieces = tone(frames)
        for i, frame in enumerate(pieces):
            playback.add(frame, key, text, i == len(pieces) - 1)
    playback.input_done()


async def pump(transport: LocalTransport, playback: ReplyPlayback, seconds: float) -> None:
    """Deliver the line's mark echoes to the playback for ``seconds``."""
    events = transport.events()
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while loop.time() < end:
        try:
            event = await asyncio.wait_for(anext(events), end - loop.time())
        except TimeoutError:
            break
        name = getattr(event, "name", None)
        if name is not None:
            playback.on_mark(name)


CHUNKS = [("Okay.", 25), ("I have Thursday at two or Friday at ten.", 100)]  # 0.5 s + 2 s


async def test_a_reply_played_to_the_end_was_heard_in_full(tmp_path: Path) -> None:
    transport = LocalTransport(SilentCaller())
    playback = ReplyPlayback(transport, "r1")
    playback.start()
    await play(playback, CHUNKS)
    await pump(transport, playback, 2.8)
    assert not playback.speaking
    assert playback.heard_text() == "Okay. I have Thursday at two or Friday at ten."
    await transport.aclose()


async def test_stopping_keeps_the_heard_prefix_only(tmp_path: Path) -> None:
    transport = LocalTransport(SilentCaller(), recording_path=tmp_path / "stop.wav")
    playback = ReplyPlayback(transport, "r1")
    playback.start()
    await play(playback, CHUNKS)
    await pump(transport, playback, 1.3)  # 0.5 s of "Okay." + ~0.8 s of the second chunk
    await playback.stop()
    heard = playback.heard_text()
    assert heard.startswith("Okay. I have")
    assert "ten" not in heard, heard
    await pump(transport, playback, 0.3)
    await transport.aclose()
    recording = CallRecording.load(tmp_path / "stop.wav")
    total = recording.voiced_seconds("agent", 0, 10)
    assert 1.1 <= total <= 1.45, f"agent audio ran {total:.2f} s"


async def test_suspend_then_resume_plays_everything_once_more_from_the_heard_point(
    tmp_path: Path,
) -> None:
    transport = LocalTransport(SilentCaller(), recording_path=tmp_path / "resume.wav")
    playback = ReplyPlayback(transport, "r1")
    playback.start()
    await play(playback, CHUNKS)
    await pump(transport, playback, 1.0)
    await playback.suspend()
    assert playback.suspended
    await pump(transport, playback, 0.5)  # silence while the caller says "mm-hmm"
    playback.resume()
    await pump(transport, playback, 2.5)
    assert not playback.speaking
    assert playback.heard_text() == "Okay. I have Thursday at two or Friday at ten."
    await transport.aclose()
    recording = CallRecording.load(tmp_path / "resume.wav")
    # 2.5 s of reply; what the clear dropped before a mark confirmed it is played again
    # (at most the 100 ms between marks plus the 60 ms buffer).
    total = recording.voiced_seconds("agent", 0, 10)
    assert 2.5 <= total <= 2.7, f"{total:.2f} s of agent audio"
    quiet = recording.voiced_seconds("agent", 1.1, 1.4)
    assert quiet == 0.0, "silent while suspended"
