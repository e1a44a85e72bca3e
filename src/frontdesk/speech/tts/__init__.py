"""Streaming text-to-speech: the protocol, providers (one file each), chunker, phrase cache."""

from frontdesk.speech.tts.base import TTS, TTSError
from frontdesk.speech.tts.chunker import SentenceChunker
from frontdesk.speech.tts.phrase_cache import PhraseCache
from frontdesk.speech.tts.voice import SpokenFrame, Utterance, Voice

VOICES = ("piper", "espeak", "flite")
"""Names :func:`load_tts` knows: Piper is the default agent voice, espeak-ng the fallback."""


def load_tts(name: str = "piper") -> TTS:
    """The named voice, ready to use (Piper's worker process starts on first use)."""
    if name == "piper":
        from frontdesk.speech.tts.piper import PiperTTS

        return PiperTTS()
    if name == "espeak":
        from frontdesk.speech.tts.command import EspeakVoice

        return EspeakVoice()
    if name == "flite":
        from frontdesk.speech.tts.command import FliteVoice

        return FliteVoice()
    raise ValueError(f"unknown TTS voice {name!r} (choose from: {', '.join(VOICES)})")


__all__ = [
    "TTS",
    "VOICES",
    "PhraseCache",
    "SentenceChunker",
    "SpokenFrame",
    "TTSError",
    "Utterance",
    "Voice",
    "load_tts",
]
