"""Does the Smart Turn v3.2 audio model help endpointing? Turn endings judged three ways.

A labeled set of caller turn endings in 4 flite caller voices, each clean (16 kHz), over the
phone path (8 kHz mu-law) and over the phone with pink noise (``--snr``): half complete
sentences, half incomplete turns that stop at a pause. Incomplete turns come two ways: *cut*
from a longer sentence at a word boundary found from flite's phone timings (mid-sentence
prosody, as a caller pausing mid-thought sounds) and *said* on their own ("Actually, wait",
"Can I book for um": the synthesizer ends them with a final fall, as someone trailing off
might). Each clip is 0.3 s of silence, the speech, then ``--pause`` s of the pause: the audio
the endpointer has when the VAD reports the pause.

Judges: the text rules (``sounds_complete`` on the Whisper tiny.en transcript, and on the true
words for reference), Smart Turn's probability against a threshold, and combinations; "re"
rules score Smart Turn again 500 ms into the pause before falling back to the long window.
Every rule yields when it closes the turn: 250 ms into the pause, 500 ms, or the 2 s window.
"Cut off" counts incomplete turns closed before 2 s; "waits 2s" finished turns held for 2 s.

    .venv/bin/python bench/endpointing.py [--pause 0.2] [--snr 20] [--voices slt,rms] [-v]

Runs in ~75 s on 2 cores (288 endings: 96 Whisper decodes x 3 paths, 576 Smart Turn scores).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))

from _stats import summary
from frontdesk.brain.understand import sounds_complete
from frontdesk.speech.smart_turn import SmartTurnModel
from frontdesk.speech.stt.whisper import WhisperSTT
from speech_corpus import caller_audio, phone_line, speech_span, with_pink_noise

SAMPLE_RATE = 16000
LEAD_S = 0.3
COMPLETE_S, INCOMPLETE_S = 0.25, 2.0  # the endpointer's windows (EndpointConfig defaults)
LATER_S = 0.5
"""A second Smart Turn look, this far into the pause (it hears the silence grow)."""

COMPLETE = [
    "I'd like to book a cleaning.",
    "Thursday afternoon works.",
    "My number is five five five, two one three, four eight seven six.",
    "I'd like to come in on Thursday.",
    "Could we do next Monday morning?",
    "The appointment is for my son, David.",
    "Yes, that works for me.",
    "Where are you located?",
    "No, thank you.",
    "I need a cleaning and a checkup.",
    "Do you have anything on Thursday or Friday?",
    "Thursday works, but only after three.",
]
CUT = [  # (what is said before the pause, the sentence it is cut from)
    ("I'd like to come in on", "I'd like to come in on Thursday."),
    ("My number is five five five", COMPLETE[2]),
    ("Could we do next", "Could we do next Monday morning?"),
    ("The appointment is for my", "The appointment is for my son, David."),
    ("I need a cleaning and", "I need a cleaning and a checkup."),
    ("Do you have anything on Thursday or", "Do you have anything on Thursday or Friday?"),
    ("Thursday works, but", "Thursday works, but only after three."),
    ("I was wondering if", "I was wondering if you are open on Saturday."),
]
SAID = ["Actually, wait", "Can I book for um", "Hold on, let me check", "and"]


@dataclass
class Ending:
    """One clip of a turn ending, with each judge's inputs."""

    words: str
    complete: bool
    kind: str  # complete / cut / said
    voice: str
    path: str  # clean / phone / noisy
    pcm: np.ndarray  # up to the pause reported by the VAD
    later: np.ndarray  # the same turn further into the pause, for a second look
    transcript: str = ""
    stt_s: float = 0.0
    prob: float = 0.0
    prob_later: float = 0.0
    smart_s: list[float] = field(default_factory=list)
    text_s: float = 0.0
    text_ok: bool = False


