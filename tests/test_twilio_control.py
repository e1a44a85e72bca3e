"""Twilio call control: the REST requests the official library sends, checked against the
shapes in Twilio's docs (https://www.twilio.com/docs/voice/api/call-resource).

Twilio's API cannot be reached from here, so the twilio Client is given an HTTP client that
either records each request and answers with a response body recorded from Twilio's docs
(tests/data/twilio, sources in its README), or sends the real HTTP request with the
library's aiohttp client to a server on 127.0.0.1 that does the same, to check the bytes on
the wire (basic auth header, form encoding).
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import time
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs

import pytest
from aiohttp import web
from twilio.base.exceptions import TwilioRestException
from twilio.http import AsyncHttpClient
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.response import Response

from frontdesk.transports.twilio_control import (
    MAX_TWIML_CHARS,
    TwilioCallControl,
    TwilioCallControlError,
    TwilioCredentials,
    TwilioCredentialsError,
)
from twilio_support import RecordingHttpClient, Sent

DATA = Path(__file__).parent / "data" / "twilio"
UPDATE_BODY = (DATA / "call_update_response.json").read_text()
CREATE_BODY = (DATA / "call_create_response.json").read_text()
NOT_FOUND_BODY = (DATA / "error_404_response.json").read_text()

ACCOUNT = "AC" + "0123456789abcdef" * 2
TOKEN = "auth-token-for-tests"
CALL = "CA" + "fedcba9876543210" * 2
API_KEY = "SK" + "00112233445566778899aabbccddeeff"
CALLS_URL = f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT}/Calls"
CALL_URL = f"{CALLS_URL}/{CALL}.json"

# twilio 9.13 still authenticates through aiohttp.BasicAuth, deprecated for aiohttp 4.
pytestmark = pytest.mark.filterwarnings(
    "ignore:(BasicAuth|The 'auth' parameter) is deprecated:DeprecationWarning"
)


@pytest.fixture(autouse=True)
def _default_twilio_host(monkeypatch: pytest.MonkeyPatch) -> None:
    # The library reads these at construction; a developer's shell must not move the host.
    monkeypatch.delenv("TWILIO_EDGE", raising=False)
    monkeypatch.delenv("TWILIO_REGION", raising=False)


def control(http: AsyncHttpClient, **credentials: str) -> TwilioCallControl:
    creds = credentials or {"auth_token": TOKEN}
    return TwilioCallControl(TwilioCredentials(ACCOUNT, **creds), http_client=http)


def twiml_of(sent: Sent) -> ET.Element:
    assert sent.data is not None
    return ET.fromstring(sent.data["Twiml"])


# --- a loopback "api.twilio.com" for the wire-level checks ------------------------------
@dataclass
class WireRequest:
    method: str
    path: str
    headers: dict[str, str]
    form: dict[str, list[str]]


class LoopbackTwilio:
    """An HTTP server on 127.0.0.1 that records requests and replays recorded bodies."""

    def __init__(self) -> None:
        self.requests: list[WireRequest] = []
        self.answers: list[tuple[int, str]] = []
        self.stall = False
        self.release = asyncio.Event()
        self.url = ""
        self.clients: list[LoopbackHttpClient] = []

    def http_client(self) -> LoopbackHttpClient:
        """The library's aiohttp client aimed at this server (closed with the server)."""
        client = LoopbackHttpClient(self.url)
        self.clients.append(client)
        return client

    async def handle(self, request: web.Request) -> web.Response:
        body = (await request.read()).decode()
        self.requests.append(
            WireRequest(request.method, request.path, dict(request.headers), parse_qs(body))
        )
        if self.stall:  # an API that never answers (until the test is over)
            await self.release.wait()
        status, text = self.answers.pop(0)
        return web.Response(status=status, text=text, content_type="application/json")


class LoopbackHttpClient(AsyncTwilioHttpClient):
    """The library's own aiohttp client, aimed at the loopback server instead of Twilio."""

    def __init__(self, base_url: str) -> None:
        super().__init__()
        self.base_url = base_url

    async def request(self, method: str, url: str, **kwargs: object) -> Response:  # type: ignore[override]
        return await super().request(
            method, url.replace("https://api.twilio.com", self.base_url), **kwargs
        )


