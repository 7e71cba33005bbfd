"""CDC assets: PostgreSQL tables → bronze changelog, silver current state, SCD2 history.

One subsettable multi-asset runs the exactly-once sink (`ingestion.cdc.sink`) for the selected
tables; a sensor launches it when the topics hold changes the lake has not seen, or when a table's
silver/history is behind its bronze (a run killed between the commits). The continuous
`lakehouse cdc sink --follow` may run at the same time: commits are fenced, nothing is doubled.
"""

import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import dagster as dg
from deltalake import DeltaTable

from ingestion.cdc.config import SinkConfig
from ingestion.cdc.monitor import tables_with_new_data
from ingestion.cdc.sink import CdcSink, TableReport
from ingestion.cdc.verify import compare_table
from lakehouse.settings import OLTP_TABLES, Settings, get_settings
from orchestration.resources import LakehouseSettings

OWNERS = ["team:data-platform"]
#: asset check of each bronze table: failed (with the reason) while the sink has stopped the table
FLOWING_CHECK = "flowing"


def postgres_key(table: str) -> dg.AssetKey:
    return dg.AssetKey(["postgres", "shop", table])


def bronze_key(table: str) -> dg.AssetKey:
    return dg.AssetKey(["bronze", "cdc", table])


def silver_key(table: str) -> dg.AssetKey:
    return dg.AssetKey(["silver", table])


def history_key(table: str) -> dg.AssetKey:
    return dg.AssetKey(["silver", f"{table}_history"])


def _layer_keys(table: str) -> list[dg.AssetKey]:
    return [bronze_key(table), silver_key(table), history_key(table)]


postgres_tables = [
    dg.AssetSpec(
        postgres_key(table),
        description=f"OLTP table shop.{table} in PostgreSQL, captured by Debezium (pgoutput).",
        group_name="sources",
        kinds={"postgres"},
        owners=OWNERS,
    )
    for table in OLTP_TABLES
]

cdc_specs = [
    spec
    for table in OLTP_TABLES
    for spec in (
        dg.AssetSpec(
            bronze_key(table),
            deps=[postgres_key(table)],
            description=f"Append-only changelog of shop.{table}: every Debezium change once, with its stream position.",
            group_name="cdc_bronze",
            kinds={"delta", "kafka", "debezium"},
            owners=OWNERS,
        ),
        dg.AssetSpec(
            silver_key(table),
            deps=[bronze_key(table)],
            description=f"Current state of shop.{table} (MERGE by key and LSN; deleted keys kept as tombstones).",
            group_name="silver",
            kinds={"delta", "s3"},
            owners=OWNERS,
        ),
        dg.AssetSpec(
            history_key(table),
            deps=[bronze_key(table)],
            description=f"SCD type 2 history of shop.{table}: valid_from, valid_to, is_current.",
            group_name="silver",
            kinds={"delta", "s3"},
            owners=OWNERS,
        ),
    )
]


def _table_of(key: dg.AssetKey) -> str:
    name = key.path[-1]
    return name.removesuffix("_history") if key.path[0] == "silver" else name


def _delta_version(uri: str, settings: Settings) -> int | None:
    try:
        return DeltaTable(uri, storage_options=settings.delta_storage_options).version()
    except Exception:  # table not created yet
        return None


def _metadata(report: TableReport, uri: str, settings: Settings, **extra: int) -> dict[str, Any]:
    """Materialization metadata. `source_change_age_seconds` is how old the newest source change
    applied by this run was when the run finished (end-to-end latency of that change); it is not
    the lag of the table, which a run that applied nothing does not measure."""
    now = datetime.now(UTC)
    metadata: dict[str, Any] = {
        "changes_applied": report.changes,
        "dead_letters": report.dead_letters,
        "tombstones": report.tombstones,
        "delta_version": _delta_version(uri, settings),
        "table_uri": dg.MetadataValue.url(uri),
        **extra,
    }
    if report.latest_source_ts is not None:
        metadata["latest_source_change"] = dg.MetadataValue.timestamp(report.latest_source_ts)
        metadata["source_change_age_seconds"] = round((now - report.latest_source_ts).total_seconds(), 1)
    if report.last_offsets:
        # per Kafka partition, or per Kinesis shard (the table's own offsets in it, see docs/cdc.md)
        key = "kinesis_shard_offsets" if settings.cdc_transport == "kinesis" else "kafka_offsets"
        metadata[key] = dg.MetadataValue.json({str(p): o for p, o in report.last_offsets.items()})
    return metadata


flowing_checks = [
    dg.AssetCheckSpec(
        FLOWING_CHECK,
        asset=bronze_key(table),
        description=f"Fails while the sink has stopped {table} (incompatible schema change, offset out of range), "
        "with the reason; passes once it applies the table again (docs/operations.md).",
    )
    for table in OLTP_TABLES
]


