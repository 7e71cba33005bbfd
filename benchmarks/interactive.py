"""Interactive speed: one partition of one mart through the Dagster CLI against its floor.

The floor is what the command cannot avoid: starting Python with Dagster imported, and dbt building
the same models and tests with the same vars. Everything above it (code-location load, dagster-dbt's
manifest handling and event streaming, run bookkeeping in the instance) is overhead the target caps.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.batch import _load_average, _materialize, prepare_lake
from benchmarks.harness import BenchmarkResult, Figure, median, private_stack, timed
from lakehouse.dagster_instance import REPO_ROOT, dagster_env
from lakehouse.settings import Settings

#: The mart a user most often materializes one partition of (`marts/fct_daily_revenue` in the UI).
DAILY_REVENUE_MART = "marts/fct_daily_revenue"
#: dagster-dbt names each invocation's target folder `<op name>-<run id[:7]>-<uuid[:7]>`.
DBT_OP_NAME = "dbt_lakehouse"
TARGET_RATIO = 1.5
PARTIAL_PARSE_FILE = "partial_parse.msgpack"


class FloorError(RuntimeError):
    """The dbt command of the Dagster run could not be found or replayed."""


@dataclass(frozen=True)
class DbtInvocation:
    """What dagster-dbt ran, from the run's own `run_results.json` (dbt records its parsed flags)."""

    select: list[str]
    exclude: list[str]
    vars: dict[str, Any]
    indirect_selection: str | None
    target: str | None

    @classmethod
    def from_run_results(cls, path: Path) -> DbtInvocation:
        args = json.loads(path.read_text())["args"]
        if args.get("which") != "build":
            raise FloorError(f"{path}: the Dagster run ran `dbt {args.get('which')}`, expected `dbt build`")
        if args.get("selector"):
            raise FloorError(f"{path}: dagster-dbt used a generated selector {args['selector']!r}: cannot replay it")
        vars_ = args.get("vars") or {}
        if isinstance(vars_, str):  # older dbt versions record the raw --vars text
            vars_ = json.loads(vars_)
        return cls(
            select=list(args.get("select") or []),
            exclude=list(args.get("exclude") or []),
            vars=dict(vars_),
            indirect_selection=args.get("indirect_selection"),
            target=args.get("target"),
        )

    def build_args(self) -> list[str]:
        """`dbt build` arguments selecting the same nodes with the same vars."""
        args = ["build"]
        if self.vars:
            args += ["--vars", json.dumps(self.vars)]
        if self.target:
            args += ["--target", self.target]
        if self.select:
            args += ["--select", *self.select]
        if self.exclude:
            args += ["--exclude", *self.exclude]
        if self.indirect_selection:
            args += ["--indirect-selection", self.indirect_selection]
        return args


def last_run_id(settings: Settings) -> str:
    """The id of the newest run in the private instance's SQLite run storage."""
    database = settings.dagster_home / "storage" / "history" / "runs.db"
    with closing(sqlite3.connect(database)) as conn:
        row = conn.execute("select run_id from runs order by id desc limit 1").fetchone()
    if row is None:
        raise FloorError(f"no run in {database}")
    return str(row[0])


def run_results_of(target_dir: Path, run_id: str) -> Path:
    """The `run_results.json` dagster-dbt's invocation of run `run_id` wrote under `target_dir`."""
    found = sorted(target_dir.glob(f"{DBT_OP_NAME}-{run_id[:7]}-*/run_results.json"))
    if len(found) != 1:
        raise FloorError(f"expected one dbt invocation of run {run_id} in {target_dir}, found {found}")
    return found[0]


def _process_seconds(command: list[str], env: dict[str, str], log: Path) -> float:
    with open(log, "ab") as out:
        out.write(f"\n--- {' '.join(command)}\n".encode())
        out.flush()
        seconds, result = timed(
            lambda: subprocess.run(command, env=env, cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT, check=False)
        )
    if result.returncode != 0:
        raise FloorError(f"{' '.join(command[:3])} ... failed (exit {result.returncode}); see {log}")
    return seconds


