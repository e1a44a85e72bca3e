"""``frontdesk serve`` settings: file, then environment, then flags; clear errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from frontdesk.server.config import ConfigError, load_serve_config
from frontdesk.speech.turns import EndpointConfig


def test_file_then_environment_then_flags(tmp_path: Path) -> None:
    path = tmp_path / "frontdesk.yaml"
    path.write_text(
        "host: 0.0.0.0\nport: 8080\npublic_url: https://file.example.com\n"
        "database_url: sqlite:///file.db\n"
    )
    env = {"FRONTDESK_PUBLIC_URL": "https://env.example.com", "TWILIO_AUTH_TOKEN": "secret"}
    config = load_serve_config(path, env=env, overrides={"port": 9000, "host": None})
    assert config.host == "0.0.0.0"  # from the file (the flag was not given)
    assert config.port == 9000  # the flag beats the file
    assert config.public_url == "https://env.example.com"  # the environment beats the file
    assert config.database_url == "sqlite:///file.db"
    assert config.twilio_auth_token == "secret"


def test_defaults_without_a_file() -> None:
    config = load_serve_config(env={})
    assert (config.host, config.port, config.twilio_auth_token) == ("127.0.0.1", 8000, None)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("port: [1, 2\n", "not valid YAML"),
        ("- just\n- a list\n", "must be a mapping"),
        ("prot: 8080\n", "prot"),
        ("port: 99999\n", "port"),
    ],
)
def test_bad_settings_say_what_is_wrong(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "frontdesk.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_serve_config(path, env={})


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nowhere\.yaml"):
        load_serve_config(tmp_path / "nowhere.yaml", env={})


def test_serve_refuses_a_bad_config_before_loading_anything(tmp_path: Path) -> None:
    path = tmp_path / "frontdesk.yaml"
    path.write_text("prot: 8080\n")
    done = subprocess.run(
        [sys.executable, "-m", "frontdesk", "serve", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "prot" in done.stderr


def test_tuning_and_clock_reach_the_agent(tmp_path: Path) -> None:
    path = tmp_path / "frontdesk.yaml"
    path.write_text(
        "endpointing: {complete_s: 0.1, incomplete_s: 0.1}\nbarge_in: false\n"
        "fixed_now: 2026-11-23T09:30:00-05:00\n"
    )
    options = load_serve_config(path, env={}).agent_options()
    assert options.endpoint is not None and options.call is not None and options.now is not None
    assert (options.endpoint.complete_s, options.endpoint.incomplete_s) == (0.1, 0.1)
    assert options.endpoint.number_s == EndpointConfig().number_s  # untouched: the default
    assert options.call.barge_in is False
    assert options.now().isoformat() == "2026-11-23T09:30:00-05:00"
    defaults = load_serve_config(env={}).agent_options()
    assert defaults.endpoint == EndpointConfig() and defaults.now is None


def test_a_clock_without_an_offset_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "frontdesk.yaml"
    path.write_text("fixed_now: 2026-11-23T09:30:00\n")
    with pytest.raises(ConfigError, match="UTC offset"):
        load_serve_config(path, env={})
