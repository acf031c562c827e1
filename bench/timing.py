"""What every part of the benchmark times with: medians taken in turns, the process's peak memory, the sample photos."""
from __future__ import annotations

import resource
import statistics
import time
from pathlib import Path

ASSETS = Path(__file__).resolve().parents[1] / "assets"


def median_ms(fn, repeats: int) -> float:
    """Median milliseconds of ``repeats`` calls of ``fn``."""
    return interleaved_ms({"fn": fn}, repeats)["fn"]


def interleaved_ms(fns: dict, repeats: int) -> dict:
    """Median milliseconds of each function, taking turns, round after round.

    Figures whose ratio is a target are timed this way, so that both sides of a ratio see the
    same load on a noisy machine instead of one of them catching a slow minute. In its turn each
    function runs twice and the second call is timed, so no function is timed on the caches the
    previous one left (the first call of a turn is not counted).
    """
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            if len(fns) > 1:
                fn()
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return {name: round(statistics.median(ts) * 1000, 2) for name, ts in times.items()}


def peak_rss_mb() -> float:
    """This process's peak resident memory (MB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
