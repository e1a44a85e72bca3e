"""The `frontdesk` command: demo, serve, call, eval, transcribe, say."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import numpy as np
import typer
from rich.console import Console

from frontdesk.audio import AudioFormatError, AudioFrame
from frontdesk.audio.resample import resample
from frontdesk.audio.wav import read_wav, write_wav

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
console = Console()
err = Console(stderr=True)

# Nothing may reach a model hub at run time: every model ships inside a package.
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _fail(message: str) -> None:
    # soft_wrap: one error is one line, however narrow the terminal (or a pipe's 80 columns)
    err.print(f"[red]error:[/red] {message}", soft_wrap=True)
    raise typer.Exit(2)


@app.command()
def transcribe(
    wav: Path = typer.Argument(..., exists=True, dir_okay=False, help="WAV file, any rate"),
    stt: str = typer.Option("whisper", help="recognizer: whisper or pocketsphinx"),
) -> None:
    """Print the transcript of a WAV file (8 kHz phone audio included)."""
    from frontdesk.speech.stt import load_stt

    try:
        pcm, rate = read_wav(wav)
    except AudioFormatError as exc:
        _fail(f"{wav}: {exc}")
    if pcm.ndim > 1:
        pcm = pcm.mean(axis=1).astype(np.int16)  # stereo call recordings: both parties
    if rate != 16000:
        try:
            pcm = resample(pcm, rate, 16000)
        except AudioFormatError as exc:
            _fail(f"{wav}: {exc}")

    async def run() -> str:
        recognizer = load_stt(stt)
        try:
            return (await recognizer.transcribe([AudioFrame(pcm, 16000)])).text
        finally:
            close = getattr(recognizer, "aclose", None)
            if close is not None:
                await close()

    console.print(asyncio.run(run()))


@app.command()
def say(
    text: str = typer.Argument(..., help="what the agent should say"),
    output: Path = typer.Option(..., "-o", "--output", help="WAV file to write"),
    voice: str = typer.Option("piper", help="voice: piper (default), espeak or flite"),
    rate: int = typer.Option(0, help="output sample rate (0: the voice's own)"),
) -> None:
    """Write the agent's voice saying TEXT to a WAV file."""
    from frontdesk.speech.tts import TTSError, load_tts

    async def run() -> tuple[np.ndarray, int]:
        tts = load_tts(voice)
        try:
            frames = [frame async for frame in tts.synthesize(text)]
        finally:
            await tts.aclose()
        if not frames:
            _fail("nothing to say: the text has no speakable words")
        return np.concatenate([f.pcm for f in frames]), frames[0].sample_rate

    try:
        pcm, native = asyncio.run(run())
        if rate and rate != native:
            pcm = resample(pcm, native, rate)
    except (TTSError, AudioFormatError, ValueError) as exc:
        _fail(str(exc))
    write_wav(output, pcm, rate or native)
    console.print(f"wrote {output} ({len(pcm) / (rate or native):.2f} s, {rate or native} Hz)")


