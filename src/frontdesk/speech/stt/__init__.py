"""Streaming speech-to-text: the protocol and its providers (one file each)."""

from __future__ import annotations

from typing import Any

from frontdesk.speech.stt.base import STT, STTStream, Transcript

PROVIDERS = ("whisper", "pocketsphinx")
"""Names :func:`load_stt` accepts."""


def load_stt(name: str = "whisper", **options: Any) -> STT:
    """The speech recognizer called ``name``; ``options`` go to its constructor.

    Providers are imported here, on demand, so using one never loads the others' libraries.
    """
    if name == "whisper":
        from frontdesk.speech.stt.whisper import WhisperSTT

        return WhisperSTT(**options)
    if name == "pocketsphinx":
        from frontdesk.speech.stt.pocketsphinx import PocketsphinxSTT

        return PocketsphinxSTT(**options)
    raise ValueError(f"unknown STT provider {name!r} (available: {', '.join(PROVIDERS)})")


__all__ = ["PROVIDERS", "STT", "STTStream", "Transcript", "load_stt"]
