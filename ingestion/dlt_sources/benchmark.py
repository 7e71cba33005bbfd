"""Benchmark building block: load the clickstream objects waiting in the landing bucket, time it."""

from __future__ import annotations

import time
from dataclasses import dataclass

from lakehouse.settings import Settings

from .core import load_summary, make_pipeline, raise_on_failed, rows_by_table
from .landing import landing_source


@dataclass(frozen=True)
class LoadBenchmark:
    """One timed clickstream load (wall clock of the whole dlt run: list, fetch, parse, write)."""

    rows: int
    quarantined: int
    seconds: float
    delta_version: int | None

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


def benchmark_clickstream_load(
    settings: Settings,
    prefix: str | None = None,
    pipeline_name: str = "bronze_landing_clickstream",
    workers: int = 4,
) -> LoadBenchmark:
    """Load every not-yet-loaded clickstream object under `prefix` into bronze; rows/s of that run.

    Uses the production pipeline by default (objects already loaded are skipped, exactly as in
    production); pass another `pipeline_name` to benchmark without touching its state.
    """
    pipeline = make_pipeline(settings, pipeline_name, dataset="landing")
    source = landing_source(settings, kind="clickstream", prefix=prefix, workers=workers)
    started = time.perf_counter()
    raise_on_failed(pipeline.run(source))
    seconds = time.perf_counter() - started
    rows = rows_by_table(pipeline)
    version = load_summary(settings, pipeline, ["clickstream"])["clickstream"].delta_version
    return LoadBenchmark(rows.get("clickstream", 0), rows.get("_quarantine", 0), seconds, version)
