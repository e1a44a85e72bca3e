"""Shared fixtures: the real engines, loaded once per test session, and a fresh agent per
test (its own SQLite file) that reuses them."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from frontdesk.agent import Agent, AgentOptions
from frontdesk.speech.stt.whisper import WhisperSTT
from frontdesk.speech.tts.piper import PiperTTS

MONDAY_MORNING = datetime(2026, 11, 23, 9, 30, tzinfo=ZoneInfo("America/New_York"))
"""A fixed "now" for calls whose dates must be predictable ("Thursday" = Nov 26)."""


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def engines(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple]:
    """Whisper, a started Piper worker and a phrase-cache directory, shared by all calls."""
    stt = WhisperSTT(interim_interval_s=0)  # as the agent runs it
    tts = PiperTTS()
    await tts.start()
    yield stt, tts, tmp_path_factory.mktemp("phrase-cache")
    await tts.aclose()
    await stt.aclose()


@pytest_asyncio.fixture(loop_scope="session")
async def agent(engines: tuple, tmp_path: Path) -> AsyncIterator[Agent]:
    """An agent on its own database, with the clock fixed to a Monday morning."""
    stt, tts, cache_dir = engines
    options = AgentOptions(
        database_url=f"sqlite:///{tmp_path / 'frontdesk.db'}",
        phrase_cache_dir=cache_dir,
        now=lambda: MONDAY_MORNING,
    )
    agent = await Agent.open(options, stt=stt, tts=tts)
    yield agent
    await agent.aclose()
