"""A ``frontdesk serve`` of its own, in a child process, for runs that have no agent to
call (``frontdesk eval`` without ``--url``, the concurrency benchmark): its own SQLite
database and auth token in a work folder, on a free loopback port, and with ``sip=True`` a
SIP listener on a free loopback UDP port too."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import sys
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from frontdesk.evals.backends import CalDAVSettings
from frontdesk.evals.battery import Target

START_TIMEOUT_S = 180.0
"""Loading the models and warming the phrase cache takes a few seconds; a cold machine
(first run, nothing in the page cache) takes longer."""


def free_port(kind: socket.SocketKind = socket.SOCK_STREAM) -> int:
    """A TCP (or UDP) port nothing uses now."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalServer:
    """``frontdesk serve`` with ``settings`` (as in its YAML config) in ``workdir``.

    ``sip``: also answer SIP, and have the battery call over SIP. ``caldav``: the CalDAV
    calendar the agent books on (it is given to the agent unless ``settings`` name one, and
    the battery reads bookings back from it); its password reaches the agent through the
    environment, not the settings file written to ``workdir``."""

    def __init__(
        self,
        workdir: str | Path,
        settings: dict[str, Any] | None = None,
        *,
        sip: bool = False,
        caldav: CalDAVSettings | None = None,
    ) -> None:
        self.workdir = Path(workdir)
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.auth_token = secrets.token_hex(16)
        self.database_url = f"sqlite:///{self.workdir / 'agent.db'}"
        self.log_path = self.workdir / "server.log"
        self.sip_uri: str | None = None
        self.caldav = caldav
        self.settings = {
            "host": "127.0.0.1",
            "port": self.port,
            "public_url": self.base_url,
            "database_url": self.database_url,
            "twilio_auth_token": self.auth_token,
            **(settings or {}),
        }
        if sip:
            sip_port = free_port(socket.SOCK_DGRAM)
            self.settings["sip_listen"] = f"127.0.0.1:{sip_port}"
            self.sip_uri = f"sip:frontdesk@127.0.0.1:{sip_port}"
        self._env: dict[str, str] = {}
        if caldav is not None and "caldav" not in self.settings:
            self.settings["calendar"] = "caldav"
            self.settings["caldav"] = {
                k: v
                for k, v in {
                    "url": caldav.url,
                    "username": caldav.username,
                    "calendar": caldav.calendar,
                }.items()
                if v is not None
            }
            if caldav.password is not None:
                self._env["FRONTDESK_CALDAV_PASSWORD"] = caldav.password
        self._process: asyncio.subprocess.Process | None = None

    @property
    def target(self) -> Target:
        """How to call this server and read its database (and calendar)."""
        return Target(self.base_url, self.auth_token, self.database_url, self.sip_uri, self.caldav)

    async def start(self) -> Target:
        """Start the server and wait until it answers ``/healthz``."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "serve.yaml"
        config.write_text(yaml.safe_dump(_plain(self.settings)), encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("FRONTDESK_", "TWILIO_"))}
        env.update(self._env)
        with self.log_path.open("wb") as log:
            self._process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "frontdesk",
                "serve",
                "--config",
                str(config),
                env=env,
                stdout=log,
                stderr=log,
            )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT_S
        while loop.time() < deadline:
            if self._process.returncode is not None:
                raise RuntimeError(f"frontdesk serve exited; see {self.log_path}")
            if await asyncio.to_thread(self._healthy):
                return self.target
            await asyncio.sleep(0.2)
        await self.stop()
        raise RuntimeError(f"frontdesk serve did not start in {START_TIMEOUT_S:g} s")

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.base_url}/healthz", timeout=1) as response:
                return response.status == 200
        except OSError:
            return False

    async def stop(self) -> None:
        """Stop the server (SIGTERM: uvicorn finishes live calls and saves them)."""
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 30)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()

    async def __aenter__(self) -> Target:
        return await self.start()

    async def __aexit__(self, *_: object) -> None:
        await self.stop()


def _plain(value: Any) -> Any:
    """YAML-safe copy: paths and datetimes as strings."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return value.isoformat() if hasattr(value, "isoformat") else str(value)
