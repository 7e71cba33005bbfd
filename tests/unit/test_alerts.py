"""The alert sensor against real Dagster events (a temporary instance, real runs and checks):
one notification per incident, one when it clears, retried runs told once, channels from settings."""

from __future__ import annotations

import time
from collections.abc import Iterator

import dagster as dg
import pytest
from dagster._core.definitions.freshness import FreshnessState, FreshnessStateChange
from dagster._core.storage.tags import WILL_RETRY_TAG

from lakehouse.notify import Notification
from lakehouse.settings import Settings
from orchestration.defs.alerts import evaluate_alerts

BROKEN = {"flag": True}


@dg.asset(partitions_def=dg.DailyPartitionsDefinition("2026-01-01"))
def daily_orders() -> None:
    if BROKEN["flag"]:
        raise RuntimeError("backfill failed: connection reset\nTraceback (most recent call last): ...")


@dg.asset(check_specs=[dg.AssetCheckSpec("not_null", asset="orders_mart")])
def orders_mart() -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    yield dg.MaterializeResult()
    yield dg.AssetCheckResult(
        check_name="not_null",
        passed=not BROKEN["flag"],
        severity=dg.AssetCheckSeverity.ERROR,
        description="3 rows with a null order_id" if BROKEN["flag"] else "no nulls",
    )


@dg.asset(check_specs=[dg.AssetCheckSpec("soft", asset="warned")])
def warned() -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    yield dg.MaterializeResult()
    yield dg.AssetCheckResult(check_name="soft", passed=False, severity=dg.AssetCheckSeverity.WARN)


@dg.asset(check_specs=[dg.AssetCheckSpec("blocking_test", asset="tested", blocking=True)])
def tested() -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    yield dg.MaterializeResult()
    yield dg.AssetCheckResult(
        check_name="blocking_test",
        passed=not BROKEN["flag"],
        severity=dg.AssetCheckSeverity.ERROR,
        description="dbt test failed",
    )
    if BROKEN["flag"]:
        raise RuntimeError("dbt build exited 1")


LAG_CHECK = dg.AssetCheckKey(dg.AssetKey(["bronze", "cdc", "orders"]), "consumer_lag")
CHECK_KEYS = [
    *dg.Definitions(assets=[orders_mart, warned, tested]).resolve_asset_graph().asset_check_keys,
    LAG_CHECK,
]
SETTINGS = Settings(_env_file=None, dagster_ui_url="http://ui.example:3000")  # type: ignore[call-arg]


class Alerts:
    """The sensor's evaluation step by step, with its cursor carried between ticks."""

    def __init__(self, instance: dg.DagsterInstance) -> None:
        self.instance = instance
        self.cursor: str | None = None
        self.sent: list[Notification] = []

    def tick(self) -> list[Notification]:
        found, self.cursor = evaluate_alerts(self.instance, self.cursor, SETTINGS, CHECK_KEYS)
        self.sent += found
        return found


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    BROKEN["flag"] = True
    with dg.instance_for_test() as instance:
        yield instance


def _materialize(
    instance: dg.DagsterInstance, asset: dg.AssetsDefinition, **kwargs: object
) -> dg.ExecuteInProcessResult:
    return dg.materialize([asset], instance=instance, raise_on_error=False, **kwargs)  # type: ignore[arg-type]


def test_failed_backfill_partition_is_told_once_and_cleared_once(instance: dg.DagsterInstance) -> None:
    alerts = Alerts(instance)
    assert alerts.tick() == []
    first = _materialize(instance, daily_orders, partition_key="2026-01-02")
    _materialize(instance, daily_orders, partition_key="2026-01-02")  # fails again: same incident
    (fired,) = alerts.tick()
    assert (fired.kind, fired.status, fired.asset, fired.partition) == (
        "run_failure",
        "firing",
        "daily_orders",
        "2026-01-02",
    )
    assert fired.run_id == first.run_id
    assert fired.error is not None and fired.error.endswith("backfill failed: connection reset")
    assert fired.url == f"http://ui.example:3000/runs/{first.run_id}"
    assert alerts.tick() == []
    _materialize(instance, daily_orders, partition_key="2026-01-03")  # another partition: another incident
    (other,) = alerts.tick()
    assert other.partition == "2026-01-03"
    BROKEN["flag"] = False
    _materialize(instance, daily_orders, partition_key="2026-01-02")
    (cleared,) = alerts.tick()
    assert (cleared.status, cleared.incident, cleared.partition) == ("resolved", fired.incident, "2026-01-02")
    assert alerts.tick() == []


