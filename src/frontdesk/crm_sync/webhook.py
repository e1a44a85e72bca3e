"""A signed webhook: each finished call is POSTed, as JSON, to a URL of the business's choice.

The signature scheme (receivers: use :func:`verify_signature`):

- ``X-Frontdesk-Timestamp``: the Unix time of this attempt, in whole seconds;
- ``X-Frontdesk-Signature``: ``sha256=`` and the lowercase hex HMAC-SHA256, keyed with the
  shared secret, of ``f"{timestamp}."`` followed by the exact raw request body;
- ``X-Frontdesk-Delivery`` and ``Idempotency-Key``: the same value on every retry of one
  delivery, so a receiver that saw it already can acknowledge and ignore the repeat.

Signing the timestamp with the body means a captured request cannot be replayed later with
a fresh timestamp; receivers reject timestamps outside a tolerance (5 minutes by default).
The body is ``{"event": "call.completed", "delivery_id": ..., "call": <call record>}``.
Any 2xx acknowledges; a 5xx, 408, 429 or no answer is retried later; another 4xx parks the
delivery (a receiver that refuses it will not change its mind on retry).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping

import httpx

from frontdesk.crm_sync.destination import Delivery
from frontdesk.crm_sync.http import send
from frontdesk.crm_sync.settings import WebhookSettings

SIGNATURE_HEADER = "X-Frontdesk-Signature"
TIMESTAMP_HEADER = "X-Frontdesk-Timestamp"
DELIVERY_HEADER = "X-Frontdesk-Delivery"
EVENT_HEADER = "X-Frontdesk-Event"
SIGNATURE_PREFIX = "sha256="
DEFAULT_TOLERANCE_S = 300.0
"""How far a timestamp may be from the receiver's clock (either way) and still verify."""


def _key(secret: str | bytes) -> bytes:
    return secret.encode() if isinstance(secret, str) else secret


def sign(secret: str | bytes, body: bytes, timestamp: int) -> str:
    """The ``X-Frontdesk-Signature`` value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(_key(secret), f"{timestamp}.".encode() + body, hashlib.sha256)
    return SIGNATURE_PREFIX + mac.hexdigest()


def signed_headers(
    secret: str | bytes, body: bytes, timestamp: int | None = None
) -> dict[str, str]:
    """The timestamp and signature headers for ``body`` (timestamp: now)."""
    moment = int(time.time()) if timestamp is None else timestamp
    return {TIMESTAMP_HEADER: str(moment), SIGNATURE_HEADER: sign(secret, body, moment)}


def verify_signature(
    secret: str | bytes,
    body: bytes,
    headers: Mapping[str, str],
    *,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> bool:
    """Whether ``body`` with these request ``headers`` (any letter case) was signed with
    ``secret`` within ``tolerance_s`` seconds of ``now`` (default: the current time).

    Pass the raw body exactly as received: re-serialised JSON will not verify.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    signature = lowered.get(SIGNATURE_HEADER.lower(), "")
    timestamp_text = lowered.get(TIMESTAMP_HEADER.lower(), "")
    if not signature.startswith(SIGNATURE_PREFIX) or not timestamp_text.isdigit():
        return False
    timestamp = int(timestamp_text)
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, body, timestamp), signature)


def webhook_body(item: Delivery) -> bytes:
    """The JSON body for ``item``: compact, keys sorted, the same bytes on every retry."""
    envelope = {"event": item.kind, "delivery_id": item.idempotency_key, "call": item.payload}
    return json.dumps(envelope, sort_keys=True, separators=(",", ":")).encode()


class SignedWebhook:
    """The webhook destination (name ``webhook``)."""

    name = "webhook"

    def __init__(self, settings: WebhookSettings, client: httpx.AsyncClient | None = None) -> None:
        self.settings = settings
        self._client = client or httpx.AsyncClient(
            timeout=httpx.Timeout(settings.timeout_s, connect=min(5.0, settings.timeout_s))
        )

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()

    async def deliver(self, item: Delivery) -> None:
        """POST the signed call record; a 2xx is the receiver's acknowledgement."""
        body = webhook_body(item)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "frontdesk-webhook/1",
            EVENT_HEADER: item.kind,
            DELIVERY_HEADER: item.idempotency_key,
            "Idempotency-Key": item.idempotency_key,
            **signed_headers(self.settings.secret.get_secret_value(), body),
        }
        await send(
            self._client, "POST", self.settings.url, "webhook", content=body, headers=headers
        )
