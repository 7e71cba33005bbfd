"""Shared pieces of the benchmarks: a private stack, timing, and the result record."""

from __future__ import annotations

import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lakehouse.settings import Settings

RESULTS_DIR = Path(__file__).parent / "results"
#: `Figure.details` keys of raw series the report (benchmarks/report.py) plots: every latency sample
#: in seconds, and [seconds since start, changes committed] per commit.
LATENCY_SAMPLES_KEY = "latency_samples_s"
THROUGHPUT_TIMELINE_KEY = "throughput_timeline"


@dataclass
class Figure:
    """One measured number next to its baseline."""

    name: str
    value: float
    unit: str
    baseline_name: str | None = None
    baseline_value: float | None = None
    target: str | None = None
    met: bool | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if not self.baseline_value:
            return None
        return self.value / self.baseline_value


@dataclass
class BenchmarkResult:
    benchmark: str
    figures: list[Figure]
    seconds: float
    notes: list[str] = field(default_factory=list)


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
    }


@contextmanager
def private_stack(name_prefix: str = "bench-lakehouse", services: list[str] | None = None) -> Iterator[Settings]:
    """An embedded stack on free ports with its own state directory, purged afterwards."""
    from lakehouse.stack import LocalStack  # here, so reading results (benchmarks.report) needs no stack
    from lakehouse.stack.process import free_port

    state = Path(tempfile.mkdtemp(prefix="lakehouse-bench-"))
    settings = Settings(
        _env_file=None,
        environment="local",
        state_dir=state,
        s3_port=free_port(),
        kafka_port=free_port(),
        postgres_port=free_port(),
        api_port=free_port(),
        dagster_port=free_port(),
        name_prefix=name_prefix,
    )
    stack = LocalStack(settings, services)
    try:
        stack.up(log=lambda _m: None)
        yield settings
    finally:
        stack.down(purge=True, log=lambda _m: None)


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    value = fn()
    return time.perf_counter() - started, value


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


def median(values: list[float]) -> float:
    return statistics.median(values)


def save(results: list[BenchmarkResult]) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    payload = {
        "measured_at": stamp,
        "machine": machine(),
        "results": [asdict(r) | {"figures": [asdict(f) | {"ratio": f.ratio} for f in r.figures]} for r in results],
    }
    path = RESULTS_DIR / f"{stamp}.json"
    path.write_text(json.dumps(payload, indent=2, default=str))
    (RESULTS_DIR / "latest.json").write_text(json.dumps(payload, indent=2, default=str))
    return path


def render(results: list[BenchmarkResult]) -> str:
    lines = ["| benchmark | figure | value | baseline | ratio | target | met |", "|---|---|---|---|---|---|---|"]
    for result in results:
        for f in result.figures:
            baseline = f"{f.baseline_value:,.2f} ({f.baseline_name})" if f.baseline_value is not None else "-"
            ratio = f"{f.ratio:.2f}x" if f.ratio is not None else "-"
            met = {True: "yes", False: "NO", None: "-"}[f.met]
            lines.append(
                f"| {result.benchmark} | {f.name} | {f.value:,.2f} {f.unit} | {baseline} | {ratio} | "
                f"{f.target or '-'} | {met} |"
            )
    return "\n".join(lines)
