"""Benchmark building block: load the clickstream objects waiting in the landing bucket, time it."""

from __future__ import annotations

import time
from dataclasses import dataclass

from lakehouse.settings import Settings

from .landing import load_landing


@dataclass(frozen=True)
class LoadBenchmark:
    """One timed clickstream load (wall clock of the whole run: list, fetch, parse, write, commit)."""

    rows: int
    quarantined: int
    seconds: float
    delta_version: int | None

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


def benchmark_clickstream_load(settings: Settings, prefix: str | None = None, workers: int = 2) -> LoadBenchmark:
    """Load every clickstream object under `prefix` that bronze does not hold yet; rows/s of that run.

    The production loader, unchanged: objects already loaded are skipped, exactly as in production.
    """
    started = time.perf_counter()
    report = load_landing(settings, kind="clickstream", prefix=prefix, workers=workers)
    seconds = time.perf_counter() - started
    return LoadBenchmark(report.rows, report.quarantined, seconds, report.delta_versions.get("clickstream"))
