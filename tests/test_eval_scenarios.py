"""Scenario files: the default battery, and every kind of mistake a battery author can make
named before any call is placed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from frontdesk.backend_settings import BackendSettings
from frontdesk.evals.backends import CalDAVSettings
from frontdesk.evals.battery import Target
from frontdesk.evals.runner import plan_target
from frontdesk.evals.scenario import (
    CHECKS,
    ScenarioError,
    default_battery,
    load_battery,
    load_scenario,
)
from frontdesk.evals.scripted_caller import CALLER_VOICED, CallerLine, ScriptedCaller
from frontdesk.speech.tts.command import FliteVoice

MINIMAL = {
    "name": "hours",
    "persona": "Asks the hours.",
    "checks": ["latency"],
    "lines": [{"say": "What are your hours?"}],
    "expect": {"outcome": "answered"},
}


def write(folder: Path, name: str, data: object) -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


def test_the_default_battery_covers_the_six_checks_and_the_outcomes() -> None:
    battery = load_battery()
    assert len(battery) >= 12
    assert {c for s in battery for c in s.checks} == set(CHECKS)
    assert {s.expect.outcome for s in battery} == {"booked", "escalated", "nurture", "answered"}
    names = {s.name for s in battery}
    assert {"booking-happy-path", "reschedule", "not-interested"} <= names
    noise = [s.noise for s in battery if s.noise is not None]
    assert {n.kind for n in noise} == {"pink", "babble", "car"}
    assert {n.snr_db for n in noise} == {10, 5}
    assert len({s.voice for s in battery}) >= 4  # several caller voices, none the agent's
    assert any(line.dtmf for s in battery for line in s.lines)


def test_a_scenario_reads_its_lines_timing_and_expectations(tmp_path: Path) -> None:
    data = {
        "name": "interrupt-then-book",
        "persona": "Cuts in.",
        "voice": "awb",
        "checks": ["interrupt", "pause", "noise", "tools"],
        "noise": {"kind": "babble", "snr_db": 10, "seed": 3},
        "lines": [
            {"say": "What are your hours?"},
            {"say": "Sorry, a cleaning.", "barge_in_ms": 900},
            {"say": "On <pause 1500> Thursday afternoon.", "delay_ms": 250},
            {"dtmf": "0"},
            {"hang_up": True},
        ],
        "expect": {
            "outcome": "booked",
            "contact_name": "Ana Silva",
            "booking": {"weekday": "Thursday", "part_of_day": "afternoon", "service": "cleaning"},
        },
    }
    scenario = load_scenario(write(tmp_path, "s.yaml", data))
    lines = scenario.caller_lines()
    assert [line.barge_in_ms for line in lines] == [None, 900, None, None, None]
    assert lines[2].text == "On <pause 1500> Thursday afternoon." and lines[2].delay_ms == 250
    assert lines[3].dtmf == "0" and lines[4].hang_up
    assert scenario.expect.booking is not None and scenario.expect.booking.weekday == "Thursday"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"checks": ["speed"]}, "checks.0"),
        ({"checks": ["interrupt"]}, "check 'interrupt' needs a line with barge_in_ms"),
        ({"checks": ["pause"]}, "check 'pause' needs a <pause MS>"),
        ({"checks": ["noise"]}, "check 'noise' needs noise"),
        ({"checks": ["latency", "latency"]}, "a check is listed twice"),
        ({"checks": []}, "checks"),
        ({"voice": "joe"}, "voice"),
        ({"name": "Has Spaces"}, "name"),
        ({"lines": []}, "lines"),
        ({"lines": [{"say": ""}]}, "a line needs say, dtmf or hang_up"),
        ({"lines": [{"say": "On <pause> Thursday"}]}, "'<pause>' is not a pause"),
        ({"lines": [{"say": "Hi", "barge_in_ms": -5}]}, "barge_in_ms"),
        ({"lines": [{"dtmf": "0x"}]}, "dtmf"),
        ({"lines": [{"sey": "typo"}]}, "sey"),
        ({"noise": {"kind": "rain", "snr_db": 10}}, "noise.kind"),
        ({"expect": {"outcome": "sold"}}, "expect.outcome"),
        ({"expect": {"outcome": "booked", "booking": {"weekday": "someday"}}}, "weekday"),
        (
            {"expect": {"outcome": "answered", "booking": {"weekday": "monday"}}},
            "booking facts need outcome: booked",
        ),
    ],
)
def test_mistakes_are_named_with_the_file(
    tmp_path: Path, change: dict[str, object], message: str
) -> None:
    path = write(tmp_path, "bad.yaml", {**MINIMAL, **change})
    with pytest.raises(ScenarioError) as error:
        load_scenario(path)
    assert str(path) in str(error.value)
    assert message in str(error.value)


def test_unreadable_files_and_batteries(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="not valid YAML"):
        load_scenario(write(tmp_path, "a.yaml", "name: [unclosed"))
    with pytest.raises(ScenarioError, match="a mapping of fields"):
        load_scenario(write(tmp_path, "b.yaml", "- a list"))
    with pytest.raises(ScenarioError, match="cannot read"):
        load_scenario(tmp_path / "missing.yaml")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ScenarioError, match="no scenario files"):
        load_battery(empty)
    twins = tmp_path / "twins"
    twins.mkdir()
    write(twins, "1.yaml", MINIMAL)
    write(twins, "2.yaml", MINIMAL)
    with pytest.raises(ScenarioError, match="two scenarios share a name"):
        load_battery(twins)


def test_only_picks_scenarios_by_name_in_battery_order() -> None:
    picked = load_battery(only=["press-zero", "booking-happy-path"])
    assert [s.name for s in picked] == ["booking-happy-path", "press-zero"]
    with pytest.raises(ScenarioError, match="no scenario named nonesuch"):
        load_battery(only=["nonesuch"])
    assert default_battery().is_dir()


async def test_a_pause_is_the_silence_between_the_voiced_words() -> None:
    """flite pads every piece with 60-320 ms of silence; at a pause that padding is cut, so
    ``<pause 1800>`` is 1.8 s from the last voiced sample to the next, not 2.1 s."""
    caller = ScriptedCaller([CallerLine("My name is <pause 1800> Robert Miller.")])
    await caller.prepare(FliteVoice("awb"))
    voiced = np.flatnonzero(np.abs(caller.speech().astype(np.int32)) > CALLER_VOICED)
    assert np.diff(voiced).max() / 16000 == pytest.approx(1.8, abs=0.001)


def test_a_target_is_the_server_whatever_url_form_it_is_given() -> None:
    assert Target("ws://127.0.0.1:8000/twilio/media").http_url == "http://127.0.0.1:8000"
    assert Target("wss://desk.example.com").http_url == "https://desk.example.com"
    assert Target("http://127.0.0.1:8000/").http_url == "http://127.0.0.1:8000"
    with pytest.raises(ValueError, match="not a server URL"):
        _ = Target("ftp://desk.example.com").http_url


def test_eval_calls_one_target_over_one_transport() -> None:
    sql, dav = BackendSettings(), CalDAVSettings("http://dav.test/", "desk", "pw")
    caldav_agent = BackendSettings(caldav={"url": "http://agent-dav.test/"})
    running = Target(None, database_url="sqlite:///agent.db", caldav=dav)
    sip, _ = plan_target(running, "sip:frontdesk@192.0.2.7:5060", sql)
    assert sip is not None and sip.name == "sip:frontdesk@192.0.2.7:5060"
    assert sip.caldav == dav and sip.database_url == "sqlite:///agent.db"
    with pytest.raises(ValueError, match="give one of them"):
        plan_target(Target("http://127.0.0.1:8000"), "local", sql)
    with pytest.raises(ValueError):
        plan_target(Target(None), "frontdesk@nowhere", sql)  # not a SIP URI
    # The local agent: the battery reads back from the calendar the agent books on.
    assert plan_target(Target(None), "local", sql) == (None, None)
    assert plan_target(Target(None, caldav=dav), None, sql) == (None, dav)
    _, own = plan_target(Target(None), "local", caldav_agent)
    assert own is not None and own.url == "http://agent-dav.test/"
    with pytest.raises(ValueError, match="--agent-config"):
        plan_target(Target(None, caldav=dav), None, caldav_agent)
