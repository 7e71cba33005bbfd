"""Rebuild a silver table (current state) and its SCD2 history from the bronze changelog, in one pass.

Why: silver and history are derived data. When they are damaged (a bad manual fix, a bug, a lost
table) or must be re-derived after a rule change, replaying Kafka is often impossible (retention)
while bronze still holds every change. This job reads `bronze/cdc/<table>` at one Delta version,
computes the rows with the incremental sink's own rules (`Applier.silver_rows` /
`Applier.history_rows`, nothing re-implemented) and overwrites both tables in one commit each.

Each commit carries, per (sink, topic, partition), the bronze offset it includes — the same Delta
`txn` the sink writes — so the next sink run applies exactly the changes bronze received after the
snapshot this job read: no gap, no duplicate. Commits are fenced like the sink's
(`max_commit_retries=0` on the version read first), so a concurrent writer makes this job retry
instead of being overwritten.

Run it as `python -m ingestion.jobs.rebuild_silver --table orders`. The same file is the EMR
Serverless `entryPoint` (see docs/prod-wiring.md); launched by a Dagster Pipes client it reports
progress and a materialization through Pipes, otherwise it prints a JSON summary on stdout.
Imports stay light on purpose: no Dagster, no Kafka client, no boto3 (`dagster_pipes` is optional).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable, write_deltalake
from deltalake.exceptions import CommitFailedError, DeltaError

from ingestion.cdc.apply import (
    PARTITION_COLUMN,
    TRUNCATED_LSN_APP_ID,
    TRUNCATED_TS_APP_ID,
    Applier,
    TableShape,
)
from ingestion.cdc.config import SinkConfig
from ingestion.cdc.lake import CommitRetriesExhausted, DeltaStore, commit_fenced
from ingestion.cdc.resolve import Truncation, resolve
from lakehouse.settings import OLTP_TABLES, Settings

log = logging.getLogger("ingestion.jobs.rebuild_silver")

#: Settings that travel as the job's `--settings-json` argument: where the lake is and how its tables
#: are laid out. Never credentials (command lines are visible): those come from the environment
#: locally and from the EMR job role in AWS.
JOB_SETTINGS_FIELDS: tuple[str, ...] = (
    "environment",
    "name_prefix",
    "aws_region",
    "s3_endpoint_url",
    "cdc_topic_prefix",
    "oltp_schema",
    "cdc_topic_partitions",
    "cdc_transport",
    "cdc_kinesis_stream",
    "cdc_partition_by",
    "delta_target_file_size",
)
#: Fenced commits that lose a race with another writer are recomputed this many times in all.
MAX_COMMIT_ATTEMPTS = 3


class RebuildError(Exception):
    """The table cannot be rebuilt (no bronze, no changes, or silver ahead of bronze)."""


# ---------------------------------------------------------------------------- arguments
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m ingestion.jobs.rebuild_silver",
        description="Rebuild silver/<table> and silver/<table>_history from bronze/cdc/<table>.",
    )
    parser.add_argument("--table", required=True, choices=OLTP_TABLES, help="captured OLTP table")
    parser.add_argument(
        "--settings-json",
        default=None,
        help=f"JSON object overriding LAKEHOUSE_* settings; allowed keys: {', '.join(JOB_SETTINGS_FIELDS)}",
    )
    return parser.parse_args(argv)


def settings_overrides(settings: Settings) -> dict[str, Any]:
    """The lake-layout settings a job run needs, as JSON-ready values (see JOB_SETTINGS_FIELDS)."""
    dumped = settings.model_dump(mode="json", include=set(JOB_SETTINGS_FIELDS), exclude_none=True)
    return {name: dumped[name] for name in JOB_SETTINGS_FIELDS if name in dumped}


def job_arguments(settings: Settings, table: str) -> list[str]:
    """The job's command-line arguments: identical for the local subprocess and the EMR job run."""
    if table not in OLTP_TABLES:
        raise ValueError(f"unknown table {table!r}; captured tables: {', '.join(OLTP_TABLES)}")
    overrides = json.dumps(settings_overrides(settings), sort_keys=True, separators=(",", ":"))
    return ["--table", table, "--settings-json", overrides]


def job_settings(settings_json: str | None) -> Settings:
    """Settings from the environment, with the job's `--settings-json` on top."""
    if not settings_json:
        return Settings()
    try:
        overrides = json.loads(settings_json)
    except json.JSONDecodeError as exc:
        raise ValueError(f"--settings-json is not valid JSON: {exc}") from None
    if not isinstance(overrides, dict):
        raise ValueError("--settings-json must be a JSON object")
    unknown = sorted(set(overrides) - set(JOB_SETTINGS_FIELDS))
    if unknown:
        raise ValueError(f"--settings-json may not set {unknown}; allowed: {', '.join(JOB_SETTINGS_FIELDS)}")
    return Settings(**overrides)


