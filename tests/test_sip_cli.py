"""The SIP side of the ``frontdesk`` command, run as a user runs it, against sipp on
127.0.0.1: ``frontdesk serve --sip`` registers with a trunk (sipp as a digest-challenging
registrar), answers a sipp caller, and removes its binding when stopped; ``frontdesk call
sip:...`` places a call that the trunk (sipp) challenges with 407 before the callee answers.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import signal
import socket
import sys
import urllib.request
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select

from frontdesk.store.db import Database
from frontdesk.store.models import Call as CallRow
from frontdesk.store.records import CallStore
from frontdesk.transports.sip.pcap import write_rtp_pcap
from sip_peers import HOST, Sipp, free_udp_port, run_sipp, scenario, speak

pytestmark = pytest.mark.asyncio(loop_scope="session")

USERNAME = "frontdesk-practice"
PASSWORD = "correct-horse-trunk"
FRONTDESK = str(Path(sys.executable).with_name("frontdesk"))


@pytest.fixture(scope="module")
def cli_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The CLI processes' working directory: the first warms its phrase cache
    (var/phrase-cache), the second reuses it."""
    return tmp_path_factory.mktemp("cli-home")


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", **extra}


def _free_tcp_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


async def _wait_healthy(url: str, proc: asyncio.subprocess.Process, log: Path) -> None:
    """Poll ``url`` until it answers (the server loads its models first)."""
    for _ in range(600):
        if proc.returncode is not None:
            pytest.fail(f"frontdesk serve exited {proc.returncode}:\n{_tail(log)}")
        try:
            await asyncio.to_thread(urllib.request.urlopen, url, timeout=1)
            return
        except OSError:
            await asyncio.sleep(0.2)
    pytest.fail(f"frontdesk serve did not come up:\n{_tail(log)}")


async def _registered(url: str) -> dict:
    """/healthz once it reports the trunk registration (a moment after start-up)."""
    for _ in range(50):
        body = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=1).read())
        health = json.loads(body)
        if health.get("sip", {}).get("registered"):
            break
        await asyncio.sleep(0.1)
    return health


def _tail(path: Path) -> str:
    return path.read_text(errors="replace")[-3000:]


def _records(database_url: str) -> list[dict]:
    db = Database(database_url)
    try:
        with db.session() as session:
            ids = [row.id for row in session.scalars(select(CallRow))]
        return [asyncio.run(CallStore(db).call_record(i)) for i in ids]
    finally:
        db.dispose()


async def test_serve_with_sip_registers_answers_and_unregisters(
    cli_home: Path, tmp_path: Path
) -> None:
    registrar = Sipp(
        scenario(
            "registrar.xml",
            tmp_path,
            username=USERNAME,
            password=PASSWORD,
            unregister_within_ms=150_000,
        ),
        tmp_path,
        timeout_s=180,
    )
    await registrar.start()
    http_port, sip_port = _free_tcp_port(), free_udp_port()
    database_url = f"sqlite:///{tmp_path / 'serve.db'}"
    config = tmp_path / "frontdesk.yaml"
    trunk = {"registrar": f"sip:{HOST}:{registrar.port}", "username": USERNAME}
    settings = {"port": http_port, "database_url": database_url, "sip": trunk}
    config.write_text(yaml.safe_dump(settings))
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        # The password comes from the environment, layered over the file's sip section.
        proc = await asyncio.create_subprocess_exec(
            *[FRONTDESK, "serve", "--config", str(config), "--sip", f"{HOST}:{sip_port}"],
            cwd=cli_home,
            env=_env(FRONTDESK_SIP_PASSWORD=PASSWORD),
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
        )
    try:
        await _wait_healthy(f"http://{HOST}:{http_port}/healthz", proc, log)
        health = await _registered(f"http://{HOST}:{http_port}/healthz")
        assert health["sip"] == {"live_calls": 0, "registered": True}, health
        question = await speak("Hi, what are your opening hours?")
        seconds = write_rtp_pcap(tmp_path / "question.pcap", question)
        script = scenario(
            "caller_hangs_up.xml",
            tmp_path,
            greeting_ms=5500,
            speech_pcap=tmp_path / "question.pcap",
            speech_ms=int(seconds * 1000),
            reply_ms=5000,
        )
        caller = await run_sipp(script, (HOST, sip_port), tmp_path, timeout_s=40)
        assert caller.returncode == 0, caller.explain()
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)  # as Ctrl-C: hang up, unregister, close
        async with asyncio.timeout(30):
            await proc.wait()
        await registrar.stop_after(10)
    registered = await registrar.wait()
    output = log.read_text()
    assert f"SIP on udp {HOST}:{sip_port}" in output, output[-3000:]
    # Registered with the digest answer, then unregistered (Expires: 0), also answered.
    assert registered.returncode == 0, registered.explain() + output[-3000:]
    [record] = await asyncio.to_thread(_records, database_url)
    assert record["transport"] == "sip" and record["direction"] == "inbound"
    assert record["caller_number"] == "+15550123"
    assert record["outcome"] == "dropped" and record["ended_at"] is not None
    callers = " ".join(t["text"] for t in record["turns"] if t["speaker"] == "caller").lower()
    assert "hours" in callers, record["turns"]


async def test_call_command_places_a_call_through_a_digest_trunk(
    cli_home: Path, tmp_path: Path
) -> None:
    trunk = Sipp(
        scenario("callee_digest.xml", tmp_path, username=USERNAME, listen_ms=7000),
        tmp_path,
        timeout_s=120,
    )
    await trunk.start()
    config = tmp_path / "frontdesk.yaml"
    database_url = f"sqlite:///{tmp_path / 'call.db'}"
    config.write_text(yaml.safe_dump({"database_url": database_url, "sip": {"username": USERNAME}}))
    try:
        proc = await asyncio.create_subprocess_exec(
            *[FRONTDESK, "call", f"sip:+15550199@{HOST}:{trunk.port}"],
            *["--config", str(config), "--json"],
            cwd=cli_home,
            env=_env(FRONTDESK_SIP_PASSWORD=PASSWORD),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        async with asyncio.timeout(150):
            out, err = await proc.communicate()
    finally:
        await trunk.stop_after(5)
    answered = await trunk.wait()
    assert proc.returncode == 0, err.decode()[-3000:]
    assert answered.returncode == 0, answered.explain()
    # The trunk's check, done here by hand (RFC 2617, qop=auth) from what sipp received.
    [line] = [v for v in answered.messages.splitlines() if v.startswith("Proxy-Authorization:")]
    fields = dict(re.findall(r'(\w+)="?([^",]*)"?', line.split(" ", 2)[2]))
    assert fields["username"] == USERNAME and fields["nonce"] == "7c2e0b4d-call"

    def md5(text: str) -> str:
        return hashlib.md5(text.encode()).hexdigest()

    ha1 = md5(f"{USERNAME}:trunk.test:{PASSWORD}")
    ha2 = md5(f"INVITE:{fields['uri']}")
    expected = md5(f"{ha1}:{fields['nonce']}:{fields['nc']}:{fields['cnonce']}:auth:{ha2}")
    assert fields["response"] == expected, line
    record = json.loads(out)
    assert record["transport"] == "sip" and record["direction"] == "outbound"
    assert record["outcome"] == "dropped"  # the callee hung up
    agents = [t["text"] for t in record["turns"] if t["speaker"] == "agent"]
    assert agents and agents[0].startswith("Thanks for calling"), record["turns"]
