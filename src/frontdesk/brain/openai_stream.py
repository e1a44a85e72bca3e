"""Streaming chat completions from any OpenAI-compatible endpoint.

Reads the server-sent events of ``POST /chat/completions`` with ``stream: true``, yields the
reply text as it arrives, and assembles tool calls whose id, name and arguments come split
across many chunks (the OpenAI wire format: each ``delta.tool_calls`` entry carries an
``index``; the name and the first piece of the arguments usually arrive first, the rest of
the arguments later). Every way the endpoint can let a caller down (refused connection, HTTP
error, no first token in time, a stall between tokens, a dropped connection, garbage on the
wire) becomes an :class:`LLMError`, never a hang.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx


class LLMError(Exception):
    """The language model endpoint failed; the message says how."""


class LLMTimeout(LLMError):
    """The endpoint sent no first token, or no next token, in time."""


@dataclass(frozen=True, slots=True)
class StreamedToolCall:
    """One complete tool call from the stream; ``arguments`` is the model's raw JSON text."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class ContentDelta:
    """A piece of reply text, as soon as it arrived."""

    text: str


@dataclass(frozen=True, slots=True)
class ToolCallsReady:
    """The stream ended asking for these tool calls."""

    calls: tuple[StreamedToolCall, ...]


StreamEvent = ContentDelta | ToolCallsReady


async def sse_data(lines: AsyncIterator[str]) -> AsyncIterator[str]:
    """The ``data`` payload of each server-sent event, until ``[DONE]`` or the end.

    Comment lines (``:``) and other fields are skipped; several ``data`` lines of one event
    are joined with newlines, as the SSE standard says.
    """
    data: list[str] = []
    async for raw in lines:
        line = raw.rstrip("\r")
        if not line:
            if data:
                payload, data = "\n".join(data), []
                if payload.strip() == "[DONE]":
                    return
                yield payload
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        if field == "data":
            data.append(value[1:] if value.startswith(" ") else value)
    if data and "\n".join(data).strip() != "[DONE]":
        yield "\n".join(data)


class ToolCallAssembler:
    """Joins ``delta.tool_calls`` fragments into whole calls, keyed by their ``index``."""

    def __init__(self) -> None:
        self._parts: dict[int, dict[str, str]] = {}

    def add(self, fragments: list[Any]) -> None:
        """Take the ``tool_calls`` list of one chunk's delta."""
        for position, fragment in enumerate(fragments):
            if not isinstance(fragment, Mapping):
                raise LLMError(f"malformed tool call fragment: {fragment!r}")
            index = fragment.get("index", position)
            if not isinstance(index, int):
                raise LLMError(f"tool call fragment with a non-integer index: {index!r}")
            part = self._parts.setdefault(index, {"id": "", "name": "", "arguments": ""})
            if fragment.get("id"):
                part["id"] = str(fragment["id"])
            function = fragment.get("function") or {}
            if function.get("name"):
                part["name"] += str(function["name"])
            if function.get("arguments"):
                part["arguments"] += str(function["arguments"])

    def __bool__(self) -> bool:
        return bool(self._parts)

    def calls(self) -> tuple[StreamedToolCall, ...]:
        """The assembled calls, in index order (a call without an id gets one)."""
        calls = []
        for index in sorted(self._parts):
            part = self._parts[index]
            if not part["name"]:
                raise LLMError(f"tool call {index} arrived without a name")
            calls.append(
                StreamedToolCall(part["id"] or f"call_{index}", part["name"], part["arguments"])
            )
        return tuple(calls)


@dataclass(frozen=True, slots=True)
class StreamLimits:
    """How long to wait: for the first token of a reply, and between two tokens."""

    first_token_s: float
    between_tokens_s: float


async def stream_chat_completion(
    client: httpx.AsyncClient,
    url: str,
    payload: Mapping[str, Any],
    limits: StreamLimits,
    headers: Mapping[str, str] | None = None,
) -> AsyncIterator[StreamEvent]:
    """POST ``payload`` (which must ask for ``stream: true``) and yield what the model says.

    Text comes as :class:`ContentDelta` the moment each chunk arrives; tool calls come once,
    whole, as :class:`ToolCallsReady` at the end. Raises :class:`LLMError` (or
    :class:`LLMTimeout`) on any failure, including a stream that ends without a
    ``finish_reason`` (a connection dropped mid-reply).
    """
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        async with client.stream("POST", url, json=dict(payload), headers=headers) as response:
            if response.status_code != 200:
                body = (await _read_limited(response)).strip()
                raise LLMError(f"{url} answered HTTP {response.status_code}: {body[:300]}")
            events = sse_data(response.aiter_lines())
            tools = ToolCallAssembler()
            finished: str | None = None
            got_token = False
            while True:
                if got_token:
                    wait = limits.between_tokens_s
                else:
                    wait = max(0.0, started + limits.first_token_s - loop.time())
                try:
                    data = await asyncio.wait_for(anext(events), wait)
                except StopAsyncIteration:
                    break
                except TimeoutError:
                    what = "the next token" if got_token else "the first token"
                    raise LLMTimeout(
                        f"no answer from {url}: waited {wait:.1f} s for {what}"
                    ) from None
                chunk = _decode(data)
                for choice in chunk.get("choices") or ():
                    if not isinstance(choice, Mapping) or choice.get("index", 0) != 0:
                        continue  # only the first choice is spoken
                    delta = choice.get("delta") or {}
                    if delta.get("content"):
                        got_token = True
                        yield ContentDelta(str(delta["content"]))
                    if delta.get("tool_calls"):
                        got_token = True
                        tools.add(delta["tool_calls"])
                    finished = choice.get("finish_reason") or finished
    except httpx.TimeoutException as error:
        raise LLMTimeout(f"{url} timed out: {type(error).__name__}") from error
    except httpx.HTTPError as error:
        raise LLMError(f"{url} failed: {type(error).__name__}: {error}") from error
    if finished is None:
        raise LLMError(f"the stream from {url} ended before the reply was complete")
    if tools:
        yield ToolCallsReady(tools.calls())


def _decode(data: str) -> Mapping[str, Any]:
    try:
        chunk = json.loads(data)
    except json.JSONDecodeError:
        raise LLMError(f"the endpoint sent an event that is not JSON: {data[:120]!r}") from None
    if not isinstance(chunk, Mapping):
        raise LLMError(f"the endpoint sent an event that is not a JSON object: {data[:120]!r}")
    if chunk.get("error"):
        raise LLMError(f"the endpoint reported an error mid-stream: {chunk['error']}")
    return chunk


async def _read_limited(response: httpx.Response, limit: int = 4096) -> str:
    body = b""
    async for piece in response.aiter_bytes():
        body += piece
        if len(body) >= limit:
            break
    return body.decode("utf-8", "replace")
