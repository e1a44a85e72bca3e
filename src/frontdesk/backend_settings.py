"""Which brain, calendar and CRM destinations the agent uses, as settings.

One YAML shape for ``frontdesk serve --config`` (and the same environment variables for
``serve`` and ``demo``)::

    brain: llm                     # flow (default) | llm
    llm:                           # any OpenAI-compatible endpoint; without base_url the
      base_url: https://api.openai.com/v1   # packaged local model is started (llama.cpp)
      model: gpt-4o-mini
      api_key: sk-...              # better: FRONTDESK_LLM_API_KEY
      local_model: qwen2.5-coder-1.5b   # without base_url: which packaged model (default)
    calendar: caldav               # sql (default) | caldav (the default once caldav.url is set)
    caldav: {url: https://dav.example.com/cal/, username: desk, password: ...}
    crm:                           # each destination optional; finished calls are queued in
      gohighlevel: {token: ..., location_id: ..., calendar_id: ...}   # the database and
      hubspot: {token: ...}                                           # delivered with retries
      webhook: {url: https://example.com/hook, secret: at-least-16-chars}

Environment (over the file): ``FRONTDESK_BRAIN``, ``FRONTDESK_LLM_BASE_URL``,
``FRONTDESK_LLM_MODEL``, ``FRONTDESK_LLM_API_KEY``, ``FRONTDESK_LLM_LOCAL_MODEL``,
``FRONTDESK_CALENDAR``,
``FRONTDESK_CALDAV_URL``, ``FRONTDESK_CALDAV_USER``, ``FRONTDESK_CALDAV_PASSWORD``,
``FRONTDESK_CALDAV_CALENDAR``, ``FRONTDESK_GHL_TOKEN`` / ``_LOCATION_ID`` / ``_CALENDAR_ID``
/ ``_PIPELINE_ID`` / ``_STAGE_ID`` / ``_BASE_URL``, ``FRONTDESK_HUBSPOT_TOKEN`` /
``_BASE_URL``, ``FRONTDESK_WEBHOOK_URL`` / ``_SECRET``.

Only settings live here; ``agent.py`` turns them into providers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from frontdesk.brain.llm import LLMSettings
from frontdesk.brain.local_llm import DEFAULT_LOCAL_MODEL, LOCAL_MODELS
from frontdesk.business.caldav_connection import CalDAVSettings
from frontdesk.crm_sync.settings import SyncSettings

BACKEND_ENVIRONMENT: dict[tuple[str, ...], str] = {
    ("brain",): "FRONTDESK_BRAIN",
    ("llm", "base_url"): "FRONTDESK_LLM_BASE_URL",
    ("llm", "model"): "FRONTDESK_LLM_MODEL",
    ("llm", "api_key"): "FRONTDESK_LLM_API_KEY",
    ("llm", "local_model"): "FRONTDESK_LLM_LOCAL_MODEL",
    ("calendar",): "FRONTDESK_CALENDAR",
    ("caldav", "url"): "FRONTDESK_CALDAV_URL",
    ("caldav", "username"): "FRONTDESK_CALDAV_USER",
    ("caldav", "password"): "FRONTDESK_CALDAV_PASSWORD",
    ("caldav", "calendar"): "FRONTDESK_CALDAV_CALENDAR",
    **{
        ("crm", "gohighlevel", field): f"FRONTDESK_GHL_{field.upper()}"
        for field in ("token", "location_id", "calendar_id", "pipeline_id", "stage_id", "base_url")
    },
    ("crm", "hubspot", "token"): "FRONTDESK_HUBSPOT_TOKEN",
    ("crm", "hubspot", "base_url"): "FRONTDESK_HUBSPOT_BASE_URL",
    ("crm", "webhook", "url"): "FRONTDESK_WEBHOOK_URL",
    ("crm", "webhook", "secret"): "FRONTDESK_WEBHOOK_SECRET",
}
"""Which environment variable sets which (nested) setting."""


class LLMEndpoint(BaseModel):
    """The language model endpoint of the ``llm`` brain."""

    model_config = ConfigDict(extra="forbid")

    base_url: str | None = None
    """The API root up to ``/v1``; none: frontdesk starts the packaged local model."""
    model: str | None = None
    api_key: SecretStr | None = None
    first_token_timeout_s: float | None = Field(None, gt=0)
    temperature: float | None = Field(None, ge=0, le=2)
    max_tokens: int | None = Field(None, gt=0)
    local_model: str = DEFAULT_LOCAL_MODEL
    """Without ``base_url``: which packaged model to run (see ``LOCAL_MODELS``)."""

    @field_validator("local_model")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in LOCAL_MODELS:
            choices = ", ".join(LOCAL_MODELS)
            raise ValueError(f"unknown local model {value!r}: choose one of {choices}")
        return value

    def settings(self) -> LLMSettings | None:
        """The brain's settings, or None for the local model."""
        if self.base_url is None:
            return None
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"llm.base_url must start with http:// or https://: {self.base_url}")
        values = self.model_dump(exclude_none=True, exclude={"api_key", "local_model"})
        if self.api_key is not None:
            values["api_key"] = self.api_key.get_secret_value()
        return LLMSettings(**values)