def phone_ends(text: str, voice: str) -> list[tuple[str, float]]:
    """flite's phones for ``text`` and the time each ends (s), pauses included."""
    out = subprocess.run(
        ["flite", "-voice", voice, "-psdur", "-t", text, "-o", "/dev/null"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return [(p, float(t)) for p, t in (item.rsplit(":", 1) for item in out)]


def cut_point(prefix: str, sentence: str, voice: str) -> int:
    """Sample where the last phone of ``prefix`` ends inside flite's ``sentence``."""
    want = [p for p, _ in phone_ends(prefix, voice) if p != "pau"]
    spoken = [(p, t) for p, t in phone_ends(sentence, voice) if p != "pau"]
    if [p for p, _ in spoken[: len(want)]] != want:
        raise RuntimeError(f"{voice}: {prefix!r} is not how flite starts {sentence!r}")
    return round(spoken[len(want) - 1][1] * SAMPLE_RATE)


def framed(speech: np.ndarray, pause_s: float) -> np.ndarray:
    """Lead silence, the speech (its own leading quiet trimmed), then the pause."""
    first, _ = speech_span(speech)
    speech = speech[first:].astype(np.float32)
    fade = min(80, len(speech))  # 5 ms: a cut mid-waveform must not click
    speech[-fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
    lead, pause = np.zeros(round(LEAD_S * SAMPLE_RATE)), np.zeros(round(pause_s * SAMPLE_RATE))
    return np.concatenate([lead, speech, pause]).astype(np.int16)


async def build_set(voices: list[str], pause_s: float, later_s: float, snr: float) -> list[Ending]:
    """Every ending in every voice: clean, over the phone path, and noisy over the phone."""
    clips: list[tuple[str, bool, str, str, np.ndarray]] = []
    for voice in voices:
        for text in COMPLETE:
            full = await caller_audio(text, voice)
            clips.append((text, True, "complete", voice, full[: speech_span(full)[1]]))
        for prefix, sentence in CUT:
            full = await caller_audio(sentence, voice)
            clips.append((prefix, False, "cut", voice, full[: cut_point(prefix, sentence, voice)]))
        for text in SAID:
            said = await caller_audio(text, voice)
            clips.append((text, False, "said", voice, said[: speech_span(said)[1]]))
    endings = []
    for i, (words, complete, kind, voice, speech) in enumerate(clips):
        later = framed(speech, later_s)
        early = len(later) - round((later_s - pause_s) * SAMPLE_RATE)
        for path, pcm in (
            ("clean", later),
            ("phone", phone_line(later)),
            ("noisy", phone_line(with_pink_noise(later, snr, seed=i))),
        ):
            endings.append(Ending(words, complete, kind, voice, path, pcm[:early], pcm))
    return endings


def judge_all(endings: list[Ending], stt: WhisperSTT, model: SmartTurnModel) -> None:
    """Transcribe, score and time every ending (one at a time: 2 cores, no contention)."""
    for e in endings:
        started = time.perf_counter()
        e.transcript = stt.decode(e.pcm)
        e.stt_s = time.perf_counter() - started
        started = time.perf_counter()
        e.text_ok = sounds_complete(e.transcript, "open")
        e.text_s = time.perf_counter() - started
        for later in (False, True):
            started = time.perf_counter()
            prob = model.probability(e.later if later else e.pcm)
            e.smart_s.append(time.perf_counter() - started)
            e.prob_later, e.prob = (prob, e.prob) if later else (e.prob_later, prob)


def close_at(complete: bool) -> float:
    """Seconds into the pause at which a single verdict closes the turn."""
    return COMPLETE_S if complete else INCOMPLETE_S


def recheck(e: Ending, threshold: float) -> float:
    """Text complete: close at 250 ms if Smart Turn agrees, else look again at ``LATER_S``."""
    if not e.text_ok:
        return INCOMPLETE_S
    if e.prob > threshold:
        return COMPLETE_S
    return LATER_S if e.prob_later > threshold else INCOMPLETE_S


Rule = Callable[[Ending], float]
"""When (s into the pause) a judge closes the turn."""
RULES: list[tuple[str, Rule]] = [
    ("text, true words", lambda e: close_at(sounds_complete(e.words, "open"))),
    ("text (Whisper)", lambda e: close_at(e.text_ok)),
    ("st>0.5", lambda e: close_at(e.prob > 0.5)),
    ("st>0.2", lambda e: close_at(e.prob > 0.2)),
    ("st>0.5 @later", lambda e: close_at(e.prob_later > 0.5)),
    ("text AND st>0.5", lambda e: close_at(e.text_ok and e.prob > 0.5)),
    ("text AND st>0.1", lambda e: close_at(e.text_ok and e.prob > 0.1)),
    ("text AND st>0.5 re", lambda e: recheck(e, 0.5)),
    ("text AND st>0.1 re", lambda e: recheck(e, 0.1)),
    ("text OR st>0.9", lambda e: close_at(e.text_ok or e.prob > 0.9)),
]


def table(endings: list[Ending], verbose: bool) -> None:
    """One row per rule and path: verdicts right on each class, the two errors, mean wait."""
    head = (
        f"{'rule':<20}{'path':<7}{'acc':>5}{'complete ok':>13}{'incompl ok':>12}"
        f"{'cut off':>9}{'waits 2s':>10}{'wait ms':>9}"
    )
    print(head)
    print("-" * len(head))
    for name, rule in RULES:
        for path in ("clean", "phone", "noisy", "all"):
            rows = [(e, rule(e)) for e in endings if path in ("all", e.path)]
            comp = [t for e, t in rows if e.complete]
            inc = [t for e, t in rows if not e.complete]
            comp_ok = sum(t < INCOMPLETE_S for t in comp)
            inc_ok = sum(t >= INCOMPLETE_S for t in inc)
            print(
                f"{name if path == 'clean' else '':<20}{path:<7}"
                f"{(comp_ok + inc_ok) / len(rows):>5.0%}{comp_ok:>7}/{len(comp):<5}"
                f"{inc_ok:>6}/{len(inc):<5}{1 - inc_ok / len(inc):>9.0%}"
                f"{1 - comp_ok / len(comp):>10.0%}{np.mean(comp) * 1000:>9.0f}"
            )
        if verbose:
            for e, t in rows:
                if (t < INCOMPLETE_S) != e.complete:
                    print(
                        f"    wrong: {e.voice:5} {e.path:5} p={e.prob:.2f}/{e.prob_later:.2f} "
                        f"{e.words!r} -> {e.transcript!r}"
                    )
    print(
        f"cut off: incomplete turns closed before {INCOMPLETE_S:.0f} s (a caller pausing"
        " mid-thought is cut off); waits 2s:\nfinished turns held for the whole"
        f" {INCOMPLETE_S:.0f} s window; wait ms: mean close time on finished turns."
        f"\nst = Smart Turn probability at the pause; @later / re = scored again"
        f" {LATER_S * 1000:.0f} ms into the pause."
    )


def by_kind(endings: list[Ending]) -> None:
    """Where each judge fails: per kind of ending, share judged complete."""
    print("\nshare judged complete at the pause, by kind (all paths)")
    print(f"{'kind':<10}{'n':>4}{'text':>7}{'st>0.5':>8}{'AND':>6}   st p: median (min-max)")
    for kind in ("complete", "cut", "said"):
        rows = [e for e in endings if e.kind == kind]
        probs = np.array([e.prob for e in rows])
        text = np.mean([e.text_ok for e in rows])
        both = np.mean([e.text_ok and e.prob > 0.5 for e in rows])
        print(
            f"{kind:<10}{len(rows):>4}{text:>7.0%}{np.mean(probs > 0.5):>8.0%}{both:>6.0%}"
            f"   {np.median(probs):.2f} ({probs.min():.2f}-{probs.max():.2f})"
        )
    print("\nSmart Turn p per ending, voice by voice (clean/phone/noisy)")
    for words in dict.fromkeys(e.words for e in endings):
        rows = [e for e in endings if e.words == words]
        cells = "  ".join(
            "/".join(f"{e.prob:.2f}"[1:] for e in rows[i : i + 3]) for i in range(0, len(rows), 3)
        )
        label = words if len(words) <= 36 else words[:33] + "..."
        print(f"  {'+' if rows[0].complete else '-'} {label:<36} {cells}")


async def main(voices: list[str], pause_s: float, snr: float, verbose: bool) -> None:
    started = time.perf_counter()
    endings = await build_set(voices, pause_s, LATER_S, snr)
    n_complete = sum(e.complete for e in endings)
    print(
        f"{len(endings)} endings ({n_complete} complete, {len(endings) - n_complete} incomplete):"
        f" {len(endings) // 3} clips in voices {','.join(voices)}, each clean, over the phone"
        f" path, and over the phone with pink noise at {snr:.0f} dB SNR; judged"
        f" {pause_s * 1000:.0f} ms into the pause\n"
    )
    stt = WhisperSTT(interim_interval_s=0)
    model = SmartTurnModel()
    stt.decode(endings[0].pcm), model.probability(endings[0].pcm)  # warm up both
    await asyncio.to_thread(judge_all, endings, stt, model)
    await stt.aclose()
    table(endings, verbose)
    by_kind(endings)
    print("\ncost per decision (ms)")
    print(f"  Whisper transcript (text judge input): {summary([e.stt_s for e in endings])}")
    print(f"  text rules on the transcript:          {summary([e.text_s for e in endings])}")
    smart = [s for e in endings for s in e.smart_s]
    print(f"  Smart Turn (features + ONNX, 1 thread): {summary(smart)}")
    print(f"\n(took {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pause", type=float, default=0.2, help="silence heard at the pause (s)")
    parser.add_argument("--snr", type=float, default=20.0, help="noisy path SNR (dB)")
    parser.add_argument("--voices", default="slt,rms,awb,kal16")
    parser.add_argument("-v", "--verbose", action="store_true", help="list every wrong verdict")
    args = parser.parse_args()
    asyncio.run(main(args.voices.split(","), args.pause, args.snr, args.verbose))
