"""Where finished calls are sent: settings per destination, read from the environment.

A destination is configured when its token (or URL) variable is set; a half-configured one
is an error naming the missing variables, never a silent skip.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

GOHIGHLEVEL_BASE_URL = "https://services.leadconnectorhq.com"
HUBSPOT_BASE_URL = "https://api.hubapi.com"


def _read(
    env: Mapping[str, str], prefix: str, names: dict[str, str], required: tuple[str, ...]
) -> dict[str, str] | None:
    """``{field: value}`` for the variables set; None if none of ``required`` is set."""
    values = {field: env[prefix + var] for field, var in names.items() if env.get(prefix + var)}
    if not any(field in values for field in required):
        return None
    missing = [prefix + names[field] for field in required if field not in values]
    if missing:
        raise ValueError(f"incomplete {prefix.rstrip('_')} settings: set {', '.join(missing)}")
    return values


class _Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    timeout_s: float = Field(10.0, gt=0, description="Per-request timeout.")

    @field_validator("base_url", check_fields=False)
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"base URL must start with http:// or https://, got {value!r}")
        return value.rstrip("/")


class GoHighLevelSettings(_Settings):
    """A GoHighLevel (LeadConnector) sub-account: a Private Integration token, the location,
    the calendar bookings go on, and the pipeline stage a booked caller's opportunity is in."""

    token: SecretStr
    location_id: str = Field(min_length=1)
    calendar_id: str = Field(min_length=1)
    pipeline_id: str | None = None
    stage_id: str | None = None
    base_url: str = GOHIGHLEVEL_BASE_URL

    @model_validator(mode="after")
    def _pipeline_and_stage(self) -> GoHighLevelSettings:
        if (self.pipeline_id is None) != (self.stage_id is None):
            raise ValueError(
                "GoHighLevel opportunities need both FRONTDESK_GHL_PIPELINE_ID and "
                "FRONTDESK_GHL_STAGE_ID (or neither)"
            )
        return self

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> GoHighLevelSettings | None:
        """From ``FRONTDESK_GHL_TOKEN``, ``_LOCATION_ID``, ``_CALENDAR_ID``, ``_PIPELINE_ID``,
        ``_STAGE_ID`` (and ``_BASE_URL``); None if no token is set."""
        names = {
            "token": "TOKEN",
            "location_id": "LOCATION_ID",
            "calendar_id": "CALENDAR_ID",
            "pipeline_id": "PIPELINE_ID",
            "stage_id": "STAGE_ID",
            "base_url": "BASE_URL",
        }
        values = _read(
            os.environ if env is None else env,
            "FRONTDESK_GHL_",
            names,
            ("token", "location_id", "calendar_id"),
        )
        return None if values is None else cls(**values)


class HubSpotSettings(_Settings):
    """A HubSpot account, reached with a private app's access token."""

    token: SecretStr
    base_url: str = HUBSPOT_BASE_URL

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> HubSpotSettings | None:
        """From ``FRONTDESK_HUBSPOT_TOKEN`` (and ``_BASE_URL``); None if no token is set."""
        values = _read(
            os.environ if env is None else env,
            "FRONTDESK_HUBSPOT_",
            {"token": "TOKEN", "base_url": "BASE_URL"},
            ("token",),
        )
        return None if values is None else cls(**values)


class WebhookSettings(_Settings):
    """A URL that receives each finished call, signed with a shared secret."""

    url: str
    secret: SecretStr

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"webhook URL must start with http:// or https://, got {value!r}")
        return value

    @field_validator("secret")
    @classmethod
    def _secret(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) < 16:
            raise ValueError("the webhook secret must be at least 16 characters")
        return value

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WebhookSettings | None:
        """From ``FRONTDESK_WEBHOOK_URL`` and ``FRONTDESK_WEBHOOK_SECRET``; None if no URL."""
        values = _read(
            os.environ if env is None else env,
            "FRONTDESK_WEBHOOK_",
            {"url": "URL", "secret": "SECRET"},
            ("url", "secret"),
        )
        return None if values is None else cls(**values)


class SyncSettings(BaseModel):
    """Every destination a finished call goes to (each one optional)."""

    model_config = ConfigDict(frozen=True)

    gohighlevel: GoHighLevelSettings | None = None
    hubspot: HubSpotSettings | None = None
    webhook: WebhookSettings | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SyncSettings:
        """All destinations configured in the environment."""
        return cls(
            gohighlevel=GoHighLevelSettings.from_env(env),
            hubspot=HubSpotSettings.from_env(env),
            webhook=WebhookSettings.from_env(env),
        )

    @property
    def configured(self) -> bool:
        """Whether any destination is set up."""
        return any((self.gohighlevel, self.hubspot, self.webhook))
