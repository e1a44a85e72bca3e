"""``LLMBrain``: the agent's brain on any OpenAI-compatible chat completions endpoint.

Each caller turn is one streamed completion with the front-desk tools (OpenAI, Groq,
Together, vLLM, Ollama, a llama.cpp server): text is yielded token by token (the Call's
chunker makes sentences of it), and tool calls are run through ``context.run_tool`` (so the
Call fences them and speaks fillers), their results sent back, and the completion continued
until the model answers in words.

The context stays bounded: the system prompt, then a window of at most ``max_history``
messages of the conversation. What older turns established and later turns need (the times
offered, the booking made) is kept in :class:`CallMemory` and restated in the system prompt
once those turns are out of the window.

Guardrails outside the model: :class:`BookingPolicy` refuses a booking of a time the
calendar did not offer in this call, and a second booking unless the caller's own words
asked for another, whatever the model was talked into.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field

from frontdesk.brain.base import (
    BrainEvent,
    EndCall,
    TextDelta,
    ToolCall,
    ToolResult,
    TurnContext,
)
from frontdesk.brain.llm_context import ChatHistory, assistant_tool_message, tool_message
from frontdesk.brain.llm_policy import (
    BOOK_APPOINTMENT,
    CHECK_AVAILABILITY,
    BookingPolicy,
    CallMemory,
    caller_name,
    caller_service,
    grounded_arguments,
    required_tool,
)
from frontdesk.brain.openai_stream import (
    ContentDelta,
    LLMError,
    StreamedToolCall,
    StreamEvent,
    StreamLimits,
    stream_chat_completion,
)
from frontdesk.brain.profile import AgentProfile
from frontdesk.business.toolset import frontdesk_tools

log = logging.getLogger(__name__)


class LLMSettings(BaseModel):
    """Where the model is and how long to wait for it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    base_url: str = "http://127.0.0.1:8080/v1"
    """The API root, up to and including ``/v1``."""
    model: str = "local"
    api_key: str | None = None
    connect_timeout_s: float = Field(default=3.0, gt=0)
    first_token_timeout_s: float = Field(default=8.0, gt=0)
    """From sending a request to its first token (text or tool call)."""
    between_tokens_timeout_s: float = Field(default=4.0, gt=0)
    temperature: float = Field(default=0.3, ge=0, le=2)
    max_tokens: int = Field(default=200, gt=0)
    max_history: int = Field(default=16, ge=2)
    """Conversation messages sent with each request (older ones are dropped)."""
    max_tool_rounds: int = Field(default=4, ge=1)
    """Completions per caller turn; the last one may not call tools."""
    direct_tools: bool = True
    """With ``guide_tools``: make the call a turn clearly needs (the check of a day the
    caller named; the booking of an offered time the caller picked, under the name they
    gave) before asking the model, instead of making the model write it: one model round,
    seconds on a CPU model, fewer before the caller hears an answer."""
    guide_tools: bool = True
    """Make the model call check_availability when the caller names a day the calendar was
    not asked about (see :func:`~frontdesk.brain.llm_policy.required_tool`)."""
    separate_state_message: bool = True
    """Send the per-turn part of the prompt (clock, call memory) as a second system message,
    so a server's prompt cache keeps the long static part; turn off for endpoints whose
    chat template allows only one system message."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> LLMSettings:
        """Settings from ``FRONTDESK_LLM_BASE_URL``, ``FRONTDESK_LLM_MODEL`` and
        ``FRONTDESK_LLM_API_KEY`` (unset ones keep their defaults), then ``overrides``."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for name in ("base_url", "model", "api_key"):
            value = env.get(f"FRONTDESK_LLM_{name.upper()}")
            if value:
                values[name] = value
        return cls(**(values | overrides))


@dataclass(slots=True)
class LLMTurnTimings:
    """How the model did on one caller turn (seconds from the turn's start)."""

    first_token_s: float | None = None
    """Until the first token of any kind (text or a tool call's first fragment)."""
    first_text_s: float | None = None
    """Until the first text the caller will hear."""
    total_s: float | None = None
    requests: int = 0
    tool_calls: int = 0
    chunks: int = 0


_EXPECT = (
    ("phone", ("phone number", "number to reach")),
    ("name", ("your name", "first and last name", "full name")),
    ("date", ("what day", "which day", "what time", "which time", "which of those", "works")),
)


