"""The phone server: Twilio's webhooks and Media Streams WebSocket in front of an Agent.

- ``POST /twilio/voice`` answers an incoming call with TwiML ``<Connect><Stream>`` pointing
  at ``/twilio/media``, with custom parameters: the caller's number, the call SID and a
  one-time token.
- ``WS /twilio/media`` accepts a stream only if its ``start`` message presents a token the
  voice webhook issued (once, within ``token_ttl_s``, for the same call SID), then runs one
  Call on it. Each call runs in its own connection task; whatever goes wrong in one is
  logged and never reaches another.
- ``POST /twilio/status`` keeps call status callbacks in the database (a call's record lists
  them); ``GET /healthz`` says the server is up and how many calls are live (and, with SIP,
  whether the trunk registration holds).

Every webhook is checked against ``X-Twilio-Signature`` with the twilio library's
``RequestValidator`` when an auth token is configured (403 otherwise). Without a token the
webhooks are unauthenticated, which :func:`create_app` logs loudly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from fastapi import FastAPI, Request, Response, WebSocket
from twilio.request_validator import RequestValidator
from twilio.twiml.voice_response import Connect, VoiceResponse

from frontdesk.agent import Agent
from frontdesk.transports.twilio import StreamRejected, TwilioMediaStream
from frontdesk.transports.twilio_control import TwilioCallControl, TwilioCredentialsError

log = logging.getLogger(__name__)

MEDIA_PATH = "/twilio/media"
MAX_FORM_BYTES = 64 * 1024
"""Twilio's webhook forms are a few hundred bytes; anything this large is not Twilio."""
POLICY_VIOLATION = 1008


@dataclass(slots=True)
class ServerSettings:
    """How the server authenticates Twilio and how Twilio reaches it."""

    auth_token: str | None = None
    """TWILIO_AUTH_TOKEN: validates X-Twilio-Signature. None: webhooks unauthenticated."""
    public_url: str | None = None
    """The base URL Twilio uses (e.g. https://frontdesk.example.com). Signatures are
    computed over it and the stream URL is built from it; default: the request's host."""
    token_ttl_s: float = 120.0
    """How long a stream token from the voice webhook stays valid."""
    start_timeout_s: float = 10.0
    """How long a new media socket may take to send ``start``."""
    account_sid: str | None = None
    """TWILIO_ACCOUNT_SID: with the auth token (or an API key), hang-ups and transfers go
    through Twilio's REST API; without it they only close the media socket."""
    api_key: str | None = None
    api_secret: str | None = None
    transfer_caller_id: str | None = None
    """The caller ID a transferred call shows the human (default: Twilio's choice)."""


@dataclass(slots=True)
class _Invitation:
    call_sid: str
    caller_number: str | None
    issued_at: float


@dataclass(slots=True)
class ServerState:
    """What the server keeps between requests (tokens, live calls)."""

    settings: ServerSettings
    invitations: dict[str, _Invitation] = field(default_factory=dict)
    live_calls: set[str] = field(default_factory=set)
    calls_started: int = 0

    def issue_token(self, call_sid: str, caller_number: str | None) -> str:
        """A one-time secret the media stream of ``call_sid`` must present."""
        self._expire()
        token = secrets.token_urlsafe(24)
        self.invitations[token] = _Invitation(call_sid, caller_number, time.monotonic())
        return token

    def redeem(self, token: str | None, call_sid: str | None) -> _Invitation | None:
        """The invitation for ``token`` (consumed), if valid for ``call_sid``."""
        self._expire()
        invitation = self.invitations.pop(token or "", None)
        if invitation is None or invitation.call_sid != call_sid:
            return None
        return invitation

    def _expire(self) -> None:
        cutoff = time.monotonic() - self.settings.token_ttl_s
        for token in [t for t, inv in self.invitations.items() if inv.issued_at < cutoff]:
            del self.invitations[token]


AgentSource = Agent | Callable[[], Awaitable[Agent]]
"""An open Agent (the caller closes it) or a factory the app opens at start-up and closes."""
Service = Callable[[Agent, FastAPI], contextlib.AbstractAsyncContextManager[Any]]
"""Something that runs beside the web server with the same agent (the SIP listener): entered
once the agent is open, left before it closes."""


def call_control_for(settings: ServerSettings) -> TwilioCallControl | None:
    """REST call control with the configured credentials, or None (logged) without them."""
    if settings.account_sid is None:
        log.warning("no TWILIO_ACCOUNT_SID: hang-ups and transfers only close the media socket")
        return None
    try:
        return TwilioCallControl.from_env(
            {},
            account_sid=settings.account_sid,
            auth_token=settings.auth_token,
            api_key=settings.api_key,
            api_secret=settings.api_secret,
        )
    except TwilioCredentialsError as exc:
        log.warning("Twilio REST call control is off: %s", exc)
        return None


