"""The agent: what is loaded once per process (models, voice, database, profile) and how
one phone call is assembled from it.

This is the one place that chooses providers; the Call it builds knows only protocols.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from frontdesk.brain.base import ToolCall, ToolResult
from frontdesk.brain.flow import FlowBrain
from frontdesk.brain.profile import AgentProfile, load_profile
from frontdesk.brain.tools import ToolRegistry, ToolRunner
from frontdesk.brain.understand import sounds_complete
from frontdesk.business.calendar import SQLCalendar
from frontdesk.business.crm import SQLCRM
from frontdesk.business.toolset import FrontDeskEnv, HangUp, Transfer, frontdesk_tools
from frontdesk.call.contracts import CallConfig
from frontdesk.call.listener import Listener
from frontdesk.call.session import Call
from frontdesk.speech.stt import STT, load_stt
from frontdesk.speech.tts import TTS, PhraseCache, Voice, load_tts
from frontdesk.speech.tts.voice import spoken_chunks
from frontdesk.speech.turns import EndpointConfig, Endpointer
from frontdesk.speech.vad import VoiceActivityDetector
from frontdesk.store.db import Database
from frontdesk.store.records import CallStore
from frontdesk.transports.base import Transport

log = logging.getLogger(__name__)


def stt_options(provider: str, profile: AgentProfile) -> dict[str, Any]:
    """How the agent runs its recognizer. Whisper: no interim decodes (the call loop reads
    final transcripts only, and interims would compete for the CPU with the speculative
    decode the caller is waiting for), and the business's own words as the decoder's
    prompt, so "Delta Dental" is not heard as "Delta Delta"."""
    if provider != "whisper":
        return {}
    services = ", ".join(service.name for service in profile.services)
    questions = " ".join(entry.question for entry in profile.faq)
    return {
        "interim_interval_s": 0,
        "initial_prompt": f"{profile.business_name}. {services}. {questions}",
    }


class FrontDeskTools:
    """The ToolExecutor a Call uses: the front-desk tools behind the fenced runner."""

    def __init__(self, registry: ToolRegistry, runner: ToolRunner, env: FrontDeskEnv) -> None:
        self.registry = registry
        self.runner = runner
        self.env = env

    async def run(
        self, call: ToolCall, reply_id: str, reply_live: Callable[[], bool]
    ) -> ToolResult:
        """Run one tool call for reply ``reply_id``."""
        return await self.runner.run(call, reply_id, reply_live)

    def is_slow(self, name: str) -> bool:
        """Whether the tool deserves a spoken filler while it runs."""
        return name in self.registry and self.registry.get(name).slow

    def take_actions(self) -> list[tuple[str, str]]:
        """The call-control actions the tools asked for since the last call, as
        ("transfer", number) / ("hang_up", reason)."""
        actions, self.env.actions[:] = list(self.env.actions), []
        out: list[tuple[str, str]] = []
        for action in actions:
            if isinstance(action, Transfer):
                out.append(("transfer", action.number))
            elif isinstance(action, HangUp):
                out.append(("hang_up", action.reason))
        return out

    async def drain(self) -> None:
        """Wait for tools still running (they always complete)."""
        await self.runner.drain()


@dataclass(slots=True)
class AgentOptions:
    """How the agent is built. Everything has an offline default."""

    profile: str | Path | None = None
    database_url: str | None = None
    stt: str = "whisper"
    tts: str = "piper"
    phrase_cache_dir: str | Path | None = "var/phrase-cache"
    endpoint: EndpointConfig | None = None
    call: CallConfig | None = None
    now: Callable[[], datetime] | None = None


class Agent:
    """Shared parts for every call this process handles."""

    def __init__(
        self,
        options: AgentOptions,
        profile: AgentProfile,
        db: Database,
        stt: STT,
        tts: TTS,
        cache: PhraseCache,
        *,
        owns_engines: tuple[bool, bool] = (True, True),
    ) -> None:
        self.options = options
        self._owns_engines = owns_engines  # (stt, tts): closed by aclose() only if ours
        self.profile = profile
        self.db = db
        self.store = CallStore(db)
        self.stt = stt
        self.tts = tts
        self.cache = cache
        self.calendar = SQLCalendar(db, profile.business_hours(), slot_minutes=30, now=options.now)
        self.crm = SQLCRM(db)
        self.registry = frontdesk_tools()
        # espeak-ng speaks any sentence the main voice fails on (a crashed Piper worker).
        self.fallback_tts: TTS | None = None if tts.name == "espeak" else load_tts("espeak")

    @classmethod
    async def open(
        cls, options: AgentOptions | None = None, *, stt: STT | None = None, tts: TTS | None = None
    ) -> Agent:
        """Load the profile, open the database, load the models and warm the voice.

        ``stt``/``tts`` reuse engines already loaded (several agents in one process); the
        agent then does not close them.
        """
        options = options or AgentOptions()
        profile = load_profile(options.profile)
        db = Database(options.database_url)
        await asyncio.to_thread(db.upgrade)  # migrations (Alembic): any schema it finds
        owned = stt is None, tts is None
        stt = stt or load_stt(options.stt, **stt_options(options.stt, profile))
        tts = tts or load_tts(options.tts)
        start = getattr(tts, "start", None)
        if start is not None:
            await start()
        cache = PhraseCache(tts, options.phrase_cache_dir)
        agent = cls(options, profile, db, stt, tts, cache, owns_engines=owned)
        await cache.warm(agent.fixed_lines())
        return agent

    def call_config(self) -> CallConfig:
        """The per-call behaviour, with the profile's own lines."""
        config = self.options.call or CallConfig()
        fillers = self.profile.lines.fillers
        return replace(config, filler_line=fillers[0]) if fillers else config

    def fixed_lines(self) -> list[str]:
        """Every chunk a call is likely to say verbatim (the brain's stock lines and the
        Call's own), as the Voice will cut them: synthesized once, played from the cache."""
        config = self.call_config()
        lines = [
            *self.new_brain().stock_lines(),
            config.still_there_line,
            config.goodbye_line,
            config.error_line,
        ]
        return sorted({chunk for line in lines for chunk in spoken_chunks(line)} | set(lines))

    def new_brain(self) -> FlowBrain:
        """A brain for one call."""
        return FlowBrain(self.profile, now=self.options.now)

    async def new_call(
        self,
        transport: Transport,
        *,
        direction: str = "inbound",
        metadata: dict[str, Any] | None = None,
    ) -> Call:
        """A Call for ``transport``, with its record already started in the database."""
        call_id = await self.store.start_call(
            direction, transport.name, transport.caller_number, metadata or {}
        )
        env = FrontDeskEnv(
            calendar=self.calendar,
            crm=self.crm,
            store=self.store,
            call_id=call_id,
            caller_number=transport.caller_number,
            hours=self.profile.business_hours(),
            appointment_minutes=30,
            service_minutes={s.name: s.duration_minutes for s in self.profile.services},
            handoff_number=self.profile.handoff_number,
            **({"now": self.options.now} if self.options.now else {}),
        )
        runner = ToolRunner(self.registry, env, self.store, call_id)
        listener = Listener(
            VoiceActivityDetector(),
            self.stt.open(),
            Endpointer(sounds_complete, self.options.endpoint),
        )
        return Call(
            transport=transport,
            listener=listener,
            brain=self.new_brain(),
            voice=Voice(self.tts, transport.output_rate, self.cache, fallback=self.fallback_tts),
            tools=FrontDeskTools(self.registry, runner, env),
            recorder=self.store,
            call_id=call_id,
            config=self.call_config(),
        )

    async def aclose(self) -> None:
        """Stop the engines this agent loaded and release the database."""
        owns_stt, owns_tts = self._owns_engines
        if owns_tts:
            await self.tts.aclose()
        close = getattr(self.stt, "aclose", None)
        if owns_stt and close is not None:
            await close()
        self.db.dispose()
