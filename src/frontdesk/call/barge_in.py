"""Barge-in: the caller talking over the agent.

Caller speech sustained for ``barge_in_min_s`` while a reply is live *suspends* its audio
at once (the transport drops what it has buffered). If the interruption then reads as a
backchannel ("mm-hmm", "okay") or a noise, the reply *resumes* from the last heard position;
anything else becomes a caller turn, and the Call interrupts the reply for good.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from frontdesk.call.backchannel import is_backchannel
from frontdesk.call.contracts import CallConfig
from frontdesk.call.listener import Listener, PauseTranscript, SpeechOnset
from frontdesk.call.replies import Reply


class BargeIn:
    """Suspends and resumes the current reply as the caller talks over it."""

    def __init__(self, listener: Listener, config: CallConfig, emit: Callable[..., None]) -> None:
        self.listener = listener
        self.config = config
        self.emit = emit
        self.reactions: list[float] = []
        """Seconds from each barge-in's speech onset to the agent's audio being stopped."""

    def on_speech_onset(self, reply: Reply | None, onset: SpeechOnset) -> None:
        """The caller started talking: a possible barge-in if a reply is live."""
        if reply is not None and reply.live and self.config.barge_in and reply.barge_onset is None:
            reply.barge_onset = onset.at

    async def check(self, reply: Reply | None, now: float) -> None:
        """At audio time ``now``: suspend the reply once the caller has talked long enough."""
        if reply is None or reply.barge_onset is None or reply.playback.suspended:
            return
        if not self.listener.speaking:
            reply.barge_onset = None  # too short to be anything: a click, a cough
            return
        if self.listener.speech_run_seconds(now) < self.config.barge_in_min_s:
            return
        await reply.playback.suspend()
        stopped = time.monotonic()
        self.reactions.append(stopped - self.listener.to_monotonic(reply.barge_onset))
        self.emit("barge_in", reaction_ms=round(self.reactions[-1] * 1000))

    def on_pause_transcript(self, reply: Reply | None, pause: PauseTranscript) -> None:
        """A suspended reply resumes as soon as the interruption reads as a backchannel,
        without waiting for the endpointing window."""
        if reply is not None and reply.playback.suspended and is_backchannel(pause.text):
            self.resume(reply)

    def resume(self, reply: Reply) -> None:
        """The interruption was a backchannel or a noise: carry on from the heard position."""
        self.emit("backchannel")
        reply.barge_onset = None
        reply.playback.resume()
        self.reactions.pop()
        self.listener.discard_utterance()
