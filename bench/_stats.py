"""Shared figures for the benchmarks: median and p90 of a list of seconds, printed in ms."""

from __future__ import annotations

import numpy as np


def summary(values: list[float], unit: float = 1000.0) -> str:
    """ "median X / p90 Y / max Z (n=N)" with values scaled by ``unit`` (s -> ms)."""
    data = np.asarray(values, dtype=float) * unit
    if not len(data):
        return "no samples"
    return (
        f"median {np.median(data):7.1f}  p90 {np.percentile(data, 90):7.1f}  "
        f"max {data.max():7.1f}  (n={len(data)})"
    )