class LLMBrain:
    """A brain that thinks with a language model over the OpenAI chat completions API."""

    def __init__(
        self,
        profile: AgentProfile,
        settings: LLMSettings | None = None,
        now: Callable[[], datetime] | None = None,
        *,
        tools: Sequence[Mapping[str, Any]] | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.profile = profile
        self.settings = settings or LLMSettings.from_env()
        self._now = now or (lambda: datetime.now(profile.tz))
        self.tools = list(tools) if tools is not None else frontdesk_tools().openai_tools()
        self._client = client
        self._owns_client = client is None
        self.memory = CallMemory()
        self.policy = BookingPolicy(self.memory, profile)
        self.last_turn_timings: LLMTurnTimings | None = None
        self.chat = ChatHistory(
            profile, self.settings.max_history, self.settings.separate_state_message
        )
        self._last_reply = ""

    def greeting(self) -> str:
        """The first line of the call, from the profile."""
        return self.profile.render(self.profile.greeting)

    def stock_lines(self) -> list[str]:
        """Lines said word for word in many calls, worth synthesizing ahead of time."""
        lines = self.profile.lines
        fixed = (lines.handoff, lines.cannot_answer, lines.urgent, lines.goodbye)
        return [self.greeting(), *lines.fillers, *(self.profile.render(x) for x in fixed)]

    def now(self) -> datetime:
        """The current time, from the clock this brain was given."""
        return self._now()

    def expecting(self) -> str:
        """What the next caller turn should hold, guessed from the question just asked."""
        asked = self._last_reply.lower()
        for kind, phrases in _EXPECT:
            if any(phrase in asked for phrase in phrases):
                return kind
        return "open"

    async def aclose(self) -> None:
        """Close the HTTP client, if this brain opened it."""
        if self._client is not None and self._owns_client:
            await self._client.aclose()
            self._client = None

    async def warm_up(self) -> float:
        """Send the system prompt and tools once, so a server with a prompt cache (llama.cpp)
        has read them before the first caller turn; returns the seconds it took."""
        started = time.monotonic()
        fresh = ChatHistory(self.profile, 2, self.settings.separate_state_message)
        payload = self._payload(fresh.messages("Hello.", [], self._now()), tool_choice="auto")
        payload["max_tokens"] = 1
        async for _ in self._complete(payload, LLMTurnTimings(), started):
            pass
        return time.monotonic() - started

    async def respond(self, text: str, context: TurnContext) -> AsyncIterator[BrainEvent]:
        """Answer one caller turn; raises ``LLMError`` when the endpoint fails."""
        started = time.monotonic()
        timings = LLMTurnTimings()
        self.last_turn_timings = timings
        context.metadata["llm"] = timings
        self.policy.new_turn(context.history)
        caller_text = text or (f"[pressed keys {context.dtmf}]" if context.dtmf else "")
        messages = self.chat.messages(
            caller_text, context.history, self._now(), self.memory.lines()
        )
        exchange = self.chat.begin_turn(caller_text)
        spoken: list[str] = []
        ending: str | None = None
        guide = self.settings.guide_tools
        named = caller_name(context.history) is not None
        required = required_tool(caller_text, self._now(), self.memory, named) if guide else None
        choice = required or "auto"
        try:
            direct = self._direct_call(required, caller_text, context) if required else None
            if direct is not None:
                done = await self._run_round((direct,), caller_text, context, exchange, timings)
                ending, choice = done.ending, "none"
            for round_index in range(self.settings.max_tool_rounds):
                if round_index == self.settings.max_tool_rounds - 1:
                    choice = "none"
                payload = self._payload([*messages, *exchange], tool_choice=choice)
                calls: tuple[StreamedToolCall, ...] = ()
                said: list[str] = []
                async for event in self._complete(payload, timings, started):
                    if isinstance(event, ContentDelta):
                        if timings.first_text_s is None:
                            timings.first_text_s = time.monotonic() - started
                        said.append(event.text)
                        yield TextDelta(event.text)
                    else:
                        calls = event.calls
                spoken += said
                if not calls:
                    break
                done = await self._run_round(calls, caller_text, context, exchange, timings)
                ending = ending or done.ending
                # Times just read from the calendar are to be offered now (a booking just made,
                # confirmed), not checked again, and a refused call is to be explained, not
                # retried: a small model otherwise repeats the call until its rounds run out.
                choice = "none" if guide and (done.checked or done.refused) else "auto"
        finally:
            timings.total_s = time.monotonic() - started
            self._last_reply = "".join(spoken)
        if ending is not None:
            yield EndCall(ending)
        elif not "".join(spoken).strip() and not self._acted(exchange):
            # Silence is never an answer on a phone call: let the caller's fallback speak.
            raise LLMError("the model ended its turn without a word for the caller")

    async def _run_round(
        self,
        calls: Sequence[StreamedToolCall],
        caller_text: str,
        context: TurnContext,
        exchange: list[dict[str, Any]],
        timings: LLMTurnTimings,
    ) -> _Round:
        """Run one round of tool calls and add it to the turn's ``exchange``."""
        if self.settings.guide_tools:
            calls = [self._grounded(call, caller_text) for call in calls]
        exchange.append(assistant_tool_message(calls))
        done = _Round()
        for call in calls:
            result, refused = await self._run(call, caller_text, context)
            timings.tool_calls += 1
            exchange.append(tool_message(call, result))
            done.refused |= refused
            done.checked |= call.name in (CHECK_AVAILABILITY, BOOK_APPOINTMENT) and result.ok
            if call.name == "end_call" and result.ok:
                done.ending = "completed"
        return done

    @staticmethod
    def _acted(exchange: list[dict[str, Any]]) -> bool:
        """Whether the turn ran a call-control tool (a transfer speaks for itself)."""
        return any(
            call["function"]["name"] == "transfer_to_human"
            for message in exchange
            for call in message.get("tool_calls", ())
        )

    # -- one completion --------------------------------------------------------------------

    def _payload(self, messages: list[dict[str, Any]], *, tool_choice: str) -> dict[str, Any]:
        """One request; ``tool_choice`` is "auto", "none" (words only: the tools stay in the
        request, so a server's prompt cache still matches) or the name of the tool the model
        must call (OpenAI's named ``tool_choice``)."""
        payload: dict[str, Any] = {
            "model": self.settings.model,
            "messages": messages,
            "stream": True,
            "temperature": self.settings.temperature,
            "max_tokens": self.settings.max_tokens,
        }
        if self.tools:
            payload["tools"] = self.tools
            payload["tool_choice"] = (
                tool_choice
                if tool_choice in ("auto", "none")
                else {"type": "function", "function": {"name": tool_choice}}
            )
        return payload

    async def _complete(
        self, payload: dict[str, Any], timings: LLMTurnTimings, started: float
    ) -> AsyncIterator[StreamEvent]:
        timings.requests += 1
        url = self.settings.base_url.rstrip("/") + "/chat/completions"
        key = self.settings.api_key
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        limits = StreamLimits(
            self.settings.first_token_timeout_s, self.settings.between_tokens_timeout_s
        )
        async for event in stream_chat_completion(self._http(), url, payload, limits, headers):
            timings.chunks += 1
            if timings.first_token_s is None:
                timings.first_token_s = time.monotonic() - started
            yield event

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            settings = self.settings
            timeout = httpx.Timeout(
                settings.first_token_timeout_s + settings.between_tokens_timeout_s,
                connect=settings.connect_timeout_s,
            )
            self._client = httpx.AsyncClient(timeout=timeout)
        return self._client

    def _direct_call(
        self, required: str, caller_text: str, context: TurnContext
    ) -> StreamedToolCall | None:
        """The call ``required`` as the brain makes it itself (``direct_tools``), or None
        when the model has to write it."""
        if not self.settings.direct_tools:
            return None
        arguments: dict[str, Any] = {}  # a check's day and part of day: from grounding
        if required == BOOK_APPOINTMENT:
            name = caller_name(context.history)
            if name is None:
                return None
            arguments = {"start": "", "name": name}  # the start: the picked one, grounded
            service = caller_service(context.history, self.profile)
            if service is not None:
                arguments["service"] = service
        call_id = f"call_direct_{self.chat.turns}"
        return StreamedToolCall(call_id, required, json.dumps(arguments))

    def _grounded(self, call: StreamedToolCall, caller_text: str) -> StreamedToolCall:
        """``call`` with the arguments the caller's own words fix (see
        :func:`~frontdesk.brain.llm_policy.grounded_arguments`)."""
        try:
            arguments = json.loads(call.arguments or "{}")
        except json.JSONDecodeError:
            return call  # reported to the model when it runs
        if not isinstance(arguments, dict):
            return call
        request = ToolCall(call.name, arguments, call.id)
        grounded = grounded_arguments(request, caller_text, self._now(), self.memory)
        if grounded.arguments == arguments:
            return call
        log.info("%s arguments %s grounded to %s", call.name, arguments, grounded.arguments)
        return StreamedToolCall(call.id, call.name, json.dumps(grounded.arguments))

    async def _run(
        self, call: StreamedToolCall, caller_text: str, context: TurnContext
    ) -> tuple[ToolResult, bool]:
        """Run one of the model's tool calls through the policy and the Call; returns the
        result and whether it was refused (bad arguments, or against the policy)."""
        try:
            arguments = json.loads(call.arguments) if call.arguments.strip() else {}
        except json.JSONDecodeError as error:
            message = f"arguments are not valid JSON: {error.msg}"
            return ToolResult(call.name, ok=False, error=message), True
        if not isinstance(arguments, dict):
            return ToolResult(call.name, ok=False, error="arguments must be a JSON object"), True
        request = ToolCall(call.name, arguments, call_id=call.id)
        refusal = self.policy.refusal(request, caller_text)
        if refusal is not None:
            log.warning("policy refused %s %s: %s", call.name, arguments, refusal)
            return ToolResult(call.name, ok=False, error=refusal), True
        try:
            result = await context.run_tool(request)
        except Exception as error:  # a broken tool must not take the conversation down
            log.exception("tool %s failed", call.name)
            result = ToolResult(call.name, ok=False, error=str(error))
        self.memory.note(request, result)
        if call.name == "book_appointment" and result.ok:
            self.policy.booked()
        return result, False


@dataclass(slots=True)
class _Round:
    """What one round of tool calls did."""

    ending: str | None = None
    checked: bool = False
    refused: bool = False