@pytest.fixture
async def twilio_api() -> AsyncIterator[LoopbackTwilio]:
    api = LoopbackTwilio()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", api.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    api.url = f"http://127.0.0.1:{port}"
    try:
        yield api
    finally:
        api.release.set()
        for client in api.clients:
            await client.close()
        await runner.cleanup()


# --- hang up ------------------------------------------------------------------------------
async def test_hang_up_posts_status_completed_to_the_call() -> None:
    http = RecordingHttpClient((200, UPDATE_BODY))
    await control(http).hang_up(CALL)
    [sent] = http.sent
    assert (sent.method, sent.url) == ("POST", CALL_URL)
    assert sent.data == {"Status": "completed"}
    assert sent.auth == (ACCOUNT, TOKEN)
    assert sent.headers is not None
    assert sent.headers["Content-Type"] == "application/x-www-form-urlencoded"


async def test_hang_up_on_the_wire_uses_basic_auth_with_the_account_sid(
    twilio_api: LoopbackTwilio,
) -> None:
    twilio_api.answers.append((200, UPDATE_BODY))
    async with control(twilio_api.http_client()) as calls:
        await calls.hang_up(CALL)
    [request] = twilio_api.requests
    assert request.method == "POST"
    assert request.path == f"/2010-04-01/Accounts/{ACCOUNT}/Calls/{CALL}.json"
    expected = base64.b64encode(f"{ACCOUNT}:{TOKEN}".encode()).decode()
    assert request.headers["Authorization"] == f"Basic {expected}"
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert request.form == {"Status": ["completed"]}


# --- transfer -----------------------------------------------------------------------------
async def test_transfer_says_the_hand_off_line_then_dials_the_number() -> None:
    http = RecordingHttpClient((200, UPDATE_BODY))
    line = "Connecting you to Smith & Sons <front desk> now."
    await control(http).transfer(
        CALL, "+14155550100", line, caller_id="+14155550199", ring_timeout_s=20
    )
    [sent] = http.sent
    assert (sent.method, sent.url) == ("POST", CALL_URL)
    assert set(sent.data or {}) == {"Twiml"}, "a transfer must not also hang up the call"
    response = twiml_of(sent)
    assert response.tag == "Response"
    assert [child.tag for child in response] == ["Say", "Dial"]
    say, dial = response
    assert say.text == line  # escaped on the wire, intact once parsed
    assert dial.text == "+14155550100"
    assert dial.attrib == {"callerId": "+14155550199", "timeout": "20"}


async def test_transfer_to_a_sip_address_with_a_no_answer_line() -> None:
    http = RecordingHttpClient((200, UPDATE_BODY))
    await control(http).transfer(
        CALL,
        "sip:frontdesk@pbx.example.com",
        "One moment.",
        no_answer_line="Sorry, nobody could take your call. Goodbye.",
    )
    response = twiml_of(http.sent[0])
    assert [child.tag for child in response] == ["Say", "Dial", "Say"]
    [sip] = list(response[1])
    assert (sip.tag, sip.text) == ("Sip", "sip:frontdesk@pbx.example.com")
    assert response[2].text == "Sorry, nobody could take your call. Goodbye."


async def test_transfer_with_an_api_key_authenticates_as_the_key_on_the_account_url() -> None:
    http = RecordingHttpClient((200, UPDATE_BODY))
    await control(http, api_key=API_KEY, api_secret="key-secret").transfer(CALL, "+14155550100")
    [sent] = http.sent
    assert sent.url == CALL_URL  # the account SID stays in the path
    assert sent.auth == (API_KEY, "key-secret")
    assert [child.tag for child in twiml_of(sent)] == ["Dial"]  # no hand-off line: no Say


