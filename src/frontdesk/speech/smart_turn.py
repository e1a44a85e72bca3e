"""Smart Turn v3.2: an audio model that scores whether a caller's turn sounds finished.

The model (Whisper-tiny encoder + classifier, ~8 MB ONNX) ships inside the ``pipecat-ai``
wheel; we load the file with onnxruntime and never import that framework. It hears the last
8 s of the turn and returns the probability that the speaker is done, from prosody as well as
words, so in principle it hears a trailing "and..." that a transcript renders as "end.".

Input format (as pipecat's own ``LocalSmartTurnAnalyzerV3``): 16 kHz mono, the last 8 s kept
or zeros prepended up to 8 s, the whole 8 s window normalized to zero mean and unit variance,
then Whisper's log-mel features (80 Slaney mels, 400-point FFT, 160 hop, 800 frames),
computed here with numpy (identical to pipecat's vendored extractor within 1e-5).
Feed it the turn so far including the short silence the VAD needed to report the pause.

One inference costs ~50 ms on one core (p90 ~100 ms on a busy 2-core box): call
:meth:`SmartTurnModel.probability` from a worker thread, never on the event loop.

Measured against our text rules on synthetic callers by ``bench/endpointing.py``: alone it is
much less accurate than the text rules, and its score rises with the trailing silence it
hears, so it is only useful, if at all, as a veto on a turn the text rules call complete.
"""

from __future__ import annotations

import functools
import importlib.util
import threading
from pathlib import Path

import numpy as np
import onnxruntime as ort

from frontdesk.audio import AudioFormatError

SAMPLE_RATE = 16000
WINDOW_S = 8
"""The model hears this many seconds: the end of a longer turn, or a shorter one left-padded."""
WINDOW_SAMPLES = WINDOW_S * SAMPLE_RATE
MODEL_FILE = "smart-turn-v3.2-cpu.onnx"
_NORM_EPS = 1e-7  # as transformers' WhisperFeatureExtractor(do_normalize=True)
N_FFT, HOP, N_MELS = 400, 160, 80


def _slaney_mel_filters(n_mels: int = N_MELS, n_fft: int = N_FFT) -> np.ndarray:
    """Whisper's (librosa's Slaney) triangular mel filterbank, shape (n_fft // 2 + 1, n_mels)."""

    def hz_to_mel(hz: np.ndarray) -> np.ndarray:
        mel = 3.0 * hz / 200.0
        log = hz >= 1000.0
        return np.where(log, 15.0 + np.log(np.maximum(hz, 1e-9) / 1000.0) * 27.0 / np.log(6.4), mel)

    def mel_to_hz(mel: np.ndarray) -> np.ndarray:
        hz = 200.0 * mel / 3.0
        return np.where(mel >= 15.0, 1000.0 * np.exp(np.log(6.4) / 27.0 * (mel - 15.0)), hz)

    edges = mel_to_hz(np.linspace(0.0, hz_to_mel(np.array(SAMPLE_RATE / 2)), n_mels + 2))
    bins = np.fft.rfftfreq(n_fft, 1.0 / SAMPLE_RATE)
    slopes = edges[np.newaxis, :] - bins[:, np.newaxis]
    rising = -slopes[:, :-2] / np.diff(edges)[:-1]
    falling = slopes[:, 2:] / np.diff(edges)[1:]
    filters = np.maximum(0.0, np.minimum(rising, falling))
    return filters * (2.0 / (edges[2:] - edges[:-2]))  # equal area per band


_MEL_FILTERS = _slaney_mel_filters().astype(np.float32)
_HANN = np.hanning(N_FFT + 1)[:-1].astype(np.float32)  # periodic, as torch.hann_window


