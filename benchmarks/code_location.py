"""Code-location load time vs a bare import of the Dagster integrations it uses."""

from __future__ import annotations

import subprocess
import sys
import time

from benchmarks.harness import BenchmarkResult, Figure, median
from lakehouse.dagster_instance import REPO_ROOT

BARE = "import dagster, dagster_dbt, dagster_dlt, dagster_aws"
LOAD = (
    "from orchestration.definitions import defs; "
    "defs.get_repository_def().get_all_jobs()"  # resolve every asset graph, as a code server does
)


def _seconds(code: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO_ROOT)
    return time.perf_counter() - started


def code_location_load(repeats: int = 5) -> BenchmarkResult:
    started = time.perf_counter()
    _seconds(LOAD)  # warm the OS file cache and dbt's manifest once for both sides
    bare = [_seconds(BARE) for _ in range(repeats)]
    load = [_seconds(LOAD) for _ in range(repeats)]
    ratio = median(load) / median(bare)
    return BenchmarkResult(
        "code_location_load",
        [
            Figure(
                "load orchestration.definitions (all assets resolved)",
                median(load),
                "s",
                "bare `import dagster, dagster_dbt, dagster_dlt, dagster_aws`",
                median(bare),
                target="<= 1.5x the bare import",
                met=ratio <= 1.5,
                details={"load_runs": load, "bare_runs": bare},
            )
        ],
        time.perf_counter() - started,
    )
