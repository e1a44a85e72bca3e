"""SIP settings: where frontdesk listens, the trunk it registers with, where transfers go.

Every field can come from the environment (``FRONTDESK_SIP_<FIELD>``, upper case), e.g.
``FRONTDESK_SIP_REGISTRAR=sip:trunk.example.com``, ``FRONTDESK_SIP_USERNAME``,
``FRONTDESK_SIP_PASSWORD``, ``FRONTDESK_SIP_TRANSFER_NUMBER``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from frontdesk.transports.sip.dialog import Credentials
from frontdesk.transports.sip.message import SipParseError, parse_uri

ENV_PREFIX = "FRONTDESK_SIP_"


def parse_listen(value: str) -> tuple[str, int]:
    """``"HOST:PORT"`` -> (host, port); raises ValueError naming what is wrong."""
    host, colon, port = value.strip().rpartition(":")
    if not colon or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"expected HOST:PORT (e.g. 127.0.0.1:5060), got {value!r}")
    return host, int(port)


class SipSettings(BaseModel):
    """How the SIP side of frontdesk is reached and how it reaches the trunk."""

    model_config = ConfigDict(extra="forbid")

    media_host: str | None = None
    """Address put in SDP and bound for RTP (default: the SIP listening address; set it
    when listening on 0.0.0.0)."""
    registrar: str | None = None
    """The trunk's registrar URI (``sip:trunk.example.com[:port]``); None: no REGISTER."""
    username: str | None = None
    password: SecretStr | None = None
    """Kept out of logs and reprs; best set from ``FRONTDESK_SIP_PASSWORD``."""
    domain: str | None = None
    """Domain of our address of record (default: the registrar's host)."""
    outbound_proxy: str | None = None
    """Where outbound INVITEs go (``host[:port]``; default: the registrar, else the URI)."""
    register_expires: int = Field(default=300, ge=60, le=86400)
    transfer_number: str | None = None
    """Overrides the profile's hand-off number for transfers on SIP calls."""
    caller_id: str = "frontdesk"
    """User part of our From on outbound calls."""
    ring_s: float = Field(default=0.0, ge=0.0, le=30.0)
    """How long an inbound call rings (180) before it is answered."""
    ring_timeout_s: float = Field(default=45.0, gt=0.0)
    max_calls: int = Field(default=8, ge=1)
    """Calls beyond this get 486 Busy Here."""
    bridge_fallback: bool = True
    """When a REFER is refused, call the transfer number and bridge the caller to it."""

    @field_validator("registrar")
    @classmethod
    def _sip_uri(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                parse_uri(value)
            except SipParseError as exc:
                raise ValueError(str(exc)) from exc
        return value

    @classmethod
    def env_values(cls, env: Mapping[str, str] | None = None) -> dict[str, str]:
        """The ``FRONTDESK_SIP_<FIELD>`` variables that are set, by field name (unvalidated:
        ``frontdesk serve`` layers them over its settings file)."""
        env = os.environ if env is None else env
        return {
            name: env[ENV_PREFIX + name.upper()]
            for name in cls.model_fields
            if env.get(ENV_PREFIX + name.upper())
        }

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SipSettings:
        """Settings from ``FRONTDESK_SIP_*`` variables (unset ones keep their defaults)."""
        return cls.model_validate(cls.env_values(env))

    @property
    def credentials(self) -> Credentials | None:
        """Digest credentials, when a username is set."""
        if not self.username:
            return None
        password = self.password.get_secret_value() if self.password else ""
        return Credentials(self.username, password)

    @property
    def trunk_domain(self) -> str | None:
        """The domain numbers are dialled at (``sip:<number>@<domain>``)."""
        if self.domain:
            return self.domain
        return parse_uri(self.registrar).host if self.registrar else None

    def proxy_address(self) -> tuple[str, int] | None:
        """Where outbound requests go, if not straight to the dialled URI."""
        if self.outbound_proxy:
            host, _, port = self.outbound_proxy.removeprefix("sip:").partition(":")
            return host, int(port) if port.isdigit() else 5060
        if self.registrar:
            return parse_uri(self.registrar).address()
        return None

    def number_uri(self, number: str) -> str:
        """A SIP URI for a phone number or a URI (``sip:...`` passes through)."""
        if number.startswith(("sip:", "sips:")):
            return number
        digits = "".join(c for c in number if c.isdigit() or c == "+")
        domain = self.trunk_domain
        if domain is None:
            raise ValueError(f"cannot dial {number!r}: no trunk registrar or domain configured")
        return f"sip:{digits}@{domain}"