def create_app(
    agent: AgentSource,
    settings: ServerSettings | None = None,
    *,
    call_control: TwilioCallControl | None = None,
    services: Sequence[Service] = (),
) -> FastAPI:
    """The FastAPI app serving Twilio calls with ``agent``. ``call_control`` (default: from
    the settings' credentials) ends and transfers calls through Twilio's REST API;
    ``services`` run for the app's lifetime with the same agent."""
    settings = settings or ServerSettings()
    state = ServerState(settings)
    control = call_control if call_control is not None else call_control_for(settings)
    holder: dict[str, Agent] = {}
    if isinstance(agent, Agent):
        holder["agent"] = agent
    if not settings.auth_token:
        log.warning(
            "NO TWILIO AUTH TOKEN: webhooks are NOT authenticated; anyone who can reach this "
            "server can start calls. Set TWILIO_AUTH_TOKEN in production."
        )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = None
        if "agent" not in holder:
            owned = holder["agent"] = await agent()  # type: ignore[operator]
        try:
            async with contextlib.AsyncExitStack() as running:
                for service in services:
                    await running.enter_async_context(service(holder["agent"], app))
                yield
        finally:
            if owned is not None:
                await owned.aclose()
            if control is not None and call_control is None:
                await control.aclose()

    app = FastAPI(title="frontdesk", lifespan=lifespan)
    app.state.frontdesk = state
    validator = RequestValidator(settings.auth_token) if settings.auth_token else None

    async def signed_form(request: Request) -> dict[str, str] | None:
        """The webhook's form fields, or None when the signature does not match."""
        body = await request.body()
        if len(body) > MAX_FORM_BYTES:
            return None
        try:
            form = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        except (UnicodeDecodeError, ValueError):
            return None
        if validator is None:
            return form
        signature = request.headers.get("X-Twilio-Signature", "")
        url = _public_url(request, settings.public_url)
        if not signature or not validator.validate(url, form, signature):
            log.warning("rejected a webhook to %s with a missing or bad signature", url)
            return None
        return form

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        health: dict[str, Any] = {"status": "ok", "live_calls": len(state.live_calls)}
        sip = getattr(app.state, "sip", None)  # set by the SIP service (serve --sip)
        if sip is not None:
            registration = sip.registration
            health["sip"] = {
                "live_calls": sip.live_calls,
                "registered": None if registration is None else registration.registered,
            }
        return health

    @app.post("/twilio/voice")
    async def voice(request: Request) -> Response:
        form = await signed_form(request)
        if form is None:
            return Response("forbidden", status_code=403)
        call_sid = form.get("CallSid")
        if not call_sid:
            return Response("missing CallSid", status_code=400)
        caller = form.get("From") or None
        token = state.issue_token(call_sid, caller)
        response = VoiceResponse()
        connect = Connect()
        stream = connect.stream(url=_stream_url(request, settings.public_url))
        stream.parameter(name="callerNumber", value=caller or "")
        stream.parameter(name="callSid", value=call_sid)
        stream.parameter(name="token", value=token)
        response.append(connect)
        return Response(str(response), media_type="application/xml")

    @app.post("/twilio/status")
    async def status(request: Request) -> Response:
        form = await signed_form(request)
        if form is None:
            return Response("forbidden", status_code=403)
        call_sid, call_status = form.get("CallSid"), form.get("CallStatus")
        if not call_sid or not call_status:
            return Response("missing CallSid or CallStatus", status_code=400)
        log.info("call %s status %s", call_sid, call_status)
        await holder["agent"].store.add_carrier_status(call_sid, call_status, form)
        return Response(status_code=204)

    @app.websocket(MEDIA_PATH)
    async def media(websocket: WebSocket) -> None:
        await websocket.accept()
        stream = TwilioMediaStream(
            websocket, call_control=control, transfer_caller_id=settings.transfer_caller_id
        )
        try:
            start = await asyncio.wait_for(stream.read_start(), settings.start_timeout_s)
        except (StreamRejected, TimeoutError) as exc:
            log.warning("refused a media stream: %s", exc or "no start message in time")
            await _refuse(websocket)
            return
        invitation = state.redeem(start.custom_parameters.get("token"), start.call_sid)
        if invitation is None:
            log.warning("refused media stream %s: unknown or used token", start.stream_sid)
            await _refuse(websocket)
            return
        stream.caller_number = invitation.caller_number
        await _run_call(holder["agent"], stream, state)

    return app


async def _run_call(agent: Agent, stream: TwilioMediaStream, state: ServerState) -> None:
    """One call on ``stream``; failures are logged and stay in this call."""
    sid = stream.stream_sid or "?"
    state.live_calls.add(sid)
    state.calls_started += 1
    try:
        call = await agent.new_call(
            stream,
            metadata={
                "call_sid": stream.start_info.call_sid if stream.start_info else None,
                "stream_sid": sid,
            },
        )
        result = await call.run()
        barge_ins = [round(1000 * b) for b in result.barge_ins]
        log.info(
            "call %s (stream %s) ended: %s; barge-in onset->stop ms %s",
            result.call_id,
            sid,
            result.outcome,
            barge_ins,
        )
    except Exception:
        log.exception("call on stream %s failed", sid)
    finally:
        state.live_calls.discard(sid)
        if sum(stream.malformed.values()):
            log.info("stream %s ignored malformed messages: %s", sid, dict(stream.malformed))
        await stream.aclose()


async def _refuse(websocket: WebSocket) -> None:
    with contextlib.suppress(Exception):
        await websocket.close(POLICY_VIOLATION)


def _public_url(request: Request, public_url: str | None) -> str:
    """The URL Twilio signed: the configured public base plus this path and query."""
    if not public_url:
        return str(request.url)
    base = urlsplit(public_url)
    path = base.path.rstrip("/") + request.url.path
    return urlunsplit((base.scheme, base.netloc, path, request.url.query, ""))


def _stream_url(request: Request, public_url: str | None) -> str:
    """``wss://<public host>/twilio/media`` (``ws://`` only for an http public URL)."""
    if public_url:
        base = urlsplit(public_url)
        scheme = "ws" if base.scheme == "http" else "wss"
        return urlunsplit((scheme, base.netloc, base.path.rstrip("/") + MEDIA_PATH, "", ""))
    host = request.headers.get("host") or request.url.netloc
    return f"wss://{host}{MEDIA_PATH}"
