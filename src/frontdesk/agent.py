"""The agent: what is loaded once per process (models, voice, database, profile) and how
one phone call is assembled from it.

This is the one place that chooses providers; the Call it builds knows only protocols.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from frontdesk.brain.base import Brain
from frontdesk.brain.fallback import FallbackBrain
from frontdesk.brain.flow import FlowBrain
from frontdesk.brain.llm import LLMBrain, LLMSettings
from frontdesk.brain.local_llm import (
    DEFAULT_LOCAL_MODEL,
    LOCAL_MODELS,
    LocalLLMServer,
    check_installed,
    local_model,
    model_path,
)
from frontdesk.brain.profile import AgentProfile, load_profile
from frontdesk.brain.tools import ToolRunner
from frontdesk.brain.understand import sounds_complete
from frontdesk.business.caldav_calendar import CalDAVCalendar, CalDAVSettings
from frontdesk.business.calendar import Calendar, SQLCalendar
from frontdesk.business.crm import SQLCRM
from frontdesk.business.tool_executor import FrontDeskTools
from frontdesk.business.toolset import FrontDeskEnv, frontdesk_tools
from frontdesk.call.contracts import CallConfig
from frontdesk.call.listener import Listener
from frontdesk.call.session import Call
from frontdesk.crm_sync import CallSync, OutboxWorker, SyncedCallStore, SyncSettings
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
    brain: str = "flow"
    """"flow": the rule-based qualification flow (embedded). "llm": a language model, with
    the flow taking over the call if the model's endpoint fails."""
    llm: LLMSettings | None = None
    """The "llm" brain's endpoint; None: the packaged local model, on a llama.cpp server
    this agent starts and stops."""
    local_model: str = DEFAULT_LOCAL_MODEL
    """Which packaged model the local llama.cpp server runs (``LOCAL_MODELS``)."""
    calendar: str = "sql"
    """"sql": the calendar in the app database. "caldav": ``caldav``'s server."""
    caldav: CalDAVSettings | None = None
    crm_sync: SyncSettings | None = None
    """Where finished calls are sent (GoHighLevel, HubSpot, a signed webhook), through the
    database outbox; an outbox worker runs while the agent is open."""


BRAINS = ("flow", "llm")
CALENDARS = ("sql", "caldav")
LOCAL_LLM_TIMEOUTS = {"first_token_timeout_s": 10.0, "between_tokens_timeout_s": 5.0}
"""How long a call waits for the local model before the flow brain takes over: long enough
for a CPU model after a tool call, short enough that the caller is not left in silence."""
WARM_UP_TIMEOUT_S = 180.0
"""How long the model may take to read the system prompt once, at start-up."""
OUTBOX_FLUSH_S = 10.0
"""At close, how long the agent keeps delivering what is due (the rest stays queued)."""


