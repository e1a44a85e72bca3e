"""``frontdesk serve``'s settings: a YAML file, then environment variables, then flags.

Each layer overrides the one before, so a deployment can keep its file in version control
and its secrets in the environment::

    # frontdesk.yaml
    host: 0.0.0.0
    port: 8080
    public_url: https://frontdesk.example.com
    profile: profiles/my-practice.yaml
    database_url: postgresql+psycopg://frontdesk@db/frontdesk
    endpointing: {complete_s: 0.25, incomplete_s: 2.0}
    sip_listen: 0.0.0.0:5060          # also answer SIP (frontdesk serve --sip HOST:PORT)
    sip:                              # the trunk: see frontdesk.transports.sip.SipSettings
      media_host: 203.0.113.7         # the address peers reach us at (SDP, Via, Contact)
      registrar: sip:trunk.example.com
      username: frontdesk-practice    # the password best comes from FRONTDESK_SIP_PASSWORD

Environment: ``TWILIO_AUTH_TOKEN``, ``TWILIO_ACCOUNT_SID`` (``TWILIO_API_KEY`` and
``TWILIO_API_SECRET`` instead of the auth token for REST calls), ``FRONTDESK_PUBLIC_URL``,
``FRONTDESK_DATABASE_URL``, ``FRONTDESK_PROFILE``, ``FRONTDESK_HOST``, ``FRONTDESK_PORT``,
``FRONTDESK_SIP_LISTEN`` and ``FRONTDESK_SIP_<FIELD>`` for each field of the ``sip`` section
(``FRONTDESK_SIP_REGISTRAR``, ``FRONTDESK_SIP_USERNAME``, ``FRONTDESK_SIP_PASSWORD``, ...).

The brain (``brain: flow | llm`` and its ``llm:`` endpoint), the calendar (``calendar``,
``caldav:``) and the CRM destinations (``crm:``) are the sections of
:mod:`frontdesk.backend_settings`, with its environment variables.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from frontdesk.agent import AgentOptions
from frontdesk.backend_settings import BackendSettings, overlay_environment
from frontdesk.call.contracts import CallConfig
from frontdesk.speech.turns import EndpointConfig
from frontdesk.transports.sip.settings import SipSettings, parse_listen

ENVIRONMENT = {
    "host": "FRONTDESK_HOST",
    "port": "FRONTDESK_PORT",
    "public_url": "FRONTDESK_PUBLIC_URL",
    "profile": "FRONTDESK_PROFILE",
    "database_url": "FRONTDESK_DATABASE_URL",
    "twilio_auth_token": "TWILIO_AUTH_TOKEN",
    "twilio_account_sid": "TWILIO_ACCOUNT_SID",
    "twilio_api_key": "TWILIO_API_KEY",
    "twilio_api_secret": "TWILIO_API_SECRET",
    "sip_listen": "FRONTDESK_SIP_LISTEN",
}
"""Which environment variable sets which field."""


class ConfigError(ValueError):
    """The configuration file or a setting is unusable; the message says which and why."""


_ENDPOINT_DEFAULTS = EndpointConfig()


class EndpointTuning(BaseModel):
    """How long a pause ends the caller's turn (seconds), by how complete it sounds."""

    model_config = ConfigDict(extra="forbid")

    complete_s: float = Field(_ENDPOINT_DEFAULTS.complete_s, gt=0, le=10)
    incomplete_s: float = Field(_ENDPOINT_DEFAULTS.incomplete_s, gt=0, le=10)
    yes_no_s: float = Field(_ENDPOINT_DEFAULTS.yes_no_s, gt=0, le=10)
    number_s: float = Field(_ENDPOINT_DEFAULTS.number_s, gt=0, le=10)
    transcript_wait_s: float = Field(_ENDPOINT_DEFAULTS.transcript_wait_s, gt=0, le=10)


class ServeConfig(BackendSettings):
    """Everything ``frontdesk serve`` needs; all optional but where it listens. The brain,
    calendar and CRM settings are inherited from :class:`BackendSettings`."""

    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    public_url: str | None = None
    """The https URL Twilio reaches this server at (signatures are checked against it)."""
    profile: Path | None = None
    database_url: str | None = None
    twilio_auth_token: str | None = None
    twilio_account_sid: str | None = None
    """With it, hang-ups and transfers go through Twilio's REST API."""
    twilio_api_key: str | None = None
    twilio_api_secret: str | None = None
    transfer_caller_id: str | None = None
    endpointing: EndpointTuning = Field(default_factory=lambda: EndpointTuning())
    barge_in: bool = True
    """Whether caller speech stops the agent's audio (off only to prove the eval catches it)."""
    fixed_now: datetime | None = None
    """Pin the agent's clock (reproducible evaluation runs); must carry a UTC offset."""
    sip_listen: str | None = None
    """``HOST:PORT`` to answer SIP calls on (UDP), beside the HTTP server; None: no SIP."""
    sip: SipSettings = Field(default_factory=SipSettings)
    """The SIP trunk: registration, credentials, media address, transfers."""

    @field_validator("sip_listen")
    @classmethod
    def _listen(cls, value: str | None) -> str | None:
        if value is not None:
            parse_listen(value)
        return value

    @model_validator(mode="after")
    def _sip_reachable(self) -> ServeConfig:
        address = self.sip_address()
        if address is not None and address[0] == "0.0.0.0" and not self.sip.media_host:
            raise ValueError(
                "sip_listen on 0.0.0.0 needs sip.media_host (FRONTDESK_SIP_MEDIA_HOST): "
                "the address callers' media and SIP reach this machine at"
            )
        return self

    def sip_address(self) -> tuple[str, int] | None:
        """(host, port) to answer SIP on, or None."""
        return parse_listen(self.sip_listen) if self.sip_listen else None

    @field_validator("fixed_now")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.utcoffset() is None:
            raise ValueError("fixed_now needs a UTC offset, e.g. 2026-11-23T09:30:00-05:00")
        return value

    def agent_options(self) -> AgentOptions:
        """The agent these settings describe."""
        now = self.fixed_now
        return AgentOptions(
            profile=self.profile,
            database_url=self.database_url,
            endpoint=EndpointConfig(**self.endpointing.model_dump()),
            call=CallConfig(barge_in=self.barge_in),
            now=(lambda: now) if now is not None else None,
            **self.agent_fields(),
        )


def load_serve_config(
    path: str | Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> ServeConfig:
    """The file at ``path`` (YAML), overridden by ``env`` (default: the process
    environment), overridden by ``overrides`` (command-line flags; None values ignored)."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from exc
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{path} must be a mapping of settings, not {type(loaded).__name__}")
        values.update(loaded or {})
    values.update({field: env[name] for field, name in ENVIRONMENT.items() if env.get(name)})
    sip_env = SipSettings.env_values(env)
    if sip_env:
        section = values.get("sip") or {}
        # A bad ``sip:`` section is named by validation below, not hidden by the merge.
        values["sip"] = {**section, **sip_env} if isinstance(section, dict) else section
    values = overlay_environment(values, env)  # the brain, calendar and CRM sections
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    try:
        return ServeConfig(**values)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}"
            if error["loc"]
            else error["msg"]
            for error in exc.errors()
        )
        raise ConfigError(f"bad settings ({problems})") from exc
