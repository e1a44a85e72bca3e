"""Choosing the brain, the calendar and the CRM destinations: a settings file, then the
environment, then flags, down to the AgentOptions that agent.py builds providers from."""

from __future__ import annotations

from pathlib import Path

import pytest

from frontdesk.agent import Agent, AgentOptions, check_options
from frontdesk.backend_settings import backend_settings_from_env, overlay_environment
from frontdesk.server.config import ConfigError, load_serve_config

SETTINGS = """
brain: llm
llm: {base_url: "https://llm.example/v1", model: small, api_key: from-the-file}
caldav: {url: "https://dav.example/cal/", username: desk}
crm:
  webhook: {url: "https://hooks.example/frontdesk", secret: "0123456789abcdef-file"}
"""


def test_file_then_environment_then_flags(tmp_path: Path) -> None:
    path = tmp_path / "frontdesk.yaml"
    path.write_text(SETTINGS)
    env = {
        "FRONTDESK_LLM_API_KEY": "from-the-environment",
        "FRONTDESK_CALDAV_PASSWORD": "dav-secret",
        "FRONTDESK_HUBSPOT_TOKEN": "pat-123",
    }
    config = load_serve_config(path, env=env)
    options = config.agent_options()
    assert options.brain == "llm"
    assert options.llm is not None
    assert (options.llm.base_url, options.llm.model) == ("https://llm.example/v1", "small")
    assert options.llm.api_key == "from-the-environment"
    assert options.calendar == "caldav"  # a CalDAV server is set: it is the calendar
    assert options.caldav is not None
    assert (options.caldav.username, options.caldav.password) == ("desk", "dav-secret")
    assert options.crm_sync is not None
    assert options.crm_sync.webhook is not None and options.crm_sync.hubspot is not None
    assert options.crm_sync.gohighlevel is None

    flagged = load_serve_config(path, env=env, overrides={"brain": "flow"}).agent_options()
    assert flagged.brain == "flow"


def test_the_defaults_are_the_embedded_ones() -> None:
    options = load_serve_config(env={}).agent_options()
    assert (options.brain, options.calendar) == ("flow", "sql")
    assert options.llm is None and options.caldav is None and options.crm_sync is None


def test_an_llm_without_a_base_url_is_the_local_model() -> None:
    settings = backend_settings_from_env({"FRONTDESK_BRAIN": "llm"})
    fields = settings.agent_fields()
    assert fields["brain"] == "llm" and fields["llm"] is None
    assert fields["local_model"] == "qwen2.5-coder-1.5b"
    smaller = backend_settings_from_env({"FRONTDESK_LLM_LOCAL_MODEL": "qwen2.5-coder-0.5b"})
    assert smaller.agent_fields()["local_model"] == "qwen2.5-coder-0.5b"
    flagged = backend_settings_from_env({}, brain="llm", calendar=None)
    assert flagged.brain == "llm"


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({"FRONTDESK_BRAIN": "gpt"}, "brain"),
        ({"FRONTDESK_CALENDAR": "caldav"}, "no CalDAV server"),
        ({"FRONTDESK_LLM_BASE_URL": "llm.example/v1"}, "must start with http"),
        ({"FRONTDESK_LLM_LOCAL_MODEL": "llama-70b"}, "unknown local model 'llama-70b'"),
        ({"FRONTDESK_GHL_TOKEN": "pit-1"}, "crm.gohighlevel.location_id: Field required"),
        ({"FRONTDESK_WEBHOOK_URL": "https://h.example", "FRONTDESK_WEBHOOK_SECRET": "x"}, "16"),
    ],
)
def test_bad_settings_are_named_before_anything_loads(env: dict[str, str], problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        load_serve_config(env=env)


def test_a_section_that_is_not_a_mapping_is_reported_not_replaced(tmp_path: Path) -> None:
    path = tmp_path / "frontdesk.yaml"
    path.write_text("llm: just-a-string\n")
    assert overlay_environment({"llm": "x"}, {"FRONTDESK_LLM_MODEL": "m"}) == {"llm": "x"}
    with pytest.raises(ConfigError, match="llm"):
        load_serve_config(path, env={"FRONTDESK_LLM_MODEL": "m"})


async def test_the_agent_refuses_an_unknown_choice_before_opening_anything(
    tmp_path: Path,
) -> None:
    with pytest.raises(ValueError, match="unknown brain 'gpt'"):
        await Agent.open(AgentOptions(brain="gpt", database_url=f"sqlite:///{tmp_path}/x.db"))
    with pytest.raises(ValueError, match="unknown calendar"):
        check_options(AgentOptions(calendar="google"))
    with pytest.raises(ValueError, match="caldav calendar needs"):
        check_options(AgentOptions(calendar="caldav"))
    with pytest.raises(ValueError, match="unknown local model 'llama-70b'"):
        check_options(AgentOptions(brain="llm", local_model="llama-70b"))
    assert not (tmp_path / "x.db").exists()
