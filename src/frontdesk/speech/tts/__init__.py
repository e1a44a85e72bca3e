"""Streaming text-to-speech: the protocol, providers (one file each), chunker, phrase cache."""

from frontdesk.speech.tts.base import TTS, TTSError

__all__ = ["TTS", "TTSError"]
