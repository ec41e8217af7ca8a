"""Timing a callable the way every latency benchmark here does: one warm-up call, then p50 and p95."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def percentiles(samples: list[float]) -> tuple[float, float]:
    """(p50, p95) of samples, nearest rank."""
    ordered = sorted(samples)
    return ordered[len(ordered) // 2], ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def timed(fn: Callable[[], Any], runs: int) -> tuple[float, float]:
    """(p50, p95) in ms of `runs` calls of fn, after one call that warms caches, plans and pools."""
    fn()
    samples = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t) * 1000.0)
    return percentiles(samples)
