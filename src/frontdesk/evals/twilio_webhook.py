"""The voice webhook as Twilio calls it: a signed form POST, answered with TwiML."""

from __future__ import annotations

import asyncio
import secrets
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from twilio.request_validator import RequestValidator


class WebhookError(RuntimeError):
    """The voice webhook did not answer with a usable ``<Connect><Stream>``."""


@dataclass(frozen=True, slots=True)
class StreamInvitation:
    """What the voice webhook told Twilio: where to stream and with which parameters."""

    url: str
    parameters: dict[str, str]


def new_sid(prefix: str) -> str:
    """A Twilio-shaped id: two letters and 32 hex digits."""
    return prefix + secrets.token_hex(16)


def sign(auth_token: str, url: str, params: dict[str, str]) -> str:
    """The X-Twilio-Signature Twilio would send for a POST of ``params`` to ``url``."""
    return RequestValidator(auth_token).compute_signature(url, params)


async def answer_webhook(
    voice_url: str,
    *,
    call_sid: str,
    caller_number: str,
    auth_token: str | None,
    to_number: str = "+15550000000",
) -> StreamInvitation:
    """POST the incoming-call webhook as Twilio does and read the stream from its TwiML."""
    params = {
        "AccountSid": "AC" + "0" * 32,
        "CallSid": call_sid,
        "From": caller_number,
        "To": to_number,
        "CallStatus": "ringing",
        "Direction": "inbound",
    }
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if auth_token:
        headers["X-Twilio-Signature"] = sign(auth_token, voice_url, params)
    status, body = await post_form(voice_url, params, headers)
    if status != 200:
        raise WebhookError(f"voice webhook answered {status}: {body[:200]!r}")
    try:
        stream = ET.fromstring(body).find("./Connect/Stream")
    except ET.ParseError as exc:
        raise WebhookError(f"voice webhook returned invalid TwiML: {exc}") from exc
    if stream is None or not stream.get("url"):
        raise WebhookError("voice webhook TwiML has no <Connect><Stream url=...>")
    parameters = {p.get("name", ""): p.get("value", "") for p in stream.findall("Parameter")}
    return StreamInvitation(stream.get("url", ""), parameters)


async def post_form(url: str, params: dict[str, str], headers: dict[str, str]) -> tuple[int, str]:
    """POST a form (on a worker thread: urllib blocks); returns status and body."""

    def post() -> tuple[int, str]:
        data = urllib.parse.urlencode(params).encode()
        request = urllib.request.Request(url, data=data, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(errors="replace")

    return await asyncio.to_thread(post)
