"""The floor of `one_partition_latency` (benchmarks/interactive.py): finding and replaying the dbt
command of a Dagster run. No benchmark runs here."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from benchmarks.interactive import DbtInvocation, FloorError, last_run_id, run_results_of
from lakehouse.settings import Settings

VARS = {"min_date": "2026-12-01", "max_date": "2026-12-02", "lookback_days": 2}


def _run_results(path: Path, **args: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    recorded = {"which": "build", "vars": VARS, "select": ["lakehouse.marts.fct_daily_revenue"], "exclude": [],
                "indirect_selection": "eager", "target": "local"} | args  # fmt: skip
    path.write_text(json.dumps({"results": [], "args": recorded}))
    return path


def test_replays_the_selection_vars_and_target_of_the_run(tmp_path: Path) -> None:
    path = _run_results(tmp_path / "run_results.json", exclude=["tag:slow"], indirect_selection="empty")
    args = DbtInvocation.from_run_results(path).build_args()
    assert args == [
        "build",
        "--vars", json.dumps(VARS),
        "--target", "local",
        "--select", "lakehouse.marts.fct_daily_revenue",
        "--exclude", "tag:slow",
        "--indirect-selection", "empty",
    ]  # fmt: skip
    assert json.loads(args[2]) == VARS


def test_vars_recorded_as_text_and_an_unselective_run(tmp_path: Path) -> None:
    path = _run_results(tmp_path / "run_results.json", vars=json.dumps(VARS), select=[], indirect_selection=None)
    assert DbtInvocation.from_run_results(path).build_args() == [
        "build",
        "--vars",
        json.dumps(VARS),
        "--target",
        "local",
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [({"which": "run"}, "expected `dbt build`"), ({"selector": "dagster_run_selector"}, "cannot replay")],
)
def test_a_command_that_cannot_be_replayed_is_an_error(tmp_path: Path, args: dict, message: str) -> None:
    with pytest.raises(FloorError, match=message):
        DbtInvocation.from_run_results(_run_results(tmp_path / "run_results.json", **args))


def test_finds_the_invocation_of_the_run(tmp_path: Path) -> None:
    wanted = _run_results(tmp_path / "dbt_lakehouse-abcdef1-1234567" / "run_results.json")
    _run_results(tmp_path / "dbt_lakehouse-0000000-1234567" / "run_results.json")  # another run
    assert run_results_of(tmp_path, "abcdef12-3456-7890") == wanted
    with pytest.raises(FloorError, match="expected one dbt invocation"):
        run_results_of(tmp_path, "fffffff0-0000")
    _run_results(tmp_path / "dbt_lakehouse-abcdef1-7654321" / "run_results.json")  # two invocations: ambiguous
    with pytest.raises(FloorError, match="expected one dbt invocation"):
        run_results_of(tmp_path, "abcdef12-3456-7890")


def test_last_run_id_is_the_newest_run(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, state_dir=tmp_path)
    database = settings.dagster_home / "storage" / "history" / "runs.db"
    database.parent.mkdir(parents=True)
    with sqlite3.connect(database) as conn:
        conn.execute("create table runs (id integer primary key autoincrement, run_id text)")
        with pytest.raises(FloorError, match="no run"):
            last_run_id(settings)
        conn.executemany("insert into runs (run_id) values (?)", [("old-run",), ("new-run",)])
    assert last_run_id(settings) == "new-run"