# --- outbound -----------------------------------------------------------------------------
async def test_create_outbound_on_the_wire_sends_the_documented_fields(
    twilio_api: LoopbackTwilio,
) -> None:
    twilio_api.answers.append((201, CREATE_BODY))
    async with control(twilio_api.http_client()) as calls:
        sid = await calls.create_outbound(
            "+14155550123",
            "+14155550100",
            "https://frontdesk.example.com/twilio/voice",
            status_callback="https://frontdesk.example.com/twilio/status",
            ring_timeout_s=25,
        )
    assert sid == json.loads(CREATE_BODY)["sid"]
    [request] = twilio_api.requests
    assert request.method == "POST"
    assert request.path == f"/2010-04-01/Accounts/{ACCOUNT}/Calls.json"
    assert request.form == {
        "To": ["+14155550123"],
        "From": ["+14155550100"],
        "Url": ["https://frontdesk.example.com/twilio/voice"],
        "Method": ["POST"],
        "StatusCallback": ["https://frontdesk.example.com/twilio/status"],
        "StatusCallbackMethod": ["POST"],
        # One form field per event, as Twilio's docs show for StatusCallbackEvent.
        "StatusCallbackEvent": ["initiated", "ringing", "answered", "completed"],
        "Timeout": ["25"],
    }


async def test_create_outbound_without_status_callback_sends_only_what_was_asked() -> None:
    http = RecordingHttpClient((201, CREATE_BODY))
    await control(http).create_outbound(
        "+14155550123", "+14155550100", "https://frontdesk.example.com/twilio/voice"
    )
    [sent] = http.sent
    assert (sent.method, sent.url) == ("POST", f"{CALLS_URL}.json")
    assert sent.data == {
        "To": "+14155550123",
        "From": "+14155550100",
        "Url": "https://frontdesk.example.com/twilio/voice",
        "Method": "POST",
    }


# --- errors -------------------------------------------------------------------------------
async def test_twilio_404_becomes_one_clear_error_with_status_and_code() -> None:
    http = RecordingHttpClient((404, NOT_FOUND_BODY))
    with pytest.raises(TwilioCallControlError) as caught:
        await control(http).hang_up(CALL)
    error = caught.value
    assert (error.status, error.code, error.call_sid) == (404, 20404, CALL)
    assert isinstance(error.__cause__, TwilioRestException)
    text = str(error)
    assert text.startswith(f"could not hang up call {CALL}:")
    assert "was not found" in text and "HTTP 404" in text and "Twilio error 20404" in text
    assert "\033[" not in text  # plain text for logs, not the library's terminal colours


async def test_an_answer_that_is_not_json_still_gives_the_status() -> None:
    http = RecordingHttpClient((502, "<html>Bad Gateway</html>"))
    with pytest.raises(TwilioCallControlError) as caught:
        await control(http).transfer(CALL, "+14155550100", "One moment.")
    assert (caught.value.status, caught.value.code) == (502, None)
    assert "transfer to +14155550100" in str(caught.value)


async def test_a_silent_api_times_out_without_blocking_the_event_loop(
    twilio_api: LoopbackTwilio,
) -> None:
    twilio_api.stall = True
    twilio_api.answers.append((200, UPDATE_BODY))
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.create_task(tick())
    calls = TwilioCallControl(
        TwilioCredentials(ACCOUNT, TOKEN),
        http_client=twilio_api.http_client(),
        timeout_s=0.4,
    )
    started = time.monotonic()
    try:
        with pytest.raises(TwilioCallControlError) as caught:
            await calls.hang_up(CALL)
    finally:
        ticker.cancel()
        await calls.aclose()
    elapsed = time.monotonic() - started
    assert 0.35 < elapsed < 2.0
    assert caught.value.status is None
    assert "did not answer within 0.4 s" in str(caught.value)
    assert ticks >= 20, f"the event loop was starved during the request ({ticks} ticks)"


async def test_an_unreachable_api_becomes_the_same_error() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    http = LoopbackHttpClient(f"http://127.0.0.1:{port}")
    try:
        with pytest.raises(TwilioCallControlError) as caught:
            await control(http).create_outbound(
                "+14155550123", "+14155550100", "https://frontdesk.example.com/twilio/voice"
            )
    finally:
        await http.close()
    assert caught.value.status is None
    assert "could not call +14155550123" in str(caught.value)