@app.command()
def demo(
    as_json: bool = typer.Option(False, "--json", help="print the call record as JSON only"),
    profile: Path | None = typer.Option(None, help="agent profile YAML (default: built in)"),
    recording_dir: Path = typer.Option(Path("var/recordings"), help="where the WAV goes"),
    brain: str | None = typer.Option(
        None, help="flow (default) or llm: FRONTDESK_LLM_BASE_URL, or the packaged local model"
    ),
) -> None:
    """A full call on the embedded default: greeting, questions, a pause, a barge-in, a booking.

    The brain, calendar and CRM destinations come from the environment (FRONTDESK_BRAIN,
    FRONTDESK_LLM_*, FRONTDESK_CALDAV_*, FRONTDESK_GHL_*, ...; see frontdesk.backend_settings).
    """
    import json
    import logging

    from pydantic import ValidationError

    from frontdesk.agent import AgentOptions, check_options
    from frontdesk.backend_settings import backend_settings_from_env
    from frontdesk.brain.local_llm import LocalModelError
    from frontdesk.demo import run_demo
    from frontdesk.report import LiveTranscript, print_call_summary

    try:
        backends = backend_settings_from_env(os.environ, brain=brain).agent_fields()
    except (ValidationError, ValueError) as exc:
        _fail(f"bad settings: {exc}")
    try:
        check_options(AgentOptions(profile=profile, **backends))  # before loading anything
    except (ValueError, LocalModelError) as exc:
        _fail(str(exc))
    logging.basicConfig(level=logging.WARNING)
    live = None if as_json else LiveTranscript(console)
    if live is not None:
        console.print("[bold]frontdesk demo[/bold]: loading models and calling the agent...")
    try:
        result, database_url = asyncio.run(
            run_demo(
                AgentOptions(profile=profile, **backends),
                observer=live,
                recording_dir=recording_dir,
            )
        )
    except LocalModelError as exc:  # e.g. the local model's packages are not installed
        _fail(str(exc))
    if as_json:
        print(json.dumps(result.record, indent=2, default=str))
        return
    print_call_summary(console, result.record, result.call, database_url)


@app.command()
def serve(
    config: Path | None = typer.Option(None, help="settings file (YAML); see below"),
    host: str | None = typer.Option(None, help="interface to listen on [127.0.0.1]"),
    port: int | None = typer.Option(None, help="port to listen on [8000]"),
    profile: Path | None = typer.Option(None, help="agent profile YAML (default: built in)"),
    sip: str | None = typer.Option(
        None, "--sip", help="also answer SIP calls (UDP) on HOST:PORT, e.g. 0.0.0.0:5060"
    ),
    brain: str | None = typer.Option(None, help="flow or llm [flow; FRONTDESK_BRAIN]"),
) -> None:
    """Answer phone calls from Twilio (voice webhook, status callback, Media Streams) and,
    with --sip, from a SIP trunk or PBX.

    Settings come from the --config file, then the environment (TWILIO_AUTH_TOKEN for
    webhook signatures, FRONTDESK_PUBLIC_URL for the https URL Twilio reaches this server
    at, FRONTDESK_DATABASE_URL, FRONTDESK_SIP_REGISTRAR / _USERNAME / _PASSWORD for the
    trunk, ...), then these flags.
    """
    import logging

    import uvicorn

    from frontdesk.agent import Agent, check_options
    from frontdesk.brain.local_llm import LocalModelError
    from frontdesk.server import ServerSettings, create_app
    from frontdesk.server.config import ConfigError, load_serve_config

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        settings = load_serve_config(
            config,
            overrides={
                "host": host,
                "port": port,
                "profile": profile,
                "sip_listen": sip,
                "brain": brain,
            },
        )
    except ConfigError as exc:
        _fail(str(exc))
    try:
        # Before the server starts: a local model that is not installed is one clear line,
        # not a traceback under "Application startup failed".
        check_options(settings.agent_options())
    except (ValueError, LocalModelError) as exc:
        _fail(str(exc))
    if settings.twilio_auth_token is None:
        err.print(
            "[bold red]WARNING: TWILIO_AUTH_TOKEN is not set. Webhooks are NOT "
            "authenticated: anyone who can reach this server can start calls.[/bold red]"
        )

    async def open_agent() -> Agent:
        return await Agent.open(settings.agent_options())

    server = ServerSettings(
        auth_token=settings.twilio_auth_token,
        public_url=settings.public_url,
        account_sid=settings.twilio_account_sid,
        api_key=settings.twilio_api_key,
        api_secret=settings.twilio_api_secret,
        transfer_caller_id=settings.transfer_caller_id,
    )
    console.print(
        f"frontdesk: Twilio voice webhook at http://{settings.host}:{settings.port}/twilio/voice"
    )
    services = []
    sip_address = settings.sip_address()
    if sip_address is not None:
        from frontdesk.server.sip_service import sip_service

        services.append(sip_service(*sip_address, settings.sip))
        trunk = settings.sip.registrar or "no registrar: calls straight to this address"
        console.print(f"frontdesk: SIP on udp {sip_address[0]}:{sip_address[1]} ({trunk})")
    app_ = create_app(open_agent, server, services=services)
    uvicorn.run(app_, host=settings.host, port=settings.port)


