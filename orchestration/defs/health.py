"""Lag as asset checks: the replication slot, consumer lag, dead letters, the newest change in
silver and landing objects waiting for the sensor (`lakehouse.health` measures them).

The checks are declared once (`lake_health_checks`, which also runs them on demand from the UI);
`lake_health_sensor` evaluates them every `LAKEHOUSE_HEALTH_CHECK_INTERVAL_SECONDS` and reports
the results as check evaluations of the sensor's tick: no run (in ECS a run is a new task), yet the
same events a run would write, so asset health in the UI and the alert sensor see them alike.

The `flowing` check of each CDC bronze table (declared on the sink in `cdc.py`) says whether the
sink has stopped that table; `flowing_evaluation` builds it for the always-on sink service.
"""

from collections.abc import Iterator

import dagster as dg

from lakehouse.health import SLOT_ASSET, CheckOutcome, lake_health
from lakehouse.settings import OLTP_TABLES, Settings, get_settings
from orchestration.defs.cdc import FLOWING_CHECK, OWNERS, bronze_key, silver_key
from orchestration.resources import LakehouseSettings

SLOT_KEY = dg.AssetKey(list(SLOT_ASSET))
LANDING_KINDS = ("clickstream", "partner_feeds")

replication_slot = dg.AssetSpec(
    SLOT_KEY,
    description="The logical replication slot Debezium reads (PostgreSQL keeps WAL for it until it is read).",
    group_name="sources",
    kinds={"postgres"},
    owners=OWNERS,
)


def _spec(key: dg.AssetKey, name: str, description: str) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(name, asset=key, description=description, blocking=False)


CHECK_SPECS = [
    _spec(SLOT_KEY, "retained_wal", "WAL retained for the slot stays under LAKEHOUSE_SLOT_MAX_RETAINED_WAL_BYTES."),
    _spec(SLOT_KEY, "active", "A publisher (Debezium) is reading the slot."),
    *(
        spec
        for table in OLTP_TABLES
        for spec in (
            _spec(
                bronze_key(table),
                "consumer_lag",
                "Records of the table's topic partitions not yet in the lake stay under "
                "LAKEHOUSE_CDC_MAX_CONSUMER_LAG, and the lake's positions lie inside the log.",
            ),
            _spec(
                bronze_key(table),
                "dead_letters",
                "Dead letters of the table within LAKEHOUSE_ALERT_RATE_WINDOW_MINUTES stay under "
                "LAKEHOUSE_CDC_MAX_DEAD_LETTERS.",
            ),
            _spec(
                silver_key(table),
                "newest_change_age",
                "While changes wait in the stream, the newest change applied to silver is younger than "
                "LAKEHOUSE_CDC_MAX_CHANGE_AGE_MINUTES.",
            ),
        )
    ),
    *(
        _spec(
            dg.AssetKey(["bronze", "landing", kind]),
            "waiting_objects",
            "Landing objects not loaded yet stay under LAKEHOUSE_LANDING_MAX_WAITING_OBJECTS, none waiting longer "
            "than LAKEHOUSE_LANDING_MAX_WAIT_MINUTES.",
        )
        for kind in LANDING_KINDS
    ),
]
_DECLARED = {(spec.asset_key, spec.name) for spec in CHECK_SPECS}


def _evaluation(outcome: CheckOutcome) -> dg.AssetCheckEvaluation:
    return dg.AssetCheckEvaluation(
        asset_key=dg.AssetKey(list(outcome.asset)),
        check_name=outcome.check,
        passed=outcome.passed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=outcome.description,
        metadata=outcome.metadata,
    )


def health_evaluations(settings: Settings) -> list[dg.AssetCheckEvaluation]:
    """Measure the lake now and turn every declared lag check into an evaluation."""
    outcomes = lake_health(settings, commits=False).outcomes(settings)
    return [_evaluation(o) for o in outcomes if (dg.AssetKey(list(o.asset)), o.check) in _DECLARED]


@dg.multi_asset_check(specs=CHECK_SPECS, name="lake_health_checks", can_subset=True)
def lake_health_checks(
    context: dg.AssetCheckExecutionContext, lakehouse: LakehouseSettings
) -> Iterator[dg.AssetCheckResult]:
    """The lag checks on demand (the sensor below evaluates them on a timer without a run)."""
    selected = context.selected_asset_check_keys
    for evaluation in health_evaluations(lakehouse.get()):
        if dg.AssetCheckKey(evaluation.asset_key, evaluation.check_name) not in selected:
            continue
        yield dg.AssetCheckResult(
            asset_key=evaluation.asset_key,
            check_name=evaluation.check_name,
            passed=evaluation.passed,
            severity=evaluation.severity,
            description=evaluation.description,
            metadata=evaluation.metadata,
        )


@dg.sensor(
    name="lake_health_sensor",
    minimum_interval_seconds=get_settings().health_check_interval_seconds,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Evaluates the lag checks (slot, consumer lag, dead letters, newest change in silver, landing "
    "objects waiting) and records them as check evaluations, without a run.",
)
def lake_health_sensor(_context: dg.SensorEvaluationContext) -> dg.SensorResult:
    return dg.SensorResult(asset_events=health_evaluations(get_settings()))


def flowing_evaluation(table: str, error: str | None) -> dg.AssetCheckEvaluation:
    """The `flowing` check of a CDC table: failed with the reason while the sink has stopped it."""
    return dg.AssetCheckEvaluation(
        asset_key=bronze_key(table),
        check_name=FLOWING_CHECK,
        passed=error is None,
        severity=dg.AssetCheckSeverity.ERROR,
        description=error or f"the sink applies {table}",
        metadata={"stopped": error is not None},
    )


def stopped_tables(instance: dg.DagsterInstance, tables: tuple[str, ...] = OLTP_TABLES) -> dict[str, str]:
    """Tables whose latest `flowing` evaluation failed (table -> reason): for `lakehouse status`."""
    keys = [dg.AssetCheckKey(bronze_key(table), FLOWING_CHECK) for table in tables]
    latest = instance.event_log_storage.get_latest_asset_check_execution_by_key(keys)
    stopped = {}
    for key, record in latest.items():
        evaluation = record.evaluation if record is not None else None
        if evaluation is not None and not evaluation.passed:
            stopped[key.asset_key.path[-1]] = evaluation.description or "stopped"
    return stopped


defs = dg.Definitions(assets=[replication_slot], asset_checks=[lake_health_checks], sensors=[lake_health_sensor])
