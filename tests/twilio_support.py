"""What the Twilio socket tests share: the server around a test's agent, a scripted call
through it, and the call's stored record."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from twilio.http.async_http_client import AsyncHttpClient
from twilio.http.response import Response

from frontdesk.agent import Agent
from frontdesk.evals.local_call import new_caller_number
from frontdesk.evals.scripted_caller import CallerLine, ScriptedCaller
from frontdesk.evals.twilio_caller import TwilioCallLog, call_server
from frontdesk.server import ServerSettings, create_app
from frontdesk.server.background import BackgroundServer
from frontdesk.speech.tts.command import FliteVoice
from frontdesk.store.models import Call as CallRow

AUTH_TOKEN = "test-auth-token-0123456789abcdef"


@contextlib.asynccontextmanager
async def serving(agent: Agent) -> AsyncIterator[BackgroundServer]:
    """The app around ``agent``, served on a free loopback port, signatures required."""
    running = BackgroundServer("127.0.0.1")
    settings = ServerSettings(auth_token=AUTH_TOKEN, public_url=running.base_url)
    await running.start(create_app(agent, settings))
    try:
        yield running
    finally:
        await running.stop()


async def scripted(*lines: CallerLine, voice: str = "slt") -> ScriptedCaller:
    """A caller who says ``lines`` in flite's ``voice``."""
    caller = ScriptedCaller(list(lines))
    await caller.prepare(FliteVoice(voice))
    return caller


async def place_call(
    server: BackgroundServer, tmp_path: Path, *lines: CallerLine, **options: Any
) -> TwilioCallLog:
    """One scripted call through the voice webhook and the media socket."""
    voice = options.pop("voice", "slt")
    return await call_server(
        server.base_url,
        await scripted(*lines, voice=voice),
        auth_token=AUTH_TOKEN,
        caller_number=new_caller_number(),
        recording_path=tmp_path / f"twilio-call-{new_caller_number()}.wav",
        **options,
    )


async def call_record(agent: Agent, call_sid: str) -> dict[str, Any]:
    """The stored record of the call Twilio knows as ``call_sid``, read from the database."""
    with agent.db.session() as session:
        rows = session.scalars(select(CallRow)).all()
        ids = [row.id for row in rows if row.meta.get("call_sid") == call_sid]
    assert len(ids) == 1, f"one call row for {call_sid}, found {len(ids)}"
    return await agent.store.call_record(ids[0])


def words(text: str) -> list[str]:
    """Lower-case words of ``text``."""
    return re.findall(r"[a-z0-9']+", text.lower())


@dataclass
class Sent:
    """One request as the library handed it to its HTTP client."""

    method: str
    url: str
    params: dict | None
    data: dict | None
    headers: dict | None
    auth: tuple[str, str] | None


class RecordingHttpClient(AsyncHttpClient):
    """Records each request and answers with the next queued (status, body)."""

    def __init__(self, *answers: tuple[int, str]) -> None:
        super().__init__(logger=None, is_async=True)  # type: ignore[arg-type]
        self.answers = list(answers)
        self.sent: list[Sent] = []

    async def request(  # type: ignore[override]
        self,
        method: str,
        uri: str,
        params: dict | None = None,
        data: dict | None = None,
        headers: dict | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 (the library's signature)
        allow_redirects: bool = False,
    ) -> Response:
        self.sent.append(Sent(method, uri, params, data, headers, auth))
        status, body = self.answers.pop(0)
        return Response(status, body)