@app.command("call")
def call_out(
    target: str = typer.Argument(..., help="sip:user@host[:port], or a number for the trunk"),
    config: Path | None = typer.Option(None, help="settings file (YAML), as for serve"),
    profile: Path | None = typer.Option(None, help="agent profile YAML (default: built in)"),
    sip: str = typer.Option(
        "127.0.0.1:0", "--sip", help="HOST:PORT to call from (port 0: any free port)"
    ),
    as_json: bool = typer.Option(False, "--json", help="print the call record as JSON only"),
    brain: str | None = typer.Option(None, help="flow or llm [flow; FRONTDESK_BRAIN]"),
) -> None:
    """Place one outbound SIP call: the agent talks to whoever answers.

    The trunk (outbound proxy, digest credentials, caller ID) comes from the config file's
    ``sip`` section and FRONTDESK_SIP_* variables. Exits 1 when the call is not answered.
    """
    import json
    import logging

    from frontdesk.agent import Agent
    from frontdesk.call.contracts import CallResult
    from frontdesk.report import LiveTranscript, print_call_summary
    from frontdesk.server.config import ConfigError, load_serve_config
    from frontdesk.transports.sip import SipCallFailed, place_call
    from frontdesk.transports.sip.settings import parse_listen

    logging.basicConfig(level=logging.WARNING)
    try:
        settings = load_serve_config(config, overrides={"profile": profile, "brain": brain})
        host, port = parse_listen(sip)
        uri = target if target.startswith(("sip:", "sips:")) else settings.sip.number_uri(target)
    except (ConfigError, ValueError) as exc:
        _fail(str(exc))
    live = None if as_json else LiveTranscript(console)

    async def run() -> tuple[dict, CallResult, str]:
        agent = await Agent.open(settings.agent_options())
        try:
            if live is not None:
                console.print(f"calling {uri} ...")
            finished = await place_call(
                agent, uri, settings=settings.sip, host=host, port=port, observer=live
            )
            if finished.result is None:
                raise RuntimeError(f"the call failed: {finished.error}")
            record = await agent.store.call_record(finished.result.call_id)
            return record, finished.result, agent.db.url
        finally:
            await agent.aclose()

    try:
        record, result, database_url = asyncio.run(run())
    except SipCallFailed as exc:
        err.print(f"[red]not answered:[/red] {exc}")
        raise typer.Exit(1) from exc
    except (OSError, RuntimeError, ValueError) as exc:
        _fail(str(exc))
    if as_json:
        print(json.dumps(record, indent=2, default=str))
        return
    print_call_summary(console, record, result, database_url)


