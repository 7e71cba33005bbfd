"""The lake's health, read live: one screen for `lakehouse status` and the lag asset checks.

Plain library code (no Dagster). `lake_health` reads the replication slot (PostgreSQL), the CDC
stream's lag against the lake's stored positions (`ingestion.cdc.lag`), dead letters, the landing
objects no load has picked up, the landing quarantine, each table's last Delta commit and the
newest change applied to silver. `LakeHealth.outcomes` turns it into the lag checks, with the
thresholds of the settings; Dagster reports them as asset checks (`orchestration/defs/health.py`)
and the alert sensor notifies when one fails and when it passes again.

Each probe fails on its own: a probe that cannot read (PostgreSQL down, the stream unreachable)
fails its checks with the reason instead of hiding the others.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow.compute as pc
from deltalake import DeltaTable

from lakehouse.settings import Settings

log = logging.getLogger(__name__)

AssetPath = tuple[str, ...]
#: where the replication slot's checks live (an external asset: the slot is PostgreSQL's)
SLOT_ASSET: AssetPath = ("postgres", "replication_slot")
LANDING_KINDS = ("clickstream", "partner_feeds")


@dataclass(frozen=True)
class CheckOutcome:
    """One lag check: passed or not, why, and the measured figures."""

    asset: AssetPath
    check: str
    passed: bool
    description: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class Commit:
    """The last commit of one Delta table."""

    name: str
    version: int | None = None
    at: datetime | None = None

    def age_seconds(self, now: datetime) -> float | None:
        return None if self.at is None else round((now - self.at).total_seconds(), 1)


@dataclass
class TableHealth:
    """One captured table: stream lag, dead letters, newest change in silver, why it is stopped."""

    table: str
    lag: int | None = None
    partitions: list[Any] = field(default_factory=list)  # ingestion.cdc.lag.PartitionLag
    dead_letters: int | None = None
    newest_change: datetime | None = None
    stopped: str | None = None


@dataclass
class LandingHealth:
    kind: str
    waiting: int | None = None
    oldest_waiting: datetime | None = None
    quarantined_lines: int | None = None
    lines: int | None = None

    @property
    def quarantine_rate(self) -> float | None:
        if self.lines is None or self.quarantined_lines is None:
            return None
        total = self.lines + self.quarantined_lines
        return self.quarantined_lines / total if total else 0.0


@dataclass
class SlotHealth:
    name: str
    exists: bool = False
    active: bool = False
    retained_wal_bytes: int | None = None


@dataclass
class LakeHealth:
    """Everything `lake_health` read; `errors` names the probes that could not read (probe -> why)."""

    checked_at: datetime
    slot: SlotHealth
    tables: dict[str, TableHealth] = field(default_factory=dict)
    landing: dict[str, LandingHealth] = field(default_factory=dict)
    commits: list[Commit] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def stopped(self) -> dict[str, str]:
        return {t: h.stopped for t, h in self.tables.items() if h.stopped}

    def outcomes(self, settings: Settings) -> list[CheckOutcome]:
        """The lag checks with the thresholds of `settings`."""
        found = [*self._slot_outcomes(settings)]
        for _table, health in sorted(self.tables.items()):
            found += self._table_outcomes(settings, health)
        for _kind, landing in sorted(self.landing.items()):
            found.append(self._landing_outcome(settings, landing))
        return found

    def red(self, settings: Settings) -> bool:
        return bool(self.stopped) or any(not o.passed for o in self.outcomes(settings))

    # ---------------------------------------------------------------- checks
    def _slot_outcomes(self, settings: Settings) -> list[CheckOutcome]:
        error = self.errors.get("slot")
        limit = settings.slot_max_retained_wal_bytes
        if error:
            text = f"could not read the replication slot: {error}"
            return [
                CheckOutcome(SLOT_ASSET, "retained_wal", False, text),
                CheckOutcome(SLOT_ASSET, "active", False, text),
            ]
        slot = self.slot
        if not slot.exists:
            text = f"replication slot {slot.name} does not exist: Debezium has not started (or the slot was dropped)"
            return [
                CheckOutcome(SLOT_ASSET, "retained_wal", True, text, {"retained_wal_bytes": 0}),
                CheckOutcome(SLOT_ASSET, "active", False, text),
            ]
        retained = slot.retained_wal_bytes or 0
        return [
            CheckOutcome(
                SLOT_ASSET,
                "retained_wal",
                retained <= limit,
                f"slot {slot.name} retains {_bytes(retained)} of WAL (limit {_bytes(limit)})",
                {"retained_wal_bytes": retained, "limit_bytes": limit},
            ),
            CheckOutcome(
                SLOT_ASSET,
                "active",
                slot.active,
                f"slot {slot.name} is " + ("active" if slot.active else "inactive: no publisher is reading it"),
                {"active": slot.active},
            ),
        ]

    def _table_outcomes(self, settings: Settings, health: TableHealth) -> list[CheckOutcome]:
        bronze, silver = ("bronze", "cdc", health.table), ("silver", health.table)
        outcomes = []
        stream_error = self.errors.get("stream")
        if stream_error or health.lag is None:
            text = f"could not measure the lag: {stream_error or 'no topic'}"
            outcomes.append(CheckOutcome(bronze, "consumer_lag", stream_error is None, text))
        else:
            worst = max((p.lag for p in health.partitions), default=0)
            limit = settings.cdc_max_consumer_lag
            outside = [p for p in health.partitions if p.out_of_range]
            passed = worst <= limit and not outside
            text = f"{health.lag} records not in the lake (worst partition {worst}, limit {limit})"
            if outside:
                text += "; stored position outside the log of " + ", ".join(
                    f"{p.topic} [{p.partition}]" for p in outside
                )
            outcomes.append(
                CheckOutcome(
                    bronze,
                    "consumer_lag",
                    passed,
                    text,
                    {
                        "lag": health.lag,
                        "worst_partition_lag": worst,
                        "limit": limit,
                        "partitions": {str(p.partition): p.lag for p in health.partitions},
                    },
                )
            )
        dead_error = self.errors.get("dead_letters")
        window = settings.alert_rate_window_minutes
        if dead_error:
            outcomes.append(CheckOutcome(bronze, "dead_letters", False, f"could not read dead letters: {dead_error}"))
        else:
            count = health.dead_letters or 0
            outcomes.append(
                CheckOutcome(
                    bronze,
                    "dead_letters",
                    count <= settings.cdc_max_dead_letters,
                    f"{count} dead letters in the last {window} min (limit {settings.cdc_max_dead_letters})",
                    {"dead_letters": count, "window_minutes": window, "limit": settings.cdc_max_dead_letters},
                )
            )
        age = None if health.newest_change is None else (self.checked_at - health.newest_change).total_seconds() / 60
        limit_minutes = settings.cdc_max_change_age_minutes
        waiting = (health.lag or 0) > 0
        passed = not (waiting and age is not None and age > limit_minutes)
        if age is None:
            text = "no change applied to silver yet"
        else:
            text = f"newest change in silver is {age:.1f} min old; " + (
                f"{health.lag} newer changes wait in the stream (limit {limit_minutes:g} min)"
                if waiting
                else "nothing waits in the stream"
            )
        metadata: dict[str, Any] = {"limit_minutes": limit_minutes, "waiting": health.lag or 0}
        if age is not None:
            metadata["newest_change_age_minutes"] = round(age, 2)
        outcomes.append(CheckOutcome(silver, "newest_change_age", passed, text, metadata))
        return outcomes

    def _landing_outcome(self, settings: Settings, landing: LandingHealth) -> CheckOutcome:
        asset = ("bronze", "landing", landing.kind)
        error = self.errors.get(f"landing:{landing.kind}")
        if error:
            return CheckOutcome(asset, "waiting_objects", False, f"could not list the landing objects: {error}")
        waiting = landing.waiting or 0
        wait_minutes = (
            None if landing.oldest_waiting is None else (self.checked_at - landing.oldest_waiting).total_seconds() / 60
        )
        passed = waiting <= settings.landing_max_waiting_objects and (
            wait_minutes is None or wait_minutes <= settings.landing_max_wait_minutes
        )
        text = f"{waiting} objects not loaded yet"
        if wait_minutes is not None:
            text += f", the oldest for {wait_minutes:.1f} min"
        text += f" (limits {settings.landing_max_waiting_objects} objects, {settings.landing_max_wait_minutes:g} min)"
        metadata: dict[str, Any] = {"waiting": waiting, "limit": settings.landing_max_waiting_objects}
        if wait_minutes is not None:
            metadata["oldest_wait_minutes"] = round(wait_minutes, 2)
        return CheckOutcome(asset, "waiting_objects", passed, text, metadata)

    # ---------------------------------------------------------------- output
    def as_json(self, settings: Settings) -> dict[str, Any]:
        now = self.checked_at
        return {
            "checked_at": now.isoformat(),
            "red": self.red(settings),
            "slot": {
                "name": self.slot.name,
                "exists": self.slot.exists,
                "active": self.slot.active,
                "retained_wal_bytes": self.slot.retained_wal_bytes,
            },
            "tables": {
                name: {
                    "lag": t.lag,
                    "partitions": [p.as_json() for p in t.partitions],
                    "dead_letters": t.dead_letters,
                    "newest_change": t.newest_change.isoformat() if t.newest_change else None,
                    "stopped": t.stopped,
                }
                for name, t in sorted(self.tables.items())
            },
            "landing": {
                kind: {
                    "waiting": h.waiting,
                    "oldest_waiting": h.oldest_waiting.isoformat() if h.oldest_waiting else None,
                    "quarantined_lines": h.quarantined_lines,
                    "lines": h.lines,
                    "quarantine_rate": h.quarantine_rate,
                }
                for kind, h in sorted(self.landing.items())
            },
            "commits": [
                {
                    "table": c.name,
                    "version": c.version,
                    "at": c.at.isoformat() if c.at else None,
                    "age_seconds": c.age_seconds(now),
                }
                for c in self.commits
            ],
            "checks": [
                {"asset": "/".join(o.asset), "check": o.check, "passed": o.passed, "description": o.description}
                for o in self.outcomes(settings)
            ],
            "errors": self.errors,
        }


def _bytes(count: int) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{count} B"


# -------------------------------------------------------------------- probes
def _open(uri: str, settings: Settings) -> DeltaTable | None:
    try:
        return DeltaTable(uri, storage_options=settings.delta_storage_options)
    except Exception:  # not created yet (TableNotFoundError) or unreadable
        return None


def last_commit(name: str, uri: str, settings: Settings) -> Commit:
    table = _open(uri, settings)
    if table is None:
        return Commit(name)
    entry = table.history(1)[0]
    at = datetime.fromtimestamp(int(entry["timestamp"]) / 1000, tz=UTC) if entry.get("timestamp") else None
    return Commit(name, int(table.version()), at)


def newest_value(table: DeltaTable, column: str) -> Any:
    """The largest value of `column` from the file statistics in the Delta log (no data read);
    falls back to scanning the column when the log has no statistics for it."""
    actions = table.get_add_actions(flatten=True)
    stat = f"max.{column}"
    names = actions.schema.names
    if stat in names and actions.num_rows:
        values = actions.column(stat)
        if values.null_count < len(values):
            return pc.max(values).as_py()
    data = table.to_pyarrow_dataset().to_table(columns=[column])
    return pc.max(data.column(column)).as_py() if data.num_rows else None


def _slot(settings: Settings) -> SlotHealth:
    import psycopg

    slot = SlotHealth(settings.cdc_slot_name)
    with psycopg.connect(settings.postgres_dsn, connect_timeout=5) as conn:
        row = conn.execute(
            "select active, pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint "
            "from pg_replication_slots where slot_name = %s",
            (settings.cdc_slot_name,),
        ).fetchone()
    if row is not None:
        slot.exists, slot.active, slot.retained_wal_bytes = True, bool(row[0]), int(row[1] or 0)
    return slot


def _dead_letters(settings: Settings, since: datetime) -> dict[str, int]:
    from ingestion.cdc.config import SinkConfig

    config = SinkConfig.from_settings(settings)
    table = _open(config.dead_letter_uri, settings)
    if table is None:
        return {}
    rows = table.to_pyarrow_dataset().to_table(columns=["topic"], filter=pc.field("ingested_at") >= since)
    counts: dict[str, int] = {}
    for topic in rows.column("topic").to_pylist():
        table_name = config.table_of(topic)
        counts[table_name] = counts.get(table_name, 0) + 1
    return counts


def _landing(settings: Settings, kind: str, since: datetime) -> LandingHealth:
    """Objects under the kind's prefix that no load has recorded as loaded (markers left out),
    and the quarantine of the loads recorded since `since`."""
    import boto3

    from ingestion.dlt_sources.landing import read_manifest
    from ingestion.dlt_sources.landing_parse import PREFIXES, is_marker

    health = LandingHealth(kind)
    manifest = read_manifest(settings, kind)  # type: ignore[arg-type]
    loaded = {
        (row["object_key"], row["object_etag"])
        for row in manifest.select(["object_key", "object_etag", "status"]).to_pylist()
        if row["status"] == "loaded"
    }
    recent = manifest.filter(pc.field("recorded_at") >= since) if manifest.num_rows else manifest
    recent = recent.filter(pc.field("status") == "loaded") if recent.num_rows else recent
    health.lines = int(pc.sum(recent.column("rows")).as_py() or 0) if recent.num_rows else 0
    health.quarantined_lines = int(pc.sum(recent.column("quarantined_lines")).as_py() or 0) if recent.num_rows else 0
    client = boto3.client("s3", **settings.boto3_kwargs())
    waiting = 0
    oldest: datetime | None = None
    prefix = PREFIXES[kind]  # type: ignore[index]
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=settings.landing_bucket, Prefix=prefix):
        for entry in page.get("Contents", []):
            key, etag, size = str(entry["Key"]), str(entry["ETag"]).strip('"'), int(entry.get("Size", 0))
            if is_marker(kind, key, size) or (key, etag) in loaded:  # type: ignore[arg-type]
                continue
            waiting += 1
            modified = entry["LastModified"]
            modified = modified if modified.tzinfo else modified.replace(tzinfo=UTC)
            oldest = modified if oldest is None or modified < oldest else oldest
    health.waiting, health.oldest_waiting = waiting, oldest
    return health


def _lake_tables(settings: Settings) -> list[tuple[str, str]]:
    from ingestion.dlt_sources.core import BRONZE_TABLES

    tables = []
    for table in settings.cdc_tables:
        tables += [
            (f"bronze/cdc/{table}", settings.lake_uri("bronze", "cdc", table)),
            (f"silver/{table}", settings.lake_uri("silver", table)),
            (f"silver/{table}_history", settings.lake_uri("silver", f"{table}_history")),
        ]
    tables.append(("bronze/cdc/_dead_letters", settings.lake_uri("bronze", "cdc", "_dead_letters")))
    for dataset, names in BRONZE_TABLES.items():
        tables += [(f"bronze/{dataset}/{name}", settings.lake_uri("bronze", dataset, name)) for name in names]
    return tables


def _probe(health: LakeHealth, name: str, probe: Any) -> Any:
    try:
        return probe()
    except Exception as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        health.errors[name] = message[:300]
        log.warning("health probe %s failed: %s", name, message)
        return None


def lake_health(settings: Settings, stopped: Mapping[str, str] | None = None, commits: bool = True) -> LakeHealth:
    """Read the lake's health now. `stopped`: tables the sink reported stopped (table -> reason),
    e.g. from the Dagster instance; positions outside the log are found here by themselves."""
    from ingestion.cdc.config import SinkConfig
    from ingestion.cdc.lag import topic_lag

    now = datetime.now(UTC)
    since = now - timedelta(minutes=settings.alert_rate_window_minutes)
    health = LakeHealth(checked_at=now, slot=SlotHealth(settings.cdc_slot_name))
    slot = _probe(health, "slot", lambda: _slot(settings))
    if slot is not None:
        health.slot = slot
    config = SinkConfig.from_settings(settings)
    for table in settings.cdc_tables:
        health.tables[table] = TableHealth(table)
    lags = _probe(health, "stream", lambda: topic_lag(config, list(settings.cdc_tables)))
    for partition in lags or []:
        entry = health.tables.get(partition.table)
        if entry is None:
            continue
        entry.partitions.append(partition)
        entry.lag = (entry.lag or 0) + partition.lag
        if partition.out_of_range:
            entry.stopped = (
                f"offset out of range: the lake has {partition.topic} [{partition.partition}] up to offset "
                f"{partition.stored}, the log holds {partition.log_start}..{partition.log_end - 1}"
            )
    dead = _probe(health, "dead_letters", lambda: _dead_letters(settings, since))
    for table, entry in health.tables.items():
        entry.dead_letters = (dead or {}).get(table, 0) if dead is not None else None
        silver = _open(config.uri("silver", table), settings)
        if silver is not None:
            newest = _probe(health, f"silver:{table}", lambda silver=silver: newest_value(silver, "_cdc_source_ts"))
            entry.newest_change = newest if newest is None or newest.tzinfo else newest.replace(tzinfo=UTC)
        if stopped and table in stopped:
            entry.stopped = stopped[table]
    for kind in LANDING_KINDS:
        landing = _probe(health, f"landing:{kind}", lambda kind=kind: _landing(settings, kind, since))
        health.landing[kind] = landing if landing is not None else LandingHealth(kind)
    if commits:
        for name, uri in _probe(health, "commits", lambda: _lake_tables(settings)) or []:
            commit = _probe(health, f"commit:{name}", lambda name=name, uri=uri: last_commit(name, uri, settings))
            health.commits.append(commit if commit is not None else Commit(name))
    return health