# ---------------------------------------------------------------------------- the rows
def key_columns(changes: pa.Table) -> list[str]:
    """Primary-key columns, from the Debezium key stored with each change (as the sink finds them)."""
    keys = pc.drop_null(changes.column("kafka_key")).slice(0, 1).to_pylist()
    if not keys:
        return []
    decoded = orjson.loads(keys[0])
    return list(decoded) if isinstance(decoded, dict) else []


def rebuild_rows(shape: TableShape, changes: pa.Table) -> tuple[pa.Table, pa.Table]:
    """(silver, history) of a whole changelog, with the incremental sink's rules.

    The images are completed first (`resolve.py`: unchanged TOAST values, key-only deletes,
    TRUNCATEs) over the whole changelog, then one pass of `silver_rows` gives what the sink's
    successive MERGEs give (newest LSN wins, deletes stay as tombstones) and `history_rows` the chains.
    """
    silver, history, _truncation = rebuild_with_truncation(shape, changes)
    return silver, history


def rebuild_with_truncation(shape: TableShape, changes: pa.Table) -> tuple[pa.Table, pa.Table, Truncation | None]:
    """`rebuild_rows`, plus the newest TRUNCATE of the changelog (recorded with the commits)."""
    resolved = resolve(changes, shape.key_columns)
    with Applier(DeltaStore({})) as applier:
        silver = applier.silver_rows(shape, resolved.changes)
        history = applier.history_rows(shape, resolved.changes, shape.history_schema().empty_table())
    return silver, history, resolved.truncation


# ---------------------------------------------------------------------------- progress (Delta txn)
def bronze_progress(
    bronze: DeltaTable, config: SinkConfig, table: str, changes: pa.Table, topic_partitions: int = 1
) -> dict[str, int]:
    """The sink's `txn` versions recorded in this bronze snapshot: app id → last offset included.

    Delta has no API listing app ids, so the candidates are the partitions (Kafka) or shards
    (Kinesis) of the changes, plus partitions 0..N-1 of the table's Kafka topic (a partition
    holding only tombstones has a `txn` but no rows). A pair missed here is harmless: the sink then
    re-applies its range from bronze, and the MERGEs ignore changes that are not newer than what
    silver holds.
    """
    numbers = set(pc.unique(changes.column("kafka_partition")).to_pylist())
    if config.transport == "kafka":
        numbers |= set(range(topic_partitions))
    source = config.source(table)
    progress: dict[str, int] = {}
    for partition in sorted(n for n in numbers if n is not None):
        app_id = config.txn_app_id(source, partition)
        version = bronze.transaction_version(app_id)
        if version is not None:
            progress[app_id] = version
    return progress


# ---------------------------------------------------------------------------- the job
@dataclass
class RebuildResult:
    """What a rebuild did (Dagster materialization metadata, or the CLI's JSON summary)."""

    table: str
    bronze_version: int
    changes: int
    silver_rows: int
    live_rows: int
    tombstones: int
    history_versions: int
    partitions: int
    silver_version: int | None = None
    history_version: int | None = None
    offsets: dict[str, int] = field(default_factory=dict)
    attempts: int = 1
    seconds: float = 0.0
    silver_uri: str = ""
    history_uri: str = ""

    def metadata(self) -> dict[str, Any]:
        """Pipes metadata (plain values; Dagster infers their types)."""
        return {
            "table": self.table,
            "bronze_version": self.bronze_version,
            "changes_read": self.changes,
            "silver_rows": self.silver_rows,
            "live_rows": self.live_rows,
            "tombstones": self.tombstones,
            "history_versions": self.history_versions,
            "partitions": self.partitions,
            "silver_delta_version": self.silver_version,
            "history_delta_version": self.history_version,
            "bronze_offsets": {"raw_value": self.offsets, "type": "json"},
            "commit_attempts": self.attempts,
            "duration_seconds": round(self.seconds, 2),
            "silver_uri": {"raw_value": self.silver_uri, "type": "url"},
            "history_uri": {"raw_value": self.history_uri, "type": "url"},
        }


def _check_not_ahead(target: DeltaTable | None, progress: dict[str, int], uri: str) -> None:
    """delta-rs does not enforce monotonic `txn` versions: never move a table's progress backwards."""
    if target is None:
        return
    for app_id, version in progress.items():
        applied = target.transaction_version(app_id)
        if applied is not None and applied > version:
            raise RebuildError(f"{uri} has applied {app_id} up to offset {applied}, beyond bronze ({version})")


def _commit(
    store: DeltaStore,
    uri: str,
    target: DeltaTable | None,
    rows: pa.Table,
    progress: dict[str, int],
    partition_by: list[str] | None,
    operation: str,
    target_file_size: int,
) -> None:
    """Overwrite `target` (or create it) in one fenced commit carrying the bronze progress."""
    properties = store.commit_properties(progress, operation=operation)
    try:
        if target is None:
            write_deltalake(
                uri,
                rows,
                mode="error",  # someone created it meanwhile: re-read, never clobber
                partition_by=partition_by,
                storage_options=store.storage_options,
                commit_properties=properties,
                target_file_size=target_file_size,
            )
        else:
            write_deltalake(
                target,
                rows,
                mode="overwrite",
                schema_mode="overwrite",
                partition_by=partition_by,
                commit_properties=properties,
                target_file_size=target_file_size,
            )
    except DeltaError as exc:
        if target is None and "already exists" in str(exc):
            raise CommitFailedError(str(exc)) from exc
        raise