@app.command("eval")
def evaluate(
    url: str | None = typer.Option(
        None, help="a running agent (http(s):// or ws(s)://host:port); none: start one here"
    ),
    battery: Path | None = typer.Option(None, help="folder of scenario YAML files"),
    only: list[str] | None = typer.Option(None, help="run only this scenario (repeatable)"),
    auth_token: str | None = typer.Option(
        None, envvar="TWILIO_AUTH_TOKEN", help="the agent's Twilio auth token (signs webhooks)"
    ),
    database_url: str | None = typer.Option(
        None, help="the agent's database, to verify bookings and outcomes (with --url/--sip)"
    ),
    sip: str | None = typer.Option(
        None,
        help="call over SIP: a running agent's URI (sip:agent@HOST:PORT), or 'local' for the "
        "local agent with a SIP listener",
    ),
    caldav_url: str | None = typer.Option(
        None, help="the CalDAV server the agent books on: bookings are read back from it"
    ),
    caldav_user: str | None = typer.Option(None, help="CalDAV user"),
    caldav_password: str | None = typer.Option(
        None, envvar="FRONTDESK_CALDAV_PASSWORD", help="CalDAV password"
    ),
    caldav_calendar: str | None = typer.Option(
        None, help="the calendar's URL, name or id (default: the user's first)"
    ),
    profile: Path | None = typer.Option(None, help="the agent's profile (its timezone)"),
    agent_config: Path | None = typer.Option(
        None, help="frontdesk serve settings (YAML) for the local agent, e.g. barge_in: false"
    ),
    fixed_now: str | None = typer.Option(
        None, help="pin the local agent's clock, e.g. 2026-11-23T09:30:00-05:00"
    ),
    interrupt_limit_ms: int = typer.Option(300, help="pass mark: talked over -> silent"),
    turn_limit_ms: int = typer.Option(1000, help="pass mark: caller's last word -> agent"),
    workdir: Path | None = typer.Option(
        None, help="where recordings go (default: a new temporary folder)"
    ),
    json_path: Path | None = typer.Option(None, "--json", help="write results as JSON"),
    html_path: Path | None = typer.Option(None, "--html", help="write a self-contained report"),
) -> None:
    """Call the agent with the evaluation battery and score the six production checks.

    Exits 1 when any check fails (2 when the battery cannot run), so it can gate a
    deployment.
    """
    import tempfile

    import yaml

    from frontdesk.brain.profile import load_profile
    from frontdesk.evals.backends import CalDAVSettings
    from frontdesk.evals.battery import BatteryError, Target
    from frontdesk.evals.checks import Limits
    from frontdesk.evals.html_report import write_html
    from frontdesk.evals.runner import EvalRun, plan_target
    from frontdesk.evals.runner import evaluate as run_eval
    from frontdesk.evals.scenario import ScenarioError, load_battery
    from frontdesk.evals.scorecard import ScenarioScore, print_scorecard
    from frontdesk.server.config import ConfigError, load_serve_config

    try:
        scenarios = load_battery(battery, only or None)
        settings = yaml.safe_load(agent_config.read_text(encoding="utf-8")) if agent_config else {}
        overrides = {"profile": profile, "fixed_now": fixed_now}
        settings = {**(settings or {}), **{k: v for k, v in overrides.items() if v is not None}}
        agent = load_serve_config(env={}, overrides=settings)  # named errors before any call
        caldav = None
        if caldav_url is not None:
            caldav = CalDAVSettings(caldav_url, caldav_user, caldav_password, caldav_calendar)
        target, local_caldav = plan_target(
            Target(url, auth_token, database_url, caldav=caldav), sip, agent
        )
    except (ScenarioError, ConfigError, OSError, yaml.YAMLError, ValueError) as exc:
        _fail(str(exc))
    workdir = workdir or Path(tempfile.mkdtemp(prefix="frontdesk-eval-"))
    request = EvalRun(
        scenarios,
        workdir,
        load_profile(agent.profile).timezone,
        target=target,
        agent_settings=settings,
        limits=Limits(interrupt_limit_ms / 1000, turn_limit_ms / 1000),
        sip=sip == "local",
        caldav=local_caldav,
    )
    console.print(f"{len(scenarios)} scenarios; recordings in {workdir}")

    def progress(result: ScenarioScore) -> None:
        verdict = "[green]pass[/green]" if result.passed else "[red]FAIL[/red]"
        console.print(f"  {result.name}: {result.outcome or '?'} {verdict}")

    try:
        card = asyncio.run(run_eval(request, on_scenario=progress))
    except (BatteryError, RuntimeError, ValueError) as exc:
        _fail(str(exc))
    print_scorecard(card, console)
    if json_path is not None:
        card.write_json(json_path)
        console.print(f"JSON: {json_path}")
    if html_path is not None:
        write_html(card, html_path)
        console.print(f"HTML report: {html_path}")
    raise typer.Exit(0 if card.passed else 1)


def main() -> None:
    """Entry point for ``python -m frontdesk``."""
    app()