def bare_dbt_build(settings: Settings, invocation: DbtInvocation, scratch: Path, log: Path) -> float:
    """`dbt build` alone, as dagster-dbt starts it (same executable, env, profiles, JSON logs, its own
    target folder seeded with the project's partial parse): the dbt part of the floor, in seconds."""
    from orchestration.dbt_project import DBT_EXECUTABLE, dbt_env, dbt_project

    target = scratch / f"bare-{time.time_ns()}"
    target.mkdir(parents=True)
    partial_parse = dbt_project.project_dir / dbt_project.target_path / PARTIAL_PARSE_FILE
    if partial_parse.exists():  # dagster-dbt copies it too, so neither side parses the project again
        shutil.copy(partial_parse, target / PARTIAL_PARSE_FILE)
    env = dbt_env(settings) | {
        "DBT_TARGET_PATH": str(target),
        "DBT_LOG_PATH": str(target),
        "DBT_LOG_FORMAT": "json",
        "DBT_PROFILES_DIR": str(dbt_project.profiles_dir),
        "DBT_PROJECT_DIR": str(dbt_project.project_dir),
        "PYTHONUNBUFFERED": "1",
    }
    return _process_seconds([str(DBT_EXECUTABLE), *invocation.build_args()], env, log)


def bare_dagster_import(settings: Settings, log: Path) -> float:
    """A fresh `python -c "import dagster"`: the Python + Dagster part of the floor, in seconds."""
    return _process_seconds([sys.executable, "-c", "import dagster"], dagster_env(settings), log)


def one_partition_latency(days: int = 30, repeats: int = 3) -> BenchmarkResult:
    """`dagster asset materialize --select marts/fct_daily_revenue --partition D` vs its floor:
    a bare `import dagster` process + a bare `dbt build` of the same selection and vars, same run.

    The lake is the demo's (starter data over `days` days ending yesterday, ingested through the
    Dagster CLI); one untimed run of every dbt asset for D creates the tables, one untimed run of
    the mart warms caches and tells which dbt command it runs. Then `repeats` rounds, each timing
    the CLI, the bare import and the bare dbt build one after the other; medians are compared.
    """
    from lakehouse.demo import DemoWindow, default_window
    from orchestration.selection import partitioned_selection

    started = time.perf_counter()
    load_before = _load_average()
    full = default_window()
    window = DemoWindow(full.start + dt.timedelta(days=full.days - days), days)
    partition = window.partition_range[1]  # yesterday: the partition a user looks at
    with private_stack() as settings:
        log = settings.state_path / "logs" / "bench-one-partition.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        lake = prepare_lake(settings, window, log)
        _materialize(settings, log, partitioned_selection(), "--partition", partition)  # creates every table
        warm = _materialize(settings, log, DAILY_REVENUE_MART, "--partition", partition)
        if warm.runs != 1:
            raise AssertionError(f"materializing one partition created {warm.runs} runs, expected 1")
        from orchestration.dbt_project import dbt_project

        target_dir = dbt_project.project_dir / dbt_project.target_path
        invocation = DbtInvocation.from_run_results(run_results_of(target_dir, last_run_id(settings)))
        scratch = settings.state_path / "dbt-bare"
        cli, run_seconds, imports, dbt = [], [], [], []
        for _ in range(repeats):
            m = _materialize(settings, log, DAILY_REVENUE_MART, "--partition", partition)
            cli.append(m.seconds)
            run_seconds.append(m.run_seconds)
            imports.append(bare_dagster_import(settings, log))
            dbt.append(bare_dbt_build(settings, invocation, scratch, log))
    floor = median(imports) + median(dbt)
    ratio = median(cli) / floor
    return BenchmarkResult(
        "one_partition_latency",
        [
            Figure(
                f"`dagster asset materialize --select {DAILY_REVENUE_MART} --partition D` (CLI process)",
                median(cli),
                "s",
                'floor: bare `python -c "import dagster"` + bare `dbt build` of the same selection and vars',
                floor,
                target=f"<= {TARGET_RATIO}x the floor",
                met=ratio <= TARGET_RATIO,
                details={
                    "partition": partition,
                    "repeats": repeats,
                    "cli_runs": cli,
                    "run_seconds_in_dagster": run_seconds,
                    "import_dagster_runs": imports,
                    "dbt_build_runs": dbt,
                    "import_dagster_median": median(imports),
                    "dbt_build_median": median(dbt),
                    "dbt_build_args": invocation.build_args(),
                    "warm_cli_seconds": warm.seconds,
                    "ingest_seconds": [round(m.seconds, 2) for m in lake.ingest],
                    "starter_counts": lake.starter_counts,
                    "window_days": days,
                    "load_average_before": load_before,
                    "load_average_after": _load_average(),
                },
            )
        ],
        time.perf_counter() - started,
        notes=[
            "floor = median bare `import dagster` process + median bare `dbt build` (same selection, vars, target,"
            " env and partial parse as the Dagster run's own dbt invocation, read from its run_results.json)",
            "each round times the CLI, the import and the dbt build one after the other; medians of the rounds",
            "run_seconds_in_dagster: the run's own start -> end from the instance (no process start, no load)",
        ],
    )
