"""Twilio call control over the REST API: hang up, transfer to a human, place outbound calls.

A Media Stream only carries audio; ending or redirecting the phone call itself is an update
of Twilio's Call resource (``POST /2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json``)
and a new call is a create (``POST .../Calls.json``). Requests go through the official
``twilio`` library with its asynchronous HTTP client, so nothing blocks the event loop, and
each one is bounded by ``timeout_s`` (the library itself would wait minutes).

Whatever goes wrong (a Twilio error response, a timeout, no network, bad arguments) is
raised as one exception type, :class:`TwilioCallControlError`, carrying the HTTP status and
Twilio's error code, so a call's loop catches exactly one thing and carries on.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from twilio.base.exceptions import TwilioRestException, TwilioServiceException
from twilio.http import AsyncHttpClient
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client
from twilio.rest.api.v2010.account import AccountContext
from twilio.rest.api.v2010.account.call import CallContext
from twilio.twiml.voice_response import VoiceResponse

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_TIMEOUT_S = 10.0
"""Upper bound for one REST request, connection included."""
MAX_TWIML_CHARS = 4000
"""Twilio rejects a ``Twiml`` parameter longer than this."""
DEFAULT_STATUS_EVENTS = ("initiated", "ringing", "answered", "completed")
"""Every progress event Twilio can report for an outbound call."""

_ACCOUNT_SID = re.compile(r"AC[0-9a-fA-F]{32}")
_API_KEY_SID = re.compile(r"SK[0-9a-fA-F]{32}")
_CALL_SID = re.compile(r"CA[0-9a-fA-F]{32}")
_E164 = re.compile(r"\+[1-9][0-9]{1,14}")


class TwilioCallControlError(Exception):
    """A call-control request that did not happen.

    ``status`` is the HTTP status Twilio answered with (None when no answer came: timeout,
    network error, or a request refused before sending) and ``code`` Twilio's error code
    (e.g. 20404, see https://www.twilio.com/docs/errors/20404), when it gave one.
    """

    def __init__(
        self,
        action: str,
        reason: str,
        *,
        status: int | None = None,
        code: int | None = None,
        call_sid: str | None = None,
    ) -> None:
        self.action = action
        self.reason = reason
        self.status = status
        self.code = code
        self.call_sid = call_sid
        where = f" call {call_sid}" if call_sid else ""
        parts = [f"HTTP {status}" if status is not None else None]
        parts.append(f"Twilio error {code}" if code is not None else None)
        tags = ", ".join(p for p in parts if p)
        super().__init__(f"could not {action}{where}: {reason}" + (f" ({tags})" if tags else ""))


class TwilioCredentialsError(ValueError):
    """Twilio credentials are missing or malformed."""


@dataclass(frozen=True, slots=True)
class TwilioCredentials:
    """Who the REST requests authenticate as.

    Basic auth is the account SID with its auth token, or an API key SID with its secret
    (Twilio's recommendation for production); the account SID is always in the URL.
    """

    account_sid: str
    auth_token: str | None = None
    api_key: str | None = None
    api_secret: str | None = None

    def __post_init__(self) -> None:
        if not _ACCOUNT_SID.fullmatch(self.account_sid or ""):
            raise TwilioCredentialsError(
                f"account SID {self.account_sid!r} is not 'AC' followed by 32 hex digits"
            )
        if bool(self.api_key) != bool(self.api_secret):
            raise TwilioCredentialsError("an API key needs its secret, and a secret its key")
        if self.api_key and not _API_KEY_SID.fullmatch(self.api_key):
            raise TwilioCredentialsError(
                f"API key {self.api_key!r} is not 'SK' followed by 32 hex digits"
            )
        if not self.api_key and not self.auth_token:
            raise TwilioCredentialsError("need an auth token or an API key and secret")

    @property
    def basic_auth(self) -> tuple[str, str]:
        """(username, password) for HTTP basic auth."""
        if self.api_key and self.api_secret:
            return self.api_key, self.api_secret
        return self.account_sid, self.auth_token or ""

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        account_sid: str | None = None,
        auth_token: str | None = None,
        api_key: str | None = None,
        api_secret: str | None = None,
    ) -> TwilioCredentials:
        """Credentials from explicit values (e.g. the config file), else the environment:
        ``TWILIO_ACCOUNT_SID``, ``TWILIO_AUTH_TOKEN``, ``TWILIO_API_KEY``,
        ``TWILIO_API_SECRET``. Raises :class:`TwilioCredentialsError` naming what is missing.
        """
        env = os.environ if environ is None else environ
        account_sid = account_sid or env.get("TWILIO_ACCOUNT_SID") or None
        auth_token = auth_token or env.get("TWILIO_AUTH_TOKEN") or None
        api_key = api_key or env.get("TWILIO_API_KEY") or None
        api_secret = api_secret or env.get("TWILIO_API_SECRET") or None
        missing = [] if account_sid else ["TWILIO_ACCOUNT_SID"]
        if not auth_token and not (api_key or api_secret):
            missing.append("TWILIO_AUTH_TOKEN (or TWILIO_API_KEY and TWILIO_API_SECRET)")
        if missing:
            raise TwilioCredentialsError(
                "Twilio call control needs credentials; not set: " + ", ".join(missing)
            )
        assert account_sid is not None  # for the type checker: checked just above
        return cls(account_sid, auth_token, api_key, api_secret)


class TwilioCallControl:
    """Hang up, transfer and place calls through Twilio's REST API.

    One instance serves every call on a server (it holds one HTTP connection pool); close
    it with :meth:`aclose`. ``http_client`` replaces the library's aiohttp-based client
    (tests record requests with it).
    """

    def __init__(
        self,
        credentials: TwilioCredentials,
        *,
        http_client: AsyncHttpClient | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s}")
        self.credentials = credentials
        self.timeout_s = timeout_s
        self._http_client = http_client
        self._owns_http_client = http_client is None
        self._client: Client | None = None

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        account_sid: str | None = None,
        auth_token: str | None = None,
        api_key: str | None = None,
        api_secret: str | None = None,
        http_client: AsyncHttpClient | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> TwilioCallControl:
        """Call control with :meth:`TwilioCredentials.from_env` credentials."""
        credentials = TwilioCredentials.from_env(
            environ,
            account_sid=account_sid,
            auth_token=auth_token,
            api_key=api_key,
            api_secret=api_secret,
        )
        return cls(credentials, http_client=http_client, timeout_s=timeout_s)

    # --- requests -----------------------------------------------------------------------
    async def hang_up(self, call_sid: str) -> None:
        """End the live call ``call_sid`` (``Status=completed``)."""
        _check_call_sid("hang up", call_sid)
        await self._run(
            "hang up",
            call_sid,
            lambda: self._calls(call_sid).update_async(status="completed"),
        )
        log.info("call %s hung up through the REST API", call_sid)

    async def transfer(
        self,
        call_sid: str,
        number: str,
        hand_off_line: str | None = None,
        *,
        caller_id: str | None = None,
        ring_timeout_s: int | None = None,
        action_url: str | None = None,
        no_answer_line: str | None = None,
    ) -> None:
        """Redirect the live call ``call_sid`` to ``number`` (E.164, or a ``sip:`` URI).

        The call's TwiML is replaced by ``<Say>hand_off_line</Say><Dial>number</Dial>``,
        which also ends its media stream. ``caller_id`` is what the human's phone shows
        (default: the caller's number), ``ring_timeout_s`` how long the human's phone rings,
        ``action_url`` where Twilio reports the dial's outcome; without one, Twilio goes on
        to ``no_answer_line`` (if given) when nobody answers, then hangs up.
        """
        action = f"transfer to {number}"
        _check_call_sid(action, call_sid)
        twiml = transfer_twiml(
            number,
            hand_off_line,
            caller_id=caller_id,
            ring_timeout_s=ring_timeout_s,
            action_url=action_url,
            no_answer_line=no_answer_line,
        )
        await self._run(action, call_sid, lambda: self._calls(call_sid).update_async(twiml=twiml))
        log.info("call %s transferred to %s through the REST API", call_sid, number)

    async def create_outbound(
        self,
        to: str,
        from_: str,
        answer_url: str,
        status_callback: str | None = None,
        *,
        status_events: Sequence[str] = DEFAULT_STATUS_EVENTS,
        ring_timeout_s: int | None = None,
        machine_detection: str | None = None,
    ) -> str:
        """Place a call from ``from_`` (a Twilio number) to ``to``; return its Call SID.

        When answered, Twilio POSTs to ``answer_url`` for TwiML (e.g. ``/twilio/voice``);
        progress (``status_events``) goes to ``status_callback`` (e.g. ``/twilio/status``).
        ``machine_detection`` is Twilio's ``MachineDetection`` (``Enable`` or
        ``DetectMessageEnd``) for answering machines.
        """
        action = f"call {to}"
        _check_endpoint(action, to, "to")
        if not _E164.fullmatch(from_ or ""):
            raise TwilioCallControlError(action, f"from_ {from_!r} is not an E.164 number")
        for name, url in (("answer_url", answer_url), ("status_callback", status_callback)):
            if url is not None and not url.startswith(("https://", "http://")):
                raise TwilioCallControlError(action, f"{name} {url!r} is not an http(s) URL")
        options: dict[str, object] = {}
        if status_callback is not None:
            options.update(
                status_callback=status_callback,
                status_callback_method="POST",
                status_callback_event=list(status_events),
            )
        if ring_timeout_s is not None:
            options["timeout"] = ring_timeout_s
        if machine_detection is not None:
            options["machine_detection"] = machine_detection
        call = await self._run(
            action,
            None,
            lambda: self._account().calls.create_async(
                to=to, from_=from_, url=answer_url, method="POST", **options
            ),
        )
        sid = getattr(call, "sid", None)
        if not isinstance(sid, str) or not _CALL_SID.fullmatch(sid):
            raise TwilioCallControlError(action, f"Twilio's answer has no valid call SID: {sid!r}")
        log.info("outbound call %s to %s created", sid, to)
        return sid

    async def aclose(self) -> None:
        """Close the HTTP connection pool this instance opened (idempotent)."""
        client, self._client = self._client, None
        if client is not None and self._owns_http_client:
            http_client = client.http_client
            if isinstance(http_client, AsyncTwilioHttpClient):
                await http_client.close()

    async def __aenter__(self) -> TwilioCallControl:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # --- internals ----------------------------------------------------------------------
    def _account(self) -> AccountContext:
        if self._client is None:
            # Made on first use, inside the event loop: aiohttp's session wants a running loop.
            http_client = self._http_client or AsyncTwilioHttpClient()
            username, password = self.credentials.basic_auth
            self._client = Client(
                username,
                password,
                account_sid=self.credentials.account_sid,
                http_client=http_client,
            )
        return self._client.api.v2010.accounts(self.credentials.account_sid)

    def _calls(self, call_sid: str) -> CallContext:
        return self._account().calls(call_sid)

    async def _run(
        self, action: str, call_sid: str | None, request: Callable[[], Awaitable[T]]
    ) -> T:
        """Make and await ``request()`` within ``timeout_s``, turning every failure into
        :class:`TwilioCallControlError`."""
        try:
            async with asyncio.timeout(self.timeout_s):
                return await request()
        except TwilioRestException as exc:
            # Without a JSON body the library repeats the HTTP status as the "code".
            code = exc.code if exc.code != exc.status else None
            raise TwilioCallControlError(
                action, _plain(exc.msg), status=exc.status, code=code, call_sid=call_sid
            ) from exc
        except TwilioServiceException as exc:
            reason = _plain(exc.detail or exc.title)
            raise TwilioCallControlError(
                action, reason, status=exc.status, code=exc.code, call_sid=call_sid
            ) from exc
        except TimeoutError as exc:
            raise TwilioCallControlError(
                action, f"Twilio did not answer within {self.timeout_s:g} s", call_sid=call_sid
            ) from exc
        except Exception as exc:  # network errors, unreadable answers: never the call's end
            reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            raise TwilioCallControlError(action, reason, call_sid=call_sid) from exc


def transfer_twiml(
    number: str,
    hand_off_line: str | None = None,
    *,
    caller_id: str | None = None,
    ring_timeout_s: int | None = None,
    action_url: str | None = None,
    no_answer_line: str | None = None,
) -> str:
    """The TwiML that says ``hand_off_line`` and dials ``number`` (see
    :meth:`TwilioCallControl.transfer`). Raises :class:`TwilioCallControlError` for an
    unusable number, caller ID or timeout, or TwiML over Twilio's 4,000-character limit."""
    action = f"transfer to {number}"
    _check_endpoint(action, number, "number")
    if caller_id is not None and not _E164.fullmatch(caller_id):
        raise TwilioCallControlError(action, f"caller_id {caller_id!r} is not an E.164 number")
    if ring_timeout_s is not None and not 5 <= ring_timeout_s <= 600:
        raise TwilioCallControlError(action, f"ring_timeout_s {ring_timeout_s} is not 5..600")
    response = VoiceResponse()
    if hand_off_line and hand_off_line.strip():
        response.say(hand_off_line.strip())
    dial_options = {"caller_id": caller_id, "timeout": ring_timeout_s, "action": action_url}
    if number.startswith("sip:"):
        response.dial(**dial_options).sip(number)
    else:
        response.dial(number, **dial_options)
    if no_answer_line and no_answer_line.strip() and action_url is None:
        response.say(no_answer_line.strip())
    twiml = str(response)
    if len(twiml) > MAX_TWIML_CHARS:
        raise TwilioCallControlError(
            action, f"the TwiML is {len(twiml)} characters; Twilio takes at most {MAX_TWIML_CHARS}"
        )
    return twiml


def _check_call_sid(action: str, call_sid: str) -> None:
    if not isinstance(call_sid, str) or not _CALL_SID.fullmatch(call_sid):
        raise TwilioCallControlError(
            action, f"{call_sid!r} is not a call SID ('CA' followed by 32 hex digits)"
        )


def _check_endpoint(action: str, value: str, name: str) -> None:
    if isinstance(value, str) and (_E164.fullmatch(value) or value.startswith("sip:")):
        return
    raise TwilioCallControlError(action, f"{name} {value!r} is neither E.164 nor a sip: URI")


def _plain(message: object) -> str:
    return " ".join(str(message or "no message").split())