def rebuild_silver(settings: Settings, table: str, progress: Callable[[str], None] | None = None) -> RebuildResult:
    """Rebuild silver/<table> and silver/<table>_history from bronze/cdc/<table>."""
    say = progress or log.info
    started = time.monotonic()
    config = SinkConfig.from_settings(settings)
    store = DeltaStore(config.storage_options)
    uris = {layer: config.uri(layer, table) for layer in ("bronze", "silver", "history")}  # type: ignore[arg-type]
    pending = ["silver", "history"]

    def attempt(number: int) -> RebuildResult:
        if number > 1:
            say(f"another writer committed to {table} meanwhile; recomputing ({', '.join(pending)})")
        # targets first, then bronze: whatever they hold was read from an older bronze version
        targets = {layer: store.open(uris[layer]) for layer in pending}
        bronze = store.open(uris["bronze"])
        if bronze is None:
            raise RebuildError(f"{uris['bronze']} does not exist: run the CDC sink first")
        changes = bronze.to_pyarrow_dataset().to_table()
        keys = key_columns(changes)
        if changes.num_rows == 0 or not keys:
            raise RebuildError(f"{uris['bronze']} holds no changes with a primary key: nothing to rebuild")
        row_type = pa.schema(bronze.schema().to_arrow()).field("after").type
        shape = TableShape(table, row_type, keys, config.partition_by.get(table))
        offsets = bronze_progress(bronze, config, table, changes, settings.cdc_topic_partitions)
        say(f"read {changes.num_rows} changes of {table} from bronze version {bronze.version()}")
        silver, history, truncation = rebuild_with_truncation(shape, changes)
        deleted = silver.column("_cdc_deleted")
        tombstones = int(pc.sum(pc.cast(deleted, pa.int64())).as_py() or 0)
        partitions = len(pc.unique(silver.column(PARTITION_COLUMN))) if shape.partition is not None else 0
        result = RebuildResult(
            table=table,
            bronze_version=bronze.version(),
            changes=changes.num_rows,
            silver_rows=silver.num_rows,
            live_rows=silver.num_rows - tombstones,
            tombstones=tombstones,
            history_versions=history.num_rows,
            partitions=partitions,
            offsets=offsets,
            attempts=number,
            silver_uri=uris["silver"],
            history_uri=uris["history"],
        )
        say(f"computed {silver.num_rows} silver rows ({tombstones} tombstones) and {history.num_rows} history versions")
        rows = {"silver": silver, "history": history}
        txns = dict(offsets)
        if truncation is not None:  # the sink truncates late changes older than it (see apply.py)
            txns.update({TRUNCATED_LSN_APP_ID: truncation.lsn, TRUNCATED_TS_APP_ID: truncation.ts_us})
        partition_by = {"silver": [PARTITION_COLUMN] if shape.partition else None, "history": None}
        for layer in list(pending):  # a lost race leaves the layers not committed yet in `pending`
            _check_not_ahead(targets[layer], offsets, uris[layer])
            _commit(
                store,
                uris[layer],
                targets[layer],
                rows[layer],
                txns,
                partition_by[layer],
                f"{layer}-rebuild",
                settings.delta_target_file_size,
            )
            pending.remove(layer)
            say(f"committed {uris[layer]}")
        return result

    try:
        result = commit_fenced(f"rebuild of {table}", attempt, attempts=MAX_COMMIT_ATTEMPTS)
    except CommitRetriesExhausted:
        raise RebuildError(
            f"could not commit {', '.join(pending)} of {table} in {MAX_COMMIT_ATTEMPTS} attempts: another writer "
            "keeps committing (stop `lakehouse cdc sink --follow` during a rebuild)"
        ) from None
    result.silver_version = _version(store, uris["silver"])
    result.history_version = _version(store, uris["history"])
    result.seconds = time.monotonic() - started
    return result


def _version(store: DeltaStore, uri: str) -> int | None:
    table = store.open(uri)
    return table.version() if table is not None else None


# ---------------------------------------------------------------------------- entry point
def _pipes_process() -> bool:
    """True when a Dagster Pipes client launched this process (and dagster_pipes is installed)."""
    try:
        from dagster_pipes import PipesEnvVarParamsLoader
    except ImportError:
        return False
    return PipesEnvVarParamsLoader().is_dagster_pipes_process()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        settings = job_settings(args.settings_json)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if _pipes_process():
        from dagster_pipes import open_dagster_pipes

        with open_dagster_pipes() as pipes:
            result = rebuild_silver(settings, args.table, progress=pipes.log.info)
            pipes.report_asset_materialization(metadata=result.metadata())
        return 0
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")
    try:
        result = rebuild_silver(settings, args.table)
    except RebuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(asdict(result), sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
