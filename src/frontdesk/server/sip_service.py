"""SIP beside the web server: ``frontdesk serve --sip HOST:PORT``.

The listener shares the server's agent (one set of models, one database) and lives as
long as the app: it binds and registers with the trunk once the agent is open, and hangs
up, unregisters and closes before the agent does. Code running in the server places
outbound SIP calls through it (``app.state.sip.place_call(uri)``), so they leave from the
registered port.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI

from frontdesk.agent import Agent
from frontdesk.server.app import Service
from frontdesk.transports.sip import SipListener, SipSettings

log = logging.getLogger(__name__)


def sip_service(host: str, port: int, settings: SipSettings) -> Service:
    """A :data:`~frontdesk.server.app.Service` answering SIP on ``host:port``."""

    @contextlib.asynccontextmanager
    async def run(agent: Agent, app: FastAPI) -> AsyncIterator[SipListener]:
        listener = SipListener(agent, host, port, settings)
        try:
            await listener.start()
        except OSError as exc:
            raise RuntimeError(f"cannot answer SIP on udp {host}:{port}: {exc.strerror}") from exc
        app.state.sip = listener
        log.info("frontdesk: answering SIP on udp %s:%d", *listener.address)
        try:
            yield listener
        finally:
            app.state.sip = None
            await listener.stop()

    return run
