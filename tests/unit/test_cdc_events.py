"""The prod sink's reporting to Dagster: batches become runless materializations, reporting
failures keep the events for later, pacing waits out the interval."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest

from ingestion.cdc.config import SinkConfig
from ingestion.cdc.sink import SinkReport
from lakehouse.settings import Settings
from orchestration.cdc_events import BatchReporter, Pacer
from orchestration.defs.cdc import bronze_key, history_key, silver_key


def _batch(changes: dict[str, int], seconds: float = 0.5, error: str | None = None) -> SinkReport:
    report = SinkReport(seconds=seconds)
    for table, count in changes.items():
        entry = report.table(table)
        entry.changes = count
        entry.silver_inserted = count
        entry.last_offsets = {0: 100 + count}
        entry.latest_source_ts = datetime.now(UTC) - timedelta(seconds=3)
        entry.error = error
    return report


@pytest.fixture
def settings(tmp_path) -> Settings:  # type: ignore[no-untyped-def]
    return Settings(_env_file=None, state_dir=tmp_path, name_prefix="unit-lakehouse")  # type: ignore[call-arg]


def test_batches_become_materializations_in_the_instance(settings: Settings) -> None:
    config = SinkConfig.from_settings(settings)
    with dg.DagsterInstance.ephemeral() as instance:
        reporter = BatchReporter(settings, config, instance.report_runless_asset_event)
        reporter.on_batch(_batch({"orders": 3, "payments": 2}))
        reporter.on_batch(_batch({"orders": 1}))
        for table in ("orders", "payments"):
            for key in (bronze_key(table), silver_key(table)):
                event = instance.get_latest_materialization_event(key)
                assert event is not None, key
                assert event.run_id == ""  # runless: no Dagster run per batch
        latest = instance.get_latest_materialization_event(silver_key("orders"))
        assert latest is not None and latest.asset_materialization is not None
        metadata = latest.asset_materialization.metadata
        assert metadata["changes_applied"].value == 1
        assert metadata["rows_inserted"].value == 1
        assert metadata["source_change_age_seconds"].value >= 3
        assert instance.get_latest_materialization_event(bronze_key("customers")) is None
        # no history table exists in this lake: nothing is claimed for it
        assert instance.get_latest_materialization_event(history_key("orders")) is None
        assert reporter.written == 6


def test_tables_with_errors_or_no_changes_are_not_reported(settings: Settings) -> None:
    seen: list[dg.AssetMaterialization | dg.AssetCheckEvaluation] = []
    reporter = BatchReporter(settings, SinkConfig.from_settings(settings), seen.append)
    reporter.on_batch(_batch({"orders": 5}, error="incompatible schema change"))
    reporter.on_batch(_batch({"payments": 0}))
    reporter.on_batch(_batch({"orders": 5}, error="incompatible schema change"))
    # no materialization; the stop once, as the failed `flowing` check of bronze/cdc/orders
    assert [(type(e).__name__, e.asset_key.path[-1]) for e in seen] == [("AssetCheckEvaluation", "orders")]
    (stop,) = seen
    assert isinstance(stop, dg.AssetCheckEvaluation)
    assert (stop.check_name, stop.passed, stop.description) == ("flowing", False, "incompatible schema change")


def test_a_table_flowing_again_passes_its_check_once(settings: Settings) -> None:
    seen: list[dg.AssetMaterialization | dg.AssetCheckEvaluation] = []
    reporter = BatchReporter(settings, SinkConfig.from_settings(settings), seen.append)
    reporter.on_batch(_batch({"orders": 5}, error="incompatible schema change"))
    reporter.on_batch(_batch({"orders": 3}))
    reporter.on_batch(_batch({"orders": 2}))
    checks = [(e.passed, e.description) for e in seen if isinstance(e, dg.AssetCheckEvaluation)]
    assert checks == [(False, "incompatible schema change"), (True, "the sink applies orders")]


def test_reporting_failure_keeps_the_counts_for_the_next_batch(settings: Settings) -> None:
    written: list[dg.AssetMaterialization] = []
    down = True

    def report(event: dg.AssetMaterialization) -> None:
        if down:
            raise ConnectionError("dagster database unreachable")
        written.append(event)

    reporter = BatchReporter(settings, SinkConfig.from_settings(settings), report)
    reporter.on_batch(_batch({"orders": 3}))  # must not raise: the sink keeps applying
    reporter.on_batch(_batch({"orders": 4}))
    assert reporter.pending == {bronze_key("orders"): 7, silver_key("orders"): 7}
    down = False
    reporter.on_batch(_batch({"orders": 1}))
    by_key = {event.asset_key: event.metadata for event in written}
    assert by_key[silver_key("orders")]["changes_applied"].value == 8  # nothing lost, nothing doubled
    assert by_key[silver_key("orders")]["batches_since_last_event"].value == 3
    assert reporter.pending == {}


def test_pacer_waits_out_the_interval() -> None:
    stop = threading.Event()
    pacer = Pacer(0.3, stop)
    assert pacer.after_batch(SinkReport(seconds=0.1)) == pytest.approx(0.2)
    assert pacer.after_batch(SinkReport(seconds=5.0)) == 0.0  # a long batch is not delayed further
    stop.set()
    assert Pacer(3600, stop).after_batch(SinkReport(seconds=0.0)) == 3600  # returns at once when stopped