def log_mel(window: np.ndarray) -> np.ndarray:
    """Whisper's log-mel spectrogram of float32 16 kHz audio: (80, len // 160), float32.

    Centred frames (reflect padding), |STFT|^2, mel, log10 floored at 1e-10, clamped to 8
    below the peak, scaled as (x + 4) / 4; the final STFT frame is dropped, as Whisper does.
    """
    padded = np.pad(window, N_FFT // 2, mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP][:-1]
    spectrum = np.fft.rfft(frames * _HANN, axis=-1)
    power = (spectrum.real**2 + spectrum.imag**2).astype(np.float32)
    mel = np.log10(np.maximum(power @ _MEL_FILTERS, 1e-10)).T
    mel = np.maximum(mel, mel.max() - 8.0)
    return ((mel + 4.0) / 4.0).astype(np.float32)


def smart_turn_model_path() -> Path:
    """Path of the Smart Turn v3.2 ONNX file inside the installed pipecat-ai wheel.

    Located without importing pipecat: only the data file is used
    (install with ``pip install --no-deps pipecat-ai==1.14.0``).
    """
    spec = importlib.util.find_spec("pipecat")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "pipecat-ai is not installed (pip install --no-deps pipecat-ai==1.14.0); "
            "it carries the Smart Turn model file"
        )
    root = Path(next(iter(spec.submodule_search_locations)))
    path = root / "audio" / "turn" / "smart_turn" / "data" / MODEL_FILE
    if not path.is_file():
        raise RuntimeError(f"pipecat-ai is installed but {path} is missing")
    return path


def _as_float(pcm16k: np.ndarray) -> np.ndarray:
    """``pcm16k`` (int16, or float in [-1, 1]) as float32, or AudioFormatError."""
    if not isinstance(pcm16k, np.ndarray) or pcm16k.ndim != 1:
        shape = getattr(pcm16k, "shape", type(pcm16k).__name__)
        raise AudioFormatError(f"expected 1-D 16 kHz mono samples, got {shape}")
    if not len(pcm16k):
        raise AudioFormatError("expected audio, got 0 samples")
    if pcm16k.dtype == np.int16:
        return pcm16k.astype(np.float32) / 32768.0
    if np.issubdtype(pcm16k.dtype, np.floating):
        if not np.isfinite(pcm16k).all():
            raise AudioFormatError("audio contains NaN or infinite samples")
        return pcm16k.astype(np.float32)
    raise AudioFormatError(f"expected int16 or float samples, got {pcm16k.dtype}")


class SmartTurnModel:
    """The Smart Turn model: one onnxruntime session, safe to share across threads and calls."""

    def __init__(self, path: Path | None = None, *, threads: int = 1) -> None:
        if threads < 1:
            raise ValueError(f"threads must be at least 1, got {threads}")
        opts = ort.SessionOptions()
        # One thread: inference is short and calls share two cores with Whisper.
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self._session = ort.InferenceSession(
            str(path or smart_turn_model_path()),
            sess_options=opts,
            providers=["CPUExecutionProvider"],
        )

    def features(self, pcm16k: np.ndarray) -> np.ndarray:
        """The model's input for ``pcm16k``: float32 log-mel features, shape (80, 800)."""
        audio = _as_float(pcm16k)[-WINDOW_SAMPLES:]
        window = np.zeros(WINDOW_SAMPLES, np.float32)
        window[WINDOW_SAMPLES - len(audio) :] = audio  # silence goes before, as in training
        window = (window - window.mean()) / np.sqrt(window.var() + _NORM_EPS)
        return log_mel(window)

    def probability(self, pcm16k: np.ndarray) -> float:
        """Blocking: probability (0-1) that the turn in ``pcm16k`` is finished.

        ``pcm16k`` is the turn so far at 16 kHz mono, int16 or float in [-1, 1], ending where
        the pause was detected; only its last 8 s are heard. Run it in a worker thread.
        """
        features = self.features(pcm16k)[np.newaxis]
        (out,) = self._session.run(None, {"input_features": features})
        return float(np.asarray(out).reshape(-1)[0])


_shared_lock = threading.Lock()


@functools.cache
def _load_shared() -> SmartTurnModel:
    return SmartTurnModel()


def shared_model() -> SmartTurnModel:
    """The process-wide model, loaded on first use."""
    with _shared_lock:
        return _load_shared()