@dg.multi_asset(
    name="cdc_sink",
    specs=cdc_specs,
    check_specs=flowing_checks,
    can_subset=True,
    retry_policy=dg.RetryPolicy(max_retries=2, delay=5),
    pool="cdc_sink",
)
def cdc_sink(
    context: dg.AssetExecutionContext, lakehouse: LakehouseSettings
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """Apply the CDC topics of the selected tables to bronze, silver and history, exactly once."""
    settings = lakehouse.get()
    config = SinkConfig.from_settings(settings)
    tables = sorted({_table_of(key) for key in context.selected_asset_keys})
    with CdcSink(config) as sink:
        report = sink.run_once(tables=tables)
    blocked = {}
    for table in tables:
        entry = report.tables.get(table, TableReport(table))
        if dg.AssetCheckKey(bronze_key(table), FLOWING_CHECK) in context.selected_asset_check_keys:
            yield dg.AssetCheckResult(
                asset_key=bronze_key(table),
                check_name=FLOWING_CHECK,
                passed=entry.error is None,
                severity=dg.AssetCheckSeverity.ERROR,
                description=entry.error or f"the sink applies {table}",
                metadata={"stopped": entry.error is not None},
            )
        if entry.error:
            blocked[table] = entry.error
            continue
        selected = set(context.selected_asset_keys)
        outputs: tuple[tuple[dg.AssetKey, str, dict[str, int]], ...] = (
            (bronze_key(table), config.uri("bronze", table), {}),
            (
                silver_key(table),
                config.uri("silver", table),
                {"rows_inserted": entry.silver_inserted, "rows_updated": entry.silver_updated},
            ),
            (history_key(table), config.uri("history", table), {"versions_added": entry.history_versions}),
        )
        for key, uri, extra in outputs:
            if key in selected:
                yield dg.MaterializeResult(asset_key=key, metadata=_metadata(entry, uri, settings, **extra))
    context.log.info("CDC sink: %s messages in %s batches, %.1f s", report.messages, report.batches, report.seconds)
    if blocked:
        raise dg.Failure(
            description="CDC tables stopped: " + "; ".join(f"{t}: {e}" for t, e in blocked.items()),
            allow_retries=False,
        )


def _silver_check(table: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=silver_key(table),
        name="matches_source",
        description=(
            f"Row-by-row comparison of silver {table} with shop.{table}. Warns (does not block) because "
            "changes made after the last sink run are expected to be missing until the next one."
        ),
        blocking=False,
    )
    def check(lakehouse: LakehouseSettings) -> dg.AssetCheckResult:
        diff = compare_table(lakehouse.get(), table)
        return dg.AssetCheckResult(
            passed=diff.equal,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "source_rows": diff.source_rows,
                "silver_rows": diff.silver_rows,
                "missing": len(diff.missing),
                "extra": len(diff.extra),
                "different": len(diff.different),
                "summary": diff.summary(),
            },
        )

    return check


silver_checks = [_silver_check(table) for table in OLTP_TABLES]


def cdc_sensor_status(settings: Settings) -> dg.DefaultSensorStatus:
    """Stopped where an always-on sink service applies CDC (prod): its runs would only compete with
    it (and cost a Fargate task each). It stays for catch-up by hand and for the local stack."""
    return dg.DefaultSensorStatus.STOPPED if settings.cdc_sink_service else dg.DefaultSensorStatus.RUNNING


@dg.sensor(
    name="cdc_topics_sensor",
    minimum_interval_seconds=30,
    default_status=cdc_sensor_status(get_settings()),
    asset_selection=dg.AssetSelection.assets(*[k for t in OLTP_TABLES for k in _layer_keys(t)]),
    description=(
        "Materializes the CDC assets of tables whose Kafka topics (or Kinesis stream) hold changes the lake "
        "has not seen, or whose silver/history is behind bronze (a run killed between the commits)."
    ),
)
def cdc_topics_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
    config = SinkConfig.from_settings(get_settings())
    pending = tables_with_new_data(config)
    tables = sorted(t for t in pending if t in OLTP_TABLES)
    if not tables:
        return dg.SkipReason("no new changes in the CDC topics, every silver/history level with bronze")
    positions = json.dumps({t: pending[t] for t in tables}, sort_keys=True)
    if positions == context.cursor:
        return dg.SkipReason("a run for these changes was already requested")
    run_key = hashlib.sha256(positions.encode()).hexdigest()[:16]
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=run_key, asset_selection=[k for t in tables for k in _layer_keys(t)])],
        cursor=positions,
    )


defs = dg.Definitions(
    assets=[*postgres_tables, cdc_sink],
    asset_checks=silver_checks,
    sensors=[cdc_topics_sensor],
)
