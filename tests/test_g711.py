"""G.711 codecs against CPython's audioop (Sun's reference g711.c) for every input."""

from __future__ import annotations

import ast
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from frontdesk.audio import AudioFormatError
from frontdesk.audio.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop  # reference only: deprecated, gone in 3.13, never used by the package

ALL_PCM = np.arange(-32768, 32768, dtype=np.int16)
ALL_CODES = bytes(range(256))

Encoder = Callable[[np.ndarray], bytes]
Decoder = Callable[[bytes], np.ndarray]


def test_ulaw_encode_matches_reference_for_every_int16() -> None:
    assert ulaw_encode(ALL_PCM) == audioop.lin2ulaw(ALL_PCM.astype("<i2").tobytes(), 2)


def test_alaw_encode_matches_reference_for_every_int16() -> None:
    assert alaw_encode(ALL_PCM) == audioop.lin2alaw(ALL_PCM.astype("<i2").tobytes(), 2)


def test_ulaw_decode_matches_reference_for_every_code() -> None:
    expected = np.frombuffer(audioop.ulaw2lin(ALL_CODES, 2), dtype="<i2")
    decoded = ulaw_decode(ALL_CODES)
    assert decoded.dtype == np.int16
    assert np.array_equal(decoded, expected)


def test_alaw_decode_matches_reference_for_every_code() -> None:
    expected = np.frombuffer(audioop.alaw2lin(ALL_CODES, 2), dtype="<i2")
    decoded = alaw_decode(ALL_CODES)
    assert decoded.dtype == np.int16
    assert np.array_equal(decoded, expected)


@pytest.mark.parametrize(
    ("encode", "decode"), [(ulaw_encode, ulaw_decode), (alaw_encode, alaw_decode)]
)
def test_decode_then_encode_returns_every_code(encode: Encoder, decode: Decoder) -> None:
    # Each code's decoded value lies inside its own decision interval...
    round_trip = encode(decode(ALL_CODES))
    # ...except mu-law's two zeros (0x7F and 0xFF both decode to 0, which encodes as 0xFF).
    differing = {c for c, r in zip(ALL_CODES, round_trip, strict=True) if c != r}
    assert differing <= {0x7F}


@pytest.mark.parametrize(
    ("encode", "decode"), [(ulaw_encode, ulaw_decode), (alaw_encode, alaw_decode)]
)
def test_speech_band_tone_survives_the_codec(encode: Encoder, decode: Decoder) -> None:
    t = np.arange(8000) / 8000
    tone = np.rint(10000 * np.sin(2 * np.pi * 1000 * t)).astype(np.int16)
    decoded = decode(encode(tone)).astype(np.float64)
    error = decoded - tone
    snr_db = 10 * np.log10(np.mean(tone.astype(np.float64) ** 2) / np.mean(error**2))
    assert snr_db > 35  # G.711 gives ~38 dB SQNR at this level


def test_accepts_uint8_arrays_and_bytearrays() -> None:
    codes = np.frombuffer(ALL_CODES, dtype=np.uint8)
    assert np.array_equal(ulaw_decode(codes), ulaw_decode(bytearray(ALL_CODES)))
    assert np.array_equal(alaw_decode(memoryview(ALL_CODES)), alaw_decode(codes))


def test_wrong_types_are_rejected_with_the_reason() -> None:
    with pytest.raises(AudioFormatError, match=r"int16 .* got float32"):
        ulaw_encode(np.zeros(160, dtype=np.float32))
    with pytest.raises(AudioFormatError, match=r"int16 .* got int32"):
        alaw_encode(np.zeros(160, dtype=np.int32))
    with pytest.raises(AudioFormatError, match="mono"):
        ulaw_encode(np.zeros((160, 2), dtype=np.int16))
    with pytest.raises(AudioFormatError, match="int16 PCM samples, got bytes"):
        ulaw_encode(b"\x00\x01")  # type: ignore[arg-type]
    with pytest.raises(AudioFormatError, match="uint8 array, got a int16 array"):
        ulaw_decode(np.zeros(160, dtype=np.int16))
    with pytest.raises(AudioFormatError, match="needs bytes, got list"):
        alaw_decode([1, 2, 3])  # type: ignore[arg-type]


def test_the_package_never_imports_audioop() -> None:
    package = Path(__file__).parents[1] / "src" / "frontdesk"
    for source in package.rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            assert "audioop" not in names, f"{source} imports audioop"