class CalDAVServer(BaseModel):
    """A calendar on a CalDAV server."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1)
    username: str | None = None
    password: SecretStr | None = None
    calendar: str | None = None
    """The calendar's URL, display name or id; none: the user's first calendar."""
    timeout_s: float = Field(10.0, gt=0)

    def settings(self) -> CalDAVSettings:
        """The adapter's settings."""
        password = self.password.get_secret_value() if self.password is not None else None
        return CalDAVSettings(self.url, self.username, password, self.calendar, self.timeout_s)


class BackendSettings(BaseModel):
    """The brain, calendar and CRM destinations (see the module doc)."""

    model_config = ConfigDict(extra="forbid")

    brain: Literal["flow", "llm"] = "flow"
    llm: LLMEndpoint = Field(default_factory=lambda: LLMEndpoint())
    calendar: Literal["sql", "caldav"] | None = None
    """None: CalDAV when ``caldav`` is configured, else the SQL calendar."""
    caldav: CalDAVServer | None = None
    crm: SyncSettings = Field(default_factory=lambda: SyncSettings())

    @model_validator(mode="after")
    def _calendar_needs_a_server(self) -> BackendSettings:
        if self.calendar == "caldav" and self.caldav is None:
            raise ValueError(
                "calendar is caldav but no CalDAV server is set (FRONTDESK_CALDAV_URL)"
            )
        self.llm.settings()  # a bad base URL is named now, not at the first call
        return self

    @property
    def calendar_kind(self) -> Literal["sql", "caldav"]:
        """The calendar in use."""
        if self.calendar is not None:
            return self.calendar
        return "caldav" if self.caldav is not None else "sql"

    def agent_fields(self) -> dict[str, Any]:
        """These settings as :class:`~frontdesk.agent.AgentOptions` fields."""
        caldav = self.caldav.settings() if self.caldav is not None else None
        return {
            "brain": self.brain,
            "llm": self.llm.settings(),
            "local_model": self.llm.local_model,
            "calendar": self.calendar_kind,
            "caldav": caldav if self.calendar_kind == "caldav" else None,
            "crm_sync": self.crm if self.crm.configured else None,
        }


def overlay_environment(values: Mapping[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    """``values`` (as read from a settings file) with the variables of
    :data:`BACKEND_ENVIRONMENT` that are set in ``env`` written over them."""
    merged = _copy(values)
    for path, name in BACKEND_ENVIRONMENT.items():
        value = env.get(name)
        if not value:
            continue
        node: Any = merged
        for key in path[:-1]:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                break  # a section that is not a mapping: validation names it
        else:
            node[path[-1]] = value
    return merged


def _copy(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _copy(v) if isinstance(v, Mapping) else v for k, v in values.items()}


def backend_settings_from_env(env: Mapping[str, str], **overrides: Any) -> BackendSettings:
    """The settings the environment gives, then ``overrides`` (None values ignored)."""
    values = overlay_environment({}, env)
    values.update({k: v for k, v in overrides.items() if v is not None})
    return BackendSettings(**values)
