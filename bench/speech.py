"""Speech-stack benchmark: VAD cost per frame, STT delay after speech ends (with and without
speculative decoding), TTS time to first audio. Prints median and p90 over >= 20 runs.

    .venv/bin/python bench/speech.py            (make bench)

The STT delay is what the caller waits for: from the end of their speech to the final
transcript, when the endpointer closes the turn 250 ms into the pause. Speculative decoding
starts when the VAD reports the pause; without it, decoding starts when the turn closes.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))

from _stats import summary
from frontdesk.speech.stt.whisper import WhisperSTT
from frontdesk.speech.tts import Voice
from frontdesk.speech.tts.piper import PiperTTS
from frontdesk.speech.vad import SpeechEnd, VoiceActivityDetector
from speech_corpus import BOOKING_SENTENCES, caller_audio, phone_line, to_frames

RUNS = 20
SAMPLE_RATE = 16000
ENDPOINT_S = 0.25
REPLY = "Sure, I can help with that. I have Thursday at two or Friday at ten."


async def utterances() -> list[np.ndarray]:
    """Booking sentences over the phone path (8 kHz mu-law), two caller voices."""
    out = []
    for i, text in enumerate(BOOKING_SENTENCES * 2):
        voice = ("slt", "rms")[i // len(BOOKING_SENTENCES) % 2]
        out.append(phone_line(await caller_audio(text, voice)))
    return out[:RUNS]


def bench_vad(clips: list[np.ndarray]) -> None:
    vad = VoiceActivityDetector()
    frames = [f for clip in clips for f in to_frames(clip)]
    per_frame: list[float] = []
    for frame in frames:
        started = time.perf_counter()
        vad.process(frame)
        per_frame.append(time.perf_counter() - started)
    print(f"VAD per 20 ms frame (µs):          {summary(per_frame, 1e6)}")


async def stt_delay(stt: WhisperSTT, clip: np.ndarray, speculative: bool) -> float:
    """Seconds from the end of speech to the final transcript, as the Listener sees it.

    Frames arrive until the VAD reports the final pause (that moment is ``detected``, some
    100 ms after the speech ended); from there on the clock is real: the turn closes
    ENDPOINT_S after the end of speech and the final transcript is awaited.
    """
    # Trailing silence long enough for the VAD to report the final pause.
    frames = to_frames(np.concatenate([clip, np.zeros(SAMPLE_RATE // 2, np.int16)]))
    vad = VoiceActivityDetector()
    stream = stt.open()
    speech_end = detected = None
    for frame in frames:
        await stream.push(frame)
        ends = [e for e in vad.process(frame) if isinstance(e, SpeechEnd)]
        if ends:
            speech_end, detected = ends[-1].timestamp, frame.end
            if clip[int(frame.end * SAMPLE_RATE) :].any():
                continue  # a pause inside the sentence, not its end
            break
    assert speech_end is not None and detected is not None, "the VAD never heard the end"
    t0 = time.perf_counter() - (detected - speech_end)
    if speculative:
        stream.speculate()
    await asyncio.sleep(max(0.0, ENDPOINT_S - (time.perf_counter() - t0)))
    await stream.finish()
    delay = time.perf_counter() - t0
    await stream.aclose()
    return delay


async def bench_stt(clips: list[np.ndarray]) -> None:
    for window, label in ((8, "8 s encoder window (default)"), (0, "30 s encoder window")):
        stt = WhisperSTT(interim_interval_s=0, min_window_s=window)  # as the agent runs it
        await stt.transcribe(to_frames(clips[0]))  # warm
        for speculative in (False, True):
            delays = [await stt_delay(stt, clip, speculative) for clip in clips]
            mode = "with" if speculative else "without"
            print(f"STT end of speech -> final, {mode:7} speculation, {label}:")
            print(f"    (ms) {summary(delays)}")
        await stt.aclose()


async def bench_tts() -> None:
    tts = PiperTTS()
    await tts.start()
    engine: list[float] = []
    voice_first: list[float] = []
    voice = Voice(tts, out_rate=8000)
    for _ in range(RUNS):
        started = time.perf_counter()
        async for _frame in tts.synthesize("Sure, I can help you with that."):
            engine.append(time.perf_counter() - started)
            break

        async def deltas():
            for word in REPLY.split(" "):
                yield word + " "

        started = time.perf_counter()
        speech = voice.speak(deltas())
        async for _spoken in speech:
            voice_first.append(time.perf_counter() - started)
            break
        await speech.aclose()
    print(f"TTS Piper first audio, one sentence (ms):  {summary(engine)}")
    print(f"TTS Voice first 20 ms frame at 8 kHz (ms): {summary(voice_first)}  (first clause)")
    await tts.aclose()


async def main() -> None:
    clips = await utterances()
    print(f"{len(clips)} booking utterances over the phone path, {os.cpu_count()} cores\n")
    bench_vad(clips)
    await bench_stt(clips)
    await bench_tts()


if __name__ == "__main__":
    asyncio.run(main())
