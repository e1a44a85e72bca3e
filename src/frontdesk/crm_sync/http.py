"""HTTP calls for destinations: every failure becomes a retryable or a permanent error."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from frontdesk.crm_sync.destination import PermanentDeliveryError, RetryableDeliveryError

RETRYABLE_STATUSES = frozenset({408, 425, 429})
"""Client errors that mean "not now" rather than "never"; every 5xx is retryable too."""

MAX_RETRY_AFTER_S = 3600.0
"""A ``Retry-After`` longer than this is capped (a misconfigured server cannot stall us)."""

DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
"""Per-request limits: nothing on the outbox path waits on a silent server forever."""


def retry_after_seconds(response: httpx.Response) -> float | None:
    """The response's ``Retry-After`` (seconds or an HTTP date) in seconds, if any."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            moment = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        seconds = (moment - datetime.now(UTC)).total_seconds()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


def check_response(response: httpx.Response, what: str) -> None:
    """Raise the right :class:`DeliveryError` unless the response is a success."""
    if response.is_success:
        return
    request = response.request
    detail = response.text[:300].strip()
    message = f"{what}: {request.method} {request.url.path} returned {response.status_code}" + (
        f": {detail}" if detail else ""
    )
    if response.status_code >= 500 or response.status_code in RETRYABLE_STATUSES:
        raise RetryableDeliveryError(message, retry_after_seconds(response))
    raise PermanentDeliveryError(message)


async def send(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    what: str,
    *,
    ok_statuses: frozenset[int] = frozenset(),
    **kwargs: Any,
) -> httpx.Response:
    """Make one request; timeouts and connection failures are retryable, and an error
    status raises unless it is in ``ok_statuses`` (for the caller to handle)."""
    try:
        response = await client.request(method, url, **kwargs)
    except httpx.TimeoutException as error:
        raise RetryableDeliveryError(f"{what}: {method} {url} timed out") from error
    except httpx.TransportError as error:
        raise RetryableDeliveryError(
            f"{what}: {method} {url} failed: {type(error).__name__}: {error}"
        ) from error
    if response.status_code not in ok_statuses:
        check_response(response, what)
    return response


def json_body(response: httpx.Response, what: str) -> dict[str, Any]:
    """The response's JSON object; anything else is a retryable error (a proxy's error
    page, a truncated body), so the write is not lost."""
    try:
        data = response.json()
    except ValueError as error:
        raise RetryableDeliveryError(
            f"{what}: {response.request.method} {response.request.url.path} "
            f"returned non-JSON: {response.text[:200]!r}"
        ) from error
    if not isinstance(data, dict):
        raise RetryableDeliveryError(f"{what}: expected a JSON object, got {type(data).__name__}")
    return data


def required_id(data: dict[str, Any], what: str, *path: str) -> str:
    """``data[path[0]][path[1]]...`` as a non-empty string id, or a retryable error."""
    value: Any = data
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    if value is None or value == "":
        raise RetryableDeliveryError(f"{what}: response has no {'.'.join(path)}: {data!r:.200}")
    return str(value)