async def test_one_failing_request_leaves_concurrent_ones_alone() -> None:
    other = "CA" + "1" * 32

    class PerCall(RecordingHttpClient):
        async def request(self, method: str, uri: str, **kwargs: object) -> Response:  # type: ignore[override]
            await asyncio.sleep(0.01)  # let the two requests overlap
            self.sent.append(Sent(method, uri, None, kwargs.get("data"), None, None))  # type: ignore[arg-type]
            return Response(404, NOT_FOUND_BODY) if other in uri else Response(200, UPDATE_BODY)

    http = PerCall()
    calls = control(http)
    results = await asyncio.gather(
        calls.hang_up(other), calls.hang_up(CALL), return_exceptions=True
    )
    assert isinstance(results[0], TwilioCallControlError) and results[0].call_sid == other
    assert results[1] is None
    assert len(http.sent) == 2


@pytest.mark.parametrize(
    ("attempt", "problem"),
    [
        (lambda c: c.hang_up("CA123"), "is not a call SID"),
        (lambda c: c.transfer(CALL, "415-555-0100"), "neither E.164 nor a sip: URI"),
        (lambda c: c.transfer(CALL, "+14155550100", caller_id="front desk"), "caller_id"),
        (lambda c: c.transfer(CALL, "+14155550100", ring_timeout_s=0), "ring_timeout_s"),
        (lambda c: c.transfer(CALL, "+14155550100", "x" * MAX_TWIML_CHARS), "at most 4000"),
        (lambda c: c.create_outbound("+14155550123", "frontdesk", "https://a.b/v"), "from_"),
        (lambda c: c.create_outbound("+14155550123", "+14155550100", "/v"), "answer_url"),
    ],
)
async def test_bad_arguments_are_refused_before_any_request(attempt, problem: str) -> None:
    http = RecordingHttpClient()
    with pytest.raises(TwilioCallControlError, match=problem) as caught:
        await attempt(control(http))
    assert caught.value.status is None
    assert http.sent == []


# --- credentials --------------------------------------------------------------------------
def test_from_env_without_credentials_names_what_is_missing() -> None:
    with pytest.raises(TwilioCredentialsError) as caught:
        TwilioCallControl.from_env({})
    assert "TWILIO_ACCOUNT_SID" in str(caught.value)
    assert "TWILIO_AUTH_TOKEN" in str(caught.value)
    with pytest.raises(TwilioCredentialsError, match="not set: TWILIO_AUTH_TOKEN"):
        TwilioCallControl.from_env({"TWILIO_ACCOUNT_SID": ACCOUNT})


def test_from_env_rejects_malformed_credentials() -> None:
    with pytest.raises(TwilioCredentialsError, match="'AC' followed by 32 hex"):
        TwilioCallControl.from_env({"TWILIO_ACCOUNT_SID": "ACnope", "TWILIO_AUTH_TOKEN": TOKEN})
    with pytest.raises(TwilioCredentialsError, match="needs its secret"):
        TwilioCallControl.from_env({"TWILIO_ACCOUNT_SID": ACCOUNT, "TWILIO_API_KEY": API_KEY})


async def test_from_env_reads_the_environment_and_explicit_values_win() -> None:
    environ = {"TWILIO_ACCOUNT_SID": ACCOUNT, "TWILIO_AUTH_TOKEN": "from-the-environment"}
    http = RecordingHttpClient((200, UPDATE_BODY), (200, UPDATE_BODY))
    await TwilioCallControl.from_env(environ, http_client=http).hang_up(CALL)
    configured = TwilioCallControl.from_env(environ, auth_token="from-config", http_client=http)
    await configured.hang_up(CALL)
    assert [sent.auth for sent in http.sent] == [
        (ACCOUNT, "from-the-environment"),
        (ACCOUNT, "from-config"),
    ]