def check_options(options: AgentOptions) -> None:
    """Raise ValueError naming the first unusable choice in ``options``, or LocalModelError
    (one line: what to install) when they need the packaged local model and it is not
    installed. Loads nothing: a start-up check."""
    if options.brain not in BRAINS:
        raise ValueError(f"unknown brain {options.brain!r}: choose one of {', '.join(BRAINS)}")
    if options.calendar not in CALENDARS:
        raise ValueError(
            f"unknown calendar {options.calendar!r}: choose one of {', '.join(CALENDARS)}"
        )
    if options.calendar == "caldav" and options.caldav is None:
        raise ValueError("the caldav calendar needs its server's settings (FRONTDESK_CALDAV_URL)")
    if options.brain == "llm" and options.llm is None and options.local_model not in LOCAL_MODELS:
        choices = ", ".join(LOCAL_MODELS)
        raise ValueError(f"unknown local model {options.local_model!r}: choose one of {choices}")
    if options.brain == "llm" and options.llm is None:
        check_installed(LOCAL_MODELS[options.local_model])


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
        calendar: Calendar | None = None,
        llm: LLMSettings | None = None,
        llm_server: LocalLLMServer | None = None,
        sync: CallSync | None = None,
        outbox: OutboxWorker | None = None,
    ) -> None:
        self.options = options
        self._owns_engines = owns_engines  # (stt, tts): closed by aclose() only if ours
        self.profile = profile
        self.db = db
        # With CRM destinations, finishing a call also queues it for them (same transaction
        # boundary as the record: nothing is sent from the call path itself).
        self.store = SyncedCallStore(db, sync) if sync is not None else CallStore(db)
        self.stt = stt
        self.tts = tts
        self.cache = cache
        self.calendar = calendar or SQLCalendar(
            db, profile.business_hours(), slot_minutes=30, now=options.now
        )
        self.crm = SQLCRM(db)
        self.llm = llm
        """The "llm" brain's endpoint (None: the flow brain answers)."""
        self.llm_server = llm_server
        self._llm_client: httpx.AsyncClient | None = None
        self.outbox = outbox
        self._outbox_stop = asyncio.Event()
        self._outbox_task: asyncio.Task[None] | None = None
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
        check_options(options)
        profile = load_profile(options.profile)
        db = Database(options.database_url)
        await asyncio.to_thread(db.upgrade)  # migrations (Alembic): any schema it finds
        backends: dict[str, Any] = {"calendar": _calendar(options, profile, db)}
        if options.crm_sync is not None:
            backends["sync"], backends["outbox"] = CallSync.from_settings(db, options.crm_sync)
        try:
            if options.brain == "llm":
                backends["llm"] = options.llm
                if options.llm is None:
                    # Joining and hashing the slices reads the whole model once: off the loop.
                    model = await asyncio.to_thread(model_path, local_model(options.local_model))
                    backends["llm_server"] = server = LocalLLMServer(model)
                    await server.start()
                    backends["llm"] = server.settings(**LOCAL_LLM_TIMEOUTS)
            owned = stt is None, tts is None
            stt = stt or load_stt(options.stt, **stt_options(options.stt, profile))
            tts = tts or load_tts(options.tts)
        except BaseException:
            await _close_backends(backends)
            db.dispose()
            raise
        start = getattr(tts, "start", None)
        if start is not None:
            await start()
        cache = PhraseCache(tts, options.phrase_cache_dir)
        agent = cls(options, profile, db, stt, tts, cache, owns_engines=owned, **backends)
        try:
            await cache.warm(agent.fixed_lines())
            await agent._warm_llm()
        except BaseException:
            await agent.aclose()
            raise
        agent._start_outbox()
        return agent

    async def _warm_llm(self) -> None:
        """Have the model read the system prompt and tools once, before the first caller
        waits on it (a llama.cpp server caches the prompt). A model that cannot be reached
        now is logged, not fatal: calls fall back to the flow brain."""
        if self.llm is None:
            return
        # Reading a long prompt cold takes a CPU model far longer than a caller may wait
        # for a token (half a minute on two busy cores): this one request may take that.
        patient = self.llm.model_copy(update={"first_token_timeout_s": WARM_UP_TIMEOUT_S})
        brain = LLMBrain(self.profile, patient, now=self.options.now)
        try:
            seconds = await brain.warm_up()
            log.info("language model at %s read the prompt in %.1f s", self.llm.base_url, seconds)
        except Exception as error:
            log.warning("language model at %s is not answering: %s", self.llm.base_url, error)
        finally:
            await brain.aclose()

    def _llm_http(self) -> httpx.AsyncClient:
        """One HTTP client (connection pool) for every call's model requests."""
        if self._llm_client is None:
            assert self.llm is not None
            timeout = httpx.Timeout(
                self.llm.first_token_timeout_s + self.llm.between_tokens_timeout_s,
                connect=self.llm.connect_timeout_s,
            )
            self._llm_client = httpx.AsyncClient(timeout=timeout)
        return self._llm_client

    def _start_outbox(self) -> None:
        if self.outbox is not None and self._outbox_task is None:
            self._outbox_task = asyncio.create_task(
                self.outbox.run_forever(self._outbox_stop), name="frontdesk-outbox"
            )

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
            config.filler_line,
            *config.think_filler_lines,
            config.still_there_line,
            config.goodbye_line,
            config.error_line,
        ]
        return sorted({chunk for line in lines for chunk in spoken_chunks(line)} | set(lines))

    def new_brain(self) -> Brain:
        """A brain for one call: the flow, or the language model backed by the flow (the
        caller hears a short apology, one retry, then the flow for the rest of the call)."""
        flow = FlowBrain(self.profile, now=self.options.now)
        if self.llm is None:
            return flow
        model = LLMBrain(self.profile, self.llm, now=self.options.now, client=self._llm_http())
        return FallbackBrain(model, flow)

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
        """Deliver what the outbox has due (briefly), stop the local model, the engines
        this agent loaded, and release the database."""
        if self._outbox_task is not None:
            self._outbox_stop.set()
            await self._outbox_task
            self._outbox_task = None
        if self.outbox is not None:
            # A call that just ended (the demo's) is delivered now if the CRM answers;
            # whatever fails stays queued in the database for the next run.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(OUTBOX_FLUSH_S):
                    await self.outbox.run_once()
        if self._llm_client is not None:
            await self._llm_client.aclose()
            self._llm_client = None
        await _close_backends(
            {"calendar": self.calendar, "llm_server": self.llm_server, "outbox": self.outbox}
        )
        owns_stt, owns_tts = self._owns_engines
        if owns_tts:
            await self.tts.aclose()
        close = getattr(self.stt, "aclose", None)
        if owns_stt and close is not None:
            await close()
        self.db.dispose()


def _calendar(options: AgentOptions, profile: AgentProfile, db: Database) -> Calendar:
    hours = profile.business_hours()
    if options.calendar == "caldav":
        assert options.caldav is not None  # check_options
        crm = SQLCRM(db)  # names the caller in the event
        return CalDAVCalendar(
            options.caldav, hours, slot_minutes=30, now=options.now, contact_lookup=crm.get_contact
        )
    return SQLCalendar(db, hours, slot_minutes=30, now=options.now)


async def _close_backends(backends: dict[str, Any]) -> None:
    """Close what was opened for the backends; each step on its own."""
    for name in ("outbox", "llm_server", "calendar"):
        part = backends.get(name)
        closer = getattr(part, "aclose", None) or getattr(part, "stop", None)
        if closer is None:
            continue
        try:
            await closer()
        except Exception:
            log.exception("closing the %s failed", name)
