"""The CDC sensor: it asks for a run exactly for the tables whose topics hold unapplied changes
(detected with partition EOF, not the broker's watermarks), and stays quiet once they are applied."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import dagster as dg
import pytest

from ingestion.cdc.config import SinkConfig
from ingestion.cdc.monitor import tables_with_new_data
from lakehouse import settings as settings_module
from lakehouse.settings import Settings
from orchestration.defs.cdc import bronze_key, cdc_topics_sensor, history_key, silver_key
from tests.integration.cdc_support import CdcEnv, cdc_environment


@pytest.fixture
def cdc(isolated_settings: Callable[[], Settings], monkeypatch: pytest.MonkeyPatch) -> Iterator[CdcEnv]:
    with cdc_environment(isolated_settings, customers=10, products=5, orders=10) as env:
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

    cdc.sink_once(["orders"])
    assert isinstance(_evaluate(result.cursor), dg.SkipReason)
