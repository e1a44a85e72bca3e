"""Streaming speech-to-text: the protocol and its providers (one file each)."""

from frontdesk.speech.stt.base import STT, STTStream, Transcript

__all__ = ["STT", "STTStream", "Transcript"]