def test_a_run_that_will_be_retried_is_not_told(instance: dg.DagsterInstance) -> None:
    alerts = Alerts(instance)
    alerts.tick()
    result = _materialize(instance, daily_orders, partition_key="2026-01-05", tags={WILL_RETRY_TAG: "true"})
    instance.add_run_tags(result.run_id, {WILL_RETRY_TAG: "true"})
    assert alerts.tick() == []


def test_error_check_told_once_warn_never_and_a_failed_run_not_twice(instance: dg.DagsterInstance) -> None:
    alerts = Alerts(instance)
    alerts.tick()
    _materialize(instance, orders_mart)
    _materialize(instance, orders_mart)
    _materialize(instance, warned)
    _materialize(instance, tested)  # check fails and the run fails: one incident, the check
    fired = alerts.tick()
    assert sorted((n.kind, n.asset, n.status) for n in fired) == [
        ("check_failed", "orders_mart", "firing"),
        ("check_failed", "tested", "firing"),
    ]
    mart = next(n for n in fired if n.asset == "orders_mart")
    assert (
        mart.error == "3 rows with a null order_id"
        and mart.url == "http://ui.example:3000/assets/orders_mart?view=checks"
    )
    assert mart.run_id is not None
    assert "its run failed" in next(n.title for n in fired if n.asset == "tested")
    BROKEN["flag"] = False
    _materialize(instance, orders_mart)
    _materialize(instance, tested)
    cleared = alerts.tick()
    assert sorted((n.asset, n.status) for n in cleared) == [("orders_mart", "resolved"), ("tested", "resolved")]
    assert alerts.tick() == []


def test_runless_check_evaluations_and_freshness_changes(instance: dg.DagsterInstance) -> None:
    alerts = Alerts(instance)
    alerts.tick()
    lag = {
        "asset_key": dg.AssetKey(["bronze", "cdc", "orders"]),
        "check_name": "consumer_lag",
        "severity": dg.AssetCheckSeverity.ERROR,
    }
    for _ in range(3):  # the health sensor reports the same failure every pass
        instance.report_runless_asset_event(
            dg.AssetCheckEvaluation(passed=False, description="12000 records not in the lake", **lag)
        )  # type: ignore[arg-type]
    key = dg.AssetKey(["silver", "orders"])
    instance._report_runless_asset_event(
        FreshnessStateChange(
            key=key,
            previous_state=FreshnessState.PASS,
            new_state=FreshnessState.FAIL,
            state_change_timestamp=time.time(),
        )
    )
    fired = alerts.tick()
    assert sorted((n.kind, n.asset) for n in fired) == [
        ("check_failed", "bronze/cdc/orders"),
        ("freshness", "silver/orders"),
    ]
    assert all(n.run_id is None for n in fired)
    instance.report_runless_asset_event(dg.AssetCheckEvaluation(passed=True, description="0 records", **lag))  # type: ignore[arg-type]
    instance._report_runless_asset_event(
        FreshnessStateChange(
            key=key,
            previous_state=FreshnessState.FAIL,
            new_state=FreshnessState.PASS,
            state_change_timestamp=time.time(),
        )
    )
    cleared = alerts.tick()
    assert sorted((n.kind, n.status) for n in cleared) == [("check_failed", "resolved"), ("freshness", "resolved")]


def test_events_before_the_first_lookback_are_not_replayed(instance: dg.DagsterInstance) -> None:
    _materialize(instance, orders_mart)
    found, cursor = evaluate_alerts(instance, None, SETTINGS, CHECK_KEYS, now=time.time() + 7200)
    assert found == []
    assert evaluate_alerts(instance, cursor, SETTINGS, CHECK_KEYS)[0] == []
