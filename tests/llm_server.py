"""Test support: a scripted OpenAI-compatible streaming server (FastAPI + uvicorn, real HTTP
on 127.0.0.1) and the local llama.cpp server fixture.

The scripted server answers each ``POST /v1/chat/completions`` with the next reply of its
script, as server-sent events in the exact OpenAI wire format, and records every request
body, so a test can check what the brain sent (the tool messages, their ``tool_call_id``).
A reply can also drop the connection after some chunks, or stall, to play a failing model.

Run as a program (``python llm_server.py PORT SCRIPT.json REQUESTS.jsonl``) it is a separate
process that a reply can kill outright (SIGKILL, mid-stream): an endpoint that dies with
the caller on the line. A warm-up request (``max_tokens: 1``) is answered without using up
the script.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse

from frontdesk.brain.local_llm import free_port

# The OpenAI wire format as the API streams two parallel tool calls (gpt-4o-mini): the id,
# name and first argument fragment arrive in one delta, the arguments in many later ones,
# the second call interleaves by its own index, and a usage chunk has no choices at all.
_ENVELOPE = {
    "id": "chatcmpl-AZ1",
    "object": "chat.completion.chunk",
    "created": 1732000000,
    "model": "gpt-4o-mini-2024-07-18",
    "system_fingerprint": "fp_0705bf87c0",
}


def _call(index: int, arguments: str, call_id: str = "", name: str = "") -> dict[str, Any]:
    fragment: dict[str, Any] = {"index": index, "function": {"arguments": arguments}}
    if call_id:
        fragment = {"index": index, "id": call_id, "type": "function"}
        fragment["function"] = {"name": name, "arguments": arguments}
    return fragment


def _choice(delta: dict[str, Any], finish: str | None = None) -> list[dict[str, Any]]:
    return [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]


_RECORDED_CHOICES: list[tuple[list[dict[str, Any]], dict[str, int] | None]] = [
    (
        _choice(
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [_call(0, "", "call_7gRkq2", "check_availability")],
                "refusal": None,
            }
        ),
        None,
    ),
    (_choice({"tool_calls": [_call(0, '{"da')]}), None),
    (_choice({"tool_calls": [_call(0, 'y": "2026-11-')]}), None),
    (_choice({"tool_calls": [_call(1, "", "call_Xq81mZ", "lookup_contact")]}), None),
    (_choice({"tool_calls": [_call(0, '26", "part_of_day": "after')]}), None),
    (_choice({"tool_calls": [_call(1, "{}")]}), None),
    (_choice({"tool_calls": [_call(0, 'noon"}')]}), None),
    (_choice({}, "tool_calls"), None),
    ([], {"prompt_tokens": 1021, "completion_tokens": 41, "total_tokens": 1062}),
]

RECORDED_TOOL_CALLS = (
    "".join(
        "data: "
        + json.dumps(_ENVELOPE | {"choices": choices, "usage": usage}, separators=(",", ":"))
        + "\n\n"
        for choices, usage in _RECORDED_CHOICES
    )
    + "data: [DONE]\n\n"
)


def _chunk(delta: dict[str, Any], finish: str | None = None) -> str:
    body = {
        "id": "chatcmpl-test",
        "object": "chat.completion.chunk",
        "created": 1732000000,
        "model": "gpt-4o-mini-2024-07-18",
        "system_fingerprint": "fp_0705bf87c0",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }
    return f"data: {json.dumps(body, separators=(',', ':'))}\n\n"


@dataclass
class ScriptedReply:
    """One scripted answer: SSE events, optionally cut short or slowed down."""

    events: list[str]
    drop_after: int | None = None
    """Close the connection after this many events (a crashed model server)."""
    stall_after: int | None = None
    """Stop sending (but keep the connection open) after this many events."""
    gap_s: float = 0.0
    """Pause between events, so streaming is visible in timestamps."""
    kill_after: int | None = None
    """After this many events (and a moment for them to reach the client), the whole
    server process dies by SIGKILL: every later request is refused."""


def text_reply(*pieces: str, gap_s: float = 0.0) -> ScriptedReply:
    """A streamed text answer, one content delta per piece."""
    events = [_chunk({"role": "assistant", "content": ""})]
    events += [_chunk({"content": piece}) for piece in pieces]
    events += [_chunk({}, "stop"), "data: [DONE]\n\n"]
    return ScriptedReply(events, gap_s=gap_s)


def tool_reply(name: str, arguments: dict[str, Any], call_id: str = "call_1") -> ScriptedReply:
    """One tool call, its arguments split into small fragments as OpenAI sends them."""
    text = json.dumps(arguments)
    head = {"index": 0, "id": call_id, "type": "function"}
    head["function"] = {"name": name, "arguments": ""}
    events = [_chunk({"role": "assistant", "content": None, "tool_calls": [head]})]
    for start in range(0, len(text), 7):
        fragment = {"index": 0, "function": {"arguments": text[start : start + 7]}}
        events.append(_chunk({"tool_calls": [fragment]}))
    events += [_chunk({}, "tool_calls"), "data: [DONE]\n\n"]
    return ScriptedReply(events)


def recorded_reply(transcript: str) -> ScriptedReply:
    """A recorded SSE transcript, replayed event by event."""
    return ScriptedReply([event + "\n\n" for event in transcript.strip().split("\n\n")])


@dataclass
class ScriptedLLM:
    """The server's state: the replies still to give and the requests received."""

    script: list[ScriptedReply] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    port: int = 0
    request_log: Path | None = None
    """Also append each request body here, one JSON per line (for a separate process)."""

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.get("/v1/models")
        async def models() -> dict[str, Any]:
            return {"object": "list", "data": [{"id": "scripted", "object": "model"}]}

        @app.post("/v1/chat/completions")
        async def completions(request: Request) -> StreamingResponse:
            body = await request.json()
            if body.get("max_tokens") == 1:  # a warm-up: not part of the conversation
                return StreamingResponse(_play(text_reply("Hi")), media_type="text/event-stream")
            self.requests.append(body)
            if self.request_log is not None:
                with self.request_log.open("a", encoding="utf-8") as log:
                    log.write(json.dumps(body) + "\n")
            if not self.script:
                raise RuntimeError("the scripted model has no reply left")
            reply = self.script.pop(0)
            return StreamingResponse(_play(reply), media_type="text/event-stream")

        return app


