"""The CDC sensor: it asks for a run exactly for the tables whose topics hold unapplied changes
(detected with partition EOF, not the broker's watermarks) or whose silver/history is behind
bronze, and stays quiet once they are applied."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import replace

import dagster as dg
import pytest

from ingestion.cdc.config import SinkConfig
from ingestion.cdc.monitor import tables_with_new_data
from ingestion.cdc.sink import CdcSink
from lakehouse import settings as settings_module
from lakehouse.settings import Settings
from orchestration.defs.cdc import bronze_key, cdc_sink, cdc_topics_sensor, history_key, silver_key
from orchestration.resources import LakehouseSettings
from tests.integration.cdc_support import TRANSPORTS, CdcEnv, cdc_environment


@pytest.fixture
def cdc(
    isolated_settings: Callable[[], Settings], monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Iterator[CdcEnv]:
    """Kafka unless the test is parametrized over `TRANSPORTS` (indirect)."""
    transport = getattr(request, "param", "kafka")
    with cdc_environment(isolated_settings, customers=10, products=5, orders=10, transport=transport) as env:
        for key, value in env.settings.to_env().items():
            monkeypatch.setenv(key, value)
        settings_module.get_settings.cache_clear()
        yield env
    settings_module.get_settings.cache_clear()


def _evaluate(cursor: str | None) -> dg.SensorResult | dg.SkipReason:
    from orchestration.definitions import defs

    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(cursor=cursor, instance=instance, definitions=defs)
        return cdc_topics_sensor(context)  # type: ignore[return-value]


@pytest.mark.parametrize("cdc", TRANSPORTS, indirect=True)
def test_sensor_requests_runs_for_tables_with_new_changes_only(cdc: CdcEnv) -> None:
    cdc.wait_consistent()
    assert tables_with_new_data(SinkConfig.from_settings(cdc.settings)) == {}
    assert isinstance(_evaluate(None), dg.SkipReason)

    cdc.execute("update shop.orders set status = 'paid' where order_id = 1")
    deadline = time.monotonic() + 60
    while not tables_with_new_data(SinkConfig.from_settings(cdc.settings)) and time.monotonic() < deadline:
        time.sleep(1)
    result = _evaluate(None)
    assert isinstance(result, dg.SensorResult), result
    (request,) = result.run_requests or []
    assert set(request.asset_selection or []) == {bronze_key("orders"), silver_key("orders"), history_key("orders")}
    # the same pending changes do not launch a second run
    again = _evaluate(result.cursor)
    assert isinstance(again, dg.SkipReason)

    # the requested run: the CDC assets of orders, materialized by Dagster on this transport
    materialized = dg.materialize(
        [cdc_sink],
        selection=list(request.asset_selection or []),
        resources={"lakehouse": LakehouseSettings(environment="local")},
    )
    assert materialized.success
    events = {m.asset_key: m.metadata for m in materialized.asset_materializations_for_node("cdc_sink")}
    assert set(events) == {bronze_key("orders"), silver_key("orders"), history_key("orders")}
    assert events[bronze_key("orders")]["changes_applied"].value >= 1
    positions = "kinesis_shard_offsets" if cdc.kinesis else "kafka_offsets"
    assert positions in events[bronze_key("orders")], events[bronze_key("orders")]
    assert isinstance(_evaluate(result.cursor), dg.SkipReason)


def test_sensor_repairs_silver_and_history_left_behind_bronze(cdc: CdcEnv) -> None:
    cdc.wait_consistent()
    config = SinkConfig.from_settings(cdc.settings)
    cdc.execute("update shop.customers set email = 'moved@example.invalid' where customer_id = 2")
    # a run killed between the bronze and the silver commits: bronze has the change, Kafka nothing new
    deadline = time.monotonic() + 60
    while "customers" not in tables_with_new_data(config) and time.monotonic() < deadline:
        time.sleep(1)
    with CdcSink(replace(config, downstream=False)) as bronze_only:
        assert bronze_only.run_once(["customers"]).tables["customers"].changes >= 1
    assert not cdc.query(f"select 1 from {cdc.delta('silver', 'customers')} where email = 'moved@example.invalid'"), (
        "silver must still be behind for this test"
    )

    pending = tables_with_new_data(config)
    assert set(pending) == {"customers"}, pending
    result = _evaluate(None)
    assert isinstance(result, dg.SensorResult), result
    (request,) = result.run_requests or []
    assert set(request.asset_selection or []) == {
        bronze_key("customers"),
        silver_key("customers"),
        history_key("customers"),
    }

    cdc.sink_once(["customers"])  # what the requested run does: repair from bronze
    assert tables_with_new_data(config) == {}
    assert isinstance(_evaluate(result.cursor), dg.SkipReason)
    assert cdc.query(
        f"select count(*) from {cdc.delta('history', 'customers')} where email = 'moved@example.invalid' and is_current"
    ) == [(1,)]
