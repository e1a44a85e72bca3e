"""G.711 mu-law and A-law: the phone network's 8-bit companded audio (Twilio, RTP PCMU/PCMA).

Encoding and decoding are table look-ups. The tables are computed once at import by the
classic reference algorithm (Sun Microsystems' g711.c, the one CPython's ``audioop``, SoX and
most telephony stacks use), not pasted constants: 65,536 entries per encoder (one per int16
value) and 256 per decoder.

mu-law works on the top 14 bits of a PCM16 sample and A-law on the top 13 bits, as G.711
specifies. For negative inputs the ITU-T G.191 software library truncates to 14 bits with a
one's complement, so its mu-law encoder differs from this one (and from ``audioop``) by one
code at 508 of the 65,536 inputs, each on a decision boundary; decoding and A-law agree.
"""

from __future__ import annotations

import numpy as np

from frontdesk.audio.frames import AudioFormatError

_QUANT_MASK = 0x0F
_SEG_SHIFT = 4
_SEG_MASK = 0x70
_SIGN_BIT = 0x80

_ULAW_BIAS = 0x84  # added to the magnitude so every segment starts on a power of two
_ULAW_CLIP = 8159  # largest 14-bit magnitude mu-law represents
_ULAW_SEG_END = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF])
_ALAW_SEG_END = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF])

_ALL_INT16 = np.arange(-32768, 32768, dtype=np.int32)
_ALL_CODES = np.arange(256, dtype=np.int32)


def _segment(magnitude: np.ndarray, seg_end: np.ndarray) -> np.ndarray:
    """Index of the first segment whose end is >= magnitude (8 when beyond the last)."""
    return np.searchsorted(seg_end, magnitude, side="left")


def _build_ulaw_encode() -> np.ndarray:
    pcm14 = _ALL_INT16 >> 2
    mask = np.where(pcm14 < 0, 0x7F, 0xFF)
    magnitude = np.minimum(np.abs(pcm14), _ULAW_CLIP) + (_ULAW_BIAS >> 2)
    seg = _segment(magnitude, _ULAW_SEG_END)
    code = (seg << _SEG_SHIFT) | ((magnitude >> (seg + 1)) & _QUANT_MASK)
    # mu-law transmits every bit inverted (positive sign = 1).
    code = np.where(seg >= 8, 0x7F, code) ^ mask
    return _by_uint16_index(code.astype(np.uint8))


def _build_alaw_encode() -> np.ndarray:
    pcm13 = _ALL_INT16 >> 3
    negative = pcm13 < 0
    mask = np.where(negative, 0x55, 0xD5)
    magnitude = np.where(negative, -pcm13 - 1, pcm13)
    seg = _segment(magnitude, _ALAW_SEG_END)
    # Segments 0 and 1 share one step size, hence the shift by at least 1.
    mantissa = (magnitude >> np.maximum(seg, 1)) & _QUANT_MASK
    code = (seg << _SEG_SHIFT) | mantissa
    # A-law transmits with even bits inverted (0x55).
    code = np.where(seg >= 8, 0x7F, code) ^ mask
    return _by_uint16_index(code.astype(np.uint8))


def _by_uint16_index(codes_from_min: np.ndarray) -> np.ndarray:
    """Reorder a table indexed from -32768 upward so ``table[pcm.view(uint16)]`` works."""
    return np.roll(codes_from_min, -32768)


def _build_ulaw_decode() -> np.ndarray:
    inverted = ~_ALL_CODES & 0xFF
    t = ((inverted & _QUANT_MASK) << 3) + _ULAW_BIAS
    t <<= (inverted & _SEG_MASK) >> _SEG_SHIFT
    return np.where(inverted & _SIGN_BIT, _ULAW_BIAS - t, t - _ULAW_BIAS).astype(np.int16)


def _build_alaw_decode() -> np.ndarray:
    code = _ALL_CODES ^ 0x55
    t = (code & _QUANT_MASK) << 4
    seg = (code & _SEG_MASK) >> _SEG_SHIFT
    t = np.where(seg == 0, t + 8, t + 0x108)
    t = np.where(seg > 1, t << np.maximum(seg - 1, 0), t)
    return np.where(code & _SIGN_BIT, t, -t).astype(np.int16)


_ULAW_ENCODE = _build_ulaw_encode()
_ALAW_ENCODE = _build_alaw_encode()
_ULAW_DECODE = _build_ulaw_decode()
_ALAW_DECODE = _build_alaw_decode()


def _pcm_index(pcm: np.ndarray, codec: str) -> np.ndarray:
    if not isinstance(pcm, np.ndarray) or pcm.dtype != np.int16:
        got = pcm.dtype if isinstance(pcm, np.ndarray) else type(pcm).__name__
        raise AudioFormatError(f"{codec} encoding needs int16 PCM samples, got {got}")
    if pcm.ndim != 1:
        raise AudioFormatError(f"{codec} encoding needs mono (1-D) samples, got shape {pcm.shape}")
    return pcm.view(np.uint16)


def _code_array(data: bytes | bytearray | memoryview | np.ndarray, codec: str) -> np.ndarray:
    if isinstance(data, np.ndarray):
        if data.dtype != np.uint8 or data.ndim != 1:
            raise AudioFormatError(
                f"{codec} decoding needs bytes or a 1-D uint8 array, "
                f"got a {data.dtype} array of shape {data.shape}"
            )
        return data
    if isinstance(data, bytes | bytearray | memoryview):
        return np.frombuffer(data, dtype=np.uint8)
    raise AudioFormatError(f"{codec} decoding needs bytes, got {type(data).__name__}")


def ulaw_encode(pcm: np.ndarray) -> bytes:
    """mu-law bytes (one per sample) for int16 mono samples."""
    return _ULAW_ENCODE[_pcm_index(pcm, "mu-law")].tobytes()


def ulaw_decode(data: bytes | bytearray | memoryview | np.ndarray) -> np.ndarray:
    """int16 samples for mu-law bytes (or a uint8 array)."""
    return _ULAW_DECODE[_code_array(data, "mu-law")]


def alaw_encode(pcm: np.ndarray) -> bytes:
    """A-law bytes (one per sample) for int16 mono samples."""
    return _ALAW_ENCODE[_pcm_index(pcm, "A-law")].tobytes()


def alaw_decode(data: bytes | bytearray | memoryview | np.ndarray) -> np.ndarray:
    """int16 samples for A-law bytes (or a uint8 array)."""
    return _ALAW_DECODE[_code_array(data, "A-law")]