async def _play(reply: ScriptedReply) -> Any:
    for index, event in enumerate(reply.events):
        if index == reply.drop_after:
            # An exception after the response started makes uvicorn close the connection
            # mid-body: the client sees the chunked stream end without its last chunk.
            raise ConnectionAbortedError("scripted model server dropped the connection")
        if index == reply.stall_after:
            await asyncio.sleep(3600)
        if index == reply.kill_after:
            await asyncio.sleep(0.3)  # what was sent reaches the client, as from a real model
            os.kill(os.getpid(), signal.SIGKILL)
        if reply.gap_s and index:
            await asyncio.sleep(reply.gap_s)
        yield event


def serve_scripted() -> Iterator[ScriptedLLM]:
    """Run a :class:`ScriptedLLM` on a free port in a background thread, for a fixture."""
    scripted = ScriptedLLM(port=free_port())
    config = uvicorn.Config(
        scripted.app(),
        host="127.0.0.1",
        port=scripted.port,
        log_level="critical",
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the scripted model server did not start")
        time.sleep(0.02)
    yield scripted
    server.should_exit = True
    thread.join(5)


def main(argv: list[str]) -> None:
    """Serve a script from a JSON file: a list of ``{"pieces": [...], "gap_s": 0.1,
    "kill_after": 3}`` text replies."""
    port, script_path, log_path = int(argv[0]), Path(argv[1]), Path(argv[2])
    script = []
    for entry in json.loads(script_path.read_text()):
        reply = text_reply(*entry["pieces"], gap_s=entry.get("gap_s", 0.0))
        reply.kill_after = entry.get("kill_after")
        script.append(reply)
    scripted = ScriptedLLM(script=script, port=port, request_log=log_path)
    uvicorn.run(scripted.app(), host="127.0.0.1", port=port, log_level="critical")


if __name__ == "__main__":
    main(sys.argv[1:])
