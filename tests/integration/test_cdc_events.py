"""The prod sink service end to end on the local stack: Debezium → Kafka → `orchestration.cdc_events`
(follow mode) → Delta, and every applied batch visible in a Dagster instance as runless
materializations of bronze, silver and (from the history worker) history."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import dagster as dg
from deltalake import DeltaTable

from lakehouse.settings import Settings
from orchestration.cdc_events import follow
from orchestration.defs.cdc import bronze_key, history_key, silver_key
from tests.integration.cdc_support import cdc_environment


def _latest(instance: dg.DagsterInstance, key: dg.AssetKey) -> dg.AssetMaterialization | None:
    event = instance.get_latest_materialization_event(key)
    return None if event is None else event.asset_materialization


def _history_version_with_update(env: object) -> int | None:
    """The history table's version, once it holds the live update (else None)."""
    try:
        found = env.query(  # type: ignore[attr-defined]
            f"select count(*) from {env.delta('history', 'customers')} where email like 'live-%'"  # type: ignore[attr-defined]
        )
    except Exception:  # not created yet
        return None
    if found != [(1,)]:
        return None
    uri = env.config.uri("history", "customers")  # type: ignore[attr-defined]
    return int(DeltaTable(uri, storage_options=env.settings.delta_storage_options).version())  # type: ignore[attr-defined]


def test_sink_service_reports_batches_to_dagster(isolated_settings: Callable[[], Settings]) -> None:
    with (
        cdc_environment(isolated_settings, customers=8, products=3, orders=5) as env,
        dg.instance_for_test() as instance,
    ):
        stop = threading.Event()
        result: list[object] = []
        worker = threading.Thread(
            target=lambda: result.append(
                follow(
                    env.settings, instance.report_runless_asset_event, stop, pace_seconds=0.5, history_check_seconds=1
                )
            ),
            daemon=True,
        )
        worker.start()
        try:
            # the snapshot first, then a change made while the service runs
            deadline = time.monotonic() + 120
            while _latest(instance, silver_key("customers")) is None:
                assert time.monotonic() < deadline, "no materialization of silver/customers from the snapshot"
                time.sleep(0.5)
            env.execute(
                "update shop.customers set email = 'live-' || email "
                "where customer_id = (select min(customer_id) from shop.customers)"
            )
            deadline = time.monotonic() + 120
            while True:
                rows = env.query(f"select count(*) from {env.delta('silver', 'customers')} where email like 'live-%'")
                # The history worker commits on its own schedule, after the batch: the reported
                # version must catch up with the history version that holds the update.
                history = _latest(instance, history_key("customers"))
                in_history = _history_version_with_update(env)
                reported = None if history is None else history.metadata["delta_version"].value  # type: ignore[attr-defined]
                if rows == [(1,)] and in_history is not None and reported == in_history:
                    break
                assert time.monotonic() < deadline, f"silver {rows}, history at {in_history}, reported {reported}"
                time.sleep(0.5)
        finally:
            stop.set()
            worker.join(90)
        assert not worker.is_alive()
        events = instance.fetch_materializations(silver_key("customers"), limit=100).records
        assert len(events) >= 2  # the snapshot batch and the live change, at least
        assert all(record.run_id == "" for record in events)  # runless: no Dagster run per batch
        changes = sum(record.asset_materialization.metadata["changes_applied"].value for record in events)  # type: ignore[union-attr]
        assert changes >= 9  # 8 snapshot rows + 1 update, none lost (at-least-once reporting of counts)
        for key in (bronze_key("customers"), silver_key("customers")):
            metadata = _latest(instance, key).metadata  # type: ignore[union-attr]
            assert metadata["reported_by"].value == "cdc-sink-service"
            assert "positions" in metadata
        assert result and result[0].pending == {}  # type: ignore[attr-defined]
