"""The lake section of `lakehouse status` and `lakehouse cdc topics`: live health on one screen.

Reads `lakehouse.health` (slot, lag, dead letters, landing, commits) and, when a Dagster instance
is at hand, the tables the CDC sink reported stopped (their `flowing` check).
"""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.table import Table

from lakehouse.health import LakeHealth, _bytes, lake_health
from lakehouse.settings import Settings

log = logging.getLogger(__name__)


def stopped_from_dagster(settings: Settings) -> tuple[dict[str, str], str | None]:
    """Tables the sink reported stopped, from the Dagster instance (DAGSTER_HOME, else the local
    one); (stopped, why not read) -- the lake section works without Dagster too."""
    home = os.environ.get("DAGSTER_HOME") or (str(settings.dagster_home) if settings.dagster_home.exists() else None)
    if home is None or not os.path.exists(os.path.join(home, "dagster.yaml")):
        return {}, "no Dagster instance here (set DAGSTER_HOME)"
    try:
        import dagster as dg

        from lakehouse.dagster_instance import dagster_env
        from orchestration.defs.health import stopped_tables

        if "DAGSTER_HOME" not in os.environ:
            os.environ.update({k: v for k, v in dagster_env(settings).items() if k.startswith("DAGSTER_")})
        with dg.DagsterInstance.from_config(home) as instance:
            return stopped_tables(instance, tuple(settings.cdc_tables)), None
    except Exception as exc:  # the lake section still shows what the lake says
        return {}, f"could not read the Dagster instance: {str(exc).splitlines()[0] if str(exc) else exc!r}"


def read_lake(settings: Settings) -> LakeHealth:
    stopped, why = stopped_from_dagster(settings)
    health = lake_health(settings, stopped=stopped)
    if why:
        health.errors.setdefault("dagster", why)
    return health


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


def print_lake(console: Console, health: LakeHealth, settings: Settings) -> None:
    now = health.checked_at
    slot = health.slot
    slot_state = (
        "missing"
        if not slot.exists
        else f"{'active' if slot.active else '[red]inactive[/]'}, retains {_bytes(slot.retained_wal_bytes or 0)} of WAL"
    )
    console.print(f"replication slot {slot.name}: {slot_state}", highlight=False)
    tables = Table(
        "table", "lag", "dead letters", "newest change", "bronze commit", "silver commit", "stopped", title="CDC tables"
    )
    commits = {c.name: c for c in health.commits}
    for name, table in sorted(health.tables.items()):
        bronze, silver = commits.get(f"bronze/cdc/{name}"), commits.get(f"silver/{name}")
        newest = (now - table.newest_change).total_seconds() if table.newest_change else None
        tables.add_row(
            name,
            "-" if table.lag is None else str(table.lag),
            "-" if table.dead_letters is None else str(table.dead_letters),
            _age(newest) + (" ago" if newest is not None else ""),
            _commit(bronze, now),
            _commit(silver, now),
            f"[red]{table.stopped}[/]" if table.stopped else "",
        )
    console.print(tables)
    landing = Table("landing", "waiting objects", "oldest waiting", "quarantine (window)", title="Landing files")
    for kind, entry in sorted(health.landing.items()):
        oldest = (now - entry.oldest_waiting).total_seconds() if entry.oldest_waiting else None
        rate = entry.quarantine_rate
        landing.add_row(
            kind,
            "-" if entry.waiting is None else str(entry.waiting),
            _age(oldest),
            "-" if rate is None else f"{entry.quarantined_lines} lines ({rate:.1%})",
        )
    console.print(landing)
    others = Table("table", "version", "last commit", "age", title="Other lake tables")
    cdc_names = {f"{layer}{n}" for n in health.tables for layer in ("bronze/cdc/", "silver/")} | {
        f"silver/{n}_history" for n in health.tables
    }
    for commit in health.commits:
        if commit.name in cdc_names and not commit.name.endswith("_history"):
            continue
        others.add_row(
            commit.name,
            "-" if commit.version is None else str(commit.version),
            commit.at.isoformat(timespec="seconds") if commit.at else "not created",
            _age(commit.age_seconds(now)),
        )
    console.print(others)
    failed = [o for o in health.outcomes(settings) if not o.passed]
    for outcome in failed:
        console.print(f"[red]RED[/] {'/'.join(outcome.asset)} {outcome.check}: {outcome.description}", highlight=False)
    for probe, error in sorted(health.errors.items()):
        console.print(f"[yellow]note[/] {probe}: {error}", highlight=False)
    if not failed and not health.stopped:
        console.print("[green]lake: all checks pass[/]")


def _commit(commit: Any, now: datetime) -> str:
    if commit is None or commit.at is None:
        return "-"
    return f"v{commit.version}, {_age(commit.age_seconds(now))} ago"


def lake_json(health: LakeHealth, settings: Settings) -> dict[str, Any]:
    return health.as_json(settings)


def topics_rows(settings: Settings) -> list[dict[str, Any]]:
    from ingestion.cdc.config import SinkConfig
    from ingestion.cdc.lag import topic_lag

    return [p.as_json() for p in topic_lag(SinkConfig.from_settings(settings))]


def print_topics(console: Console, rows: list[dict[str, Any]]) -> None:
    table = Table(
        "topic", "partition", "log start", "log end", "stored (lake)", "group offset", "lag", title="CDC topics"
    )
    for row in rows:
        lag = str(row["lag"]) + (" [red]out of range[/]" if row["out_of_range"] else "")
        table.add_row(
            row["topic"],
            str(row["partition"]),
            str(row["log_start"]),
            str(row["log_end"]),
            "-" if row["stored"] is None else str(row["stored"]),
            "-" if row["group"] is None else str(row["group"]),
            lag,
        )
    console.print(table)


def print_tail(console: Console, settings: Settings, topic: str, count: int, as_json: bool) -> None:
    from ingestion.cdc.config import SinkConfig
    from ingestion.cdc.lag import tail

    records = tail(SinkConfig.from_settings(settings), topic, count)
    for record in records:
        entry = {
            "partition": record.partition,
            "offset": record.offset,
            "key": record.key.decode(errors="replace") if record.key else None,
            "value": record.value.decode(errors="replace") if record.value is not None else None,
        }
        if as_json:
            print(json.dumps(entry))
        else:
            console.print(
                f"[{record.partition}] {record.offset} key={entry['key']} value={entry['value']}",
                highlight=False,
                soft_wrap=True,
            )
    if not records and not as_json:
        console.print(f"{topic}: empty")


def now_utc() -> datetime:
    return datetime.now(UTC)
