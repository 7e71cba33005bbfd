"""Silver rebuild on the real stack: PostgreSQL → Debezium → Kafka → sink → bronze, then the Dagster
asset rebuilds silver and history from bronze through Dagster Pipes (the local subprocess path), and
the incremental sink carries on from exactly where the rebuild stopped.

"Correct" means: silver equals PostgreSQL row by row (`compare_table`), silver and history equal what
the incremental sink had built before they were damaged, each table records bronze's offsets, and
later changes are applied once (no duplicate, no gap).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import dagster as dg
import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable

import orchestration.resources
from ingestion.cdc.lake import DeltaStore
from ingestion.cdc.sink import SinkReport
from ingestion.cdc.verify import compare_table
from lakehouse.settings import Settings, child_env
from lakehouse.synthetic.entities import generate
from orchestration.defs import emr
from orchestration.defs.cdc import history_key, silver_key
from orchestration.resources import LakehouseSettings
from tests.integration.cdc_support import CdcEnv, cdc_environment

TABLE = "orders"


class Env(CdcEnv):
    """The shared CDC environment, focused on one table's lake layers."""

    def sink(self) -> SinkReport:
        return self.sink_once([TABLE])

    def sink_until_consistent(self, timeout: float = 60) -> None:
        self.wait_consistent((TABLE,), timeout=timeout)

    @property
    def store(self) -> DeltaStore:
        return DeltaStore(self.config.storage_options)

    def table(self, layer: str) -> DeltaTable:
        found = self.store.open(self.config.uri(layer, TABLE))  # type: ignore[arg-type]
        assert found is not None, f"{layer} {TABLE} does not exist"
        return found

    def rows(self, layer: str) -> list[dict]:
        data = self.table(layer).to_pyarrow_table()
        keep = [c for c in data.column_names if c != "_cdc_updated_at"]
        return sorted(data.select(keep).to_pylist(), key=lambda r: (r["order_id"], r["_cdc_lsn"]))

    def progress(self, layer: str) -> dict[str, int | None]:
        table = self.table(layer)
        topic = self.config.topic(TABLE)
        return {app: table.transaction_version(app) for app in [self.config.txn_app_id(topic, 0)]}


@pytest.fixture
def env(isolated_settings: Callable[[], Settings]) -> Iterator[Env]:
    with cdc_environment(isolated_settings, customers=20, products=10, orders=60, seed=3, env_class=Env) as shared:
        yield shared


def _materialize_rebuild(env: Env, monkeypatch: pytest.MonkeyPatch) -> dg.ExecuteInProcessResult:
    """The local path exactly as the code location wires it: the switch picks the subprocess client."""
    monkeypatch.setattr(orchestration.resources, "get_settings", lambda: env.settings)
    definitions = emr.rebuild_definitions(env.settings)
    client = emr.silver_rebuild_pipes_client(env.settings)
    assert isinstance(client, dg.PipesSubprocessClient)
    return dg.materialize(
        [definitions.get_assets_def(emr.rebuild_key(TABLE))],
        resources={"lakehouse": LakehouseSettings(environment="local"), emr.RESOURCE_KEY: client},
    )


def test_rebuild_restores_silver_and_history_and_the_sink_continues(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    env.sink_until_consistent()
    env.execute("update shop.orders set status = 'cancelled' where order_id in (1, 2, 3)")
    env.execute("delete from shop.payments where order_id = 4")
    env.execute("delete from shop.order_items where order_id = 4")
    env.execute("delete from shop.orders where order_id = 4")
    env.sink_until_consistent()
    silver_before, history_before = env.rows("silver"), env.rows("history")
    bronze_progress = env.progress("bronze")
    assert env.progress("silver") == bronze_progress

    # damage: rows lost and values changed in silver, history gone entirely
    silver = env.table("silver")
    silver.delete("order_id <= 10")
    silver.update(updates={"status": "'corrupted'"}, predicate="order_id between 20 and 25")
    assert not compare_table(env.settings, TABLE).equal
    assert env.store.delete_table(env.config.uri("history", TABLE))

    result = _materialize_rebuild(env, monkeypatch)

    assert result.success
    materialized = {m.asset_key: m for m in result.asset_materializations_for_node("silver__rebuild__orders")}
    assert set(materialized) == {emr.rebuild_key(TABLE), silver_key(TABLE), history_key(TABLE)}
    metadata: dict[str, Any] = {k: v.value for k, v in materialized[emr.rebuild_key(TABLE)].metadata.items()}
    assert metadata["table"] == TABLE
    assert metadata["live_rows"] == 59 and metadata["tombstones"] == 1 and metadata["silver_rows"] == 60
    assert metadata["history_versions"] == len(history_before)
    assert metadata["partitions"] >= 1 and metadata["duration_seconds"] > 0
    assert metadata["bronze_offsets"] == bronze_progress
    assert metadata["silver_delta_version"] == env.table("silver").version()
    assert metadata["history_delta_version"] == env.table("history").version() == 0

    assert compare_table(env.settings, TABLE).equal
    assert env.rows("silver") == silver_before, "the rebuild gives exactly what the incremental sink gave"
    assert env.rows("history") == history_before
    assert env.table("silver").metadata().partition_columns == ["_cdc_partition"]
    assert env.progress("silver") == env.progress("history") == bronze_progress

    # without Pipes (an operator's shell): same job, JSON summary on stdout, same result again
    cli = subprocess.run(
        [sys.executable, "-m", "ingestion.jobs.rebuild_silver", "--table", TABLE],
        env=child_env(env.settings),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert cli.returncode == 0, cli.stderr
    summary = json.loads(cli.stdout)
    assert summary["live_rows"] == 59 and summary["offsets"] == bronze_progress
    assert summary["silver_version"] == metadata["silver_delta_version"] + 1
    assert env.rows("silver") == silver_before and env.rows("history") == history_before

    # the incremental sink has nothing to redo ...
    silver_version = env.table("silver").version()
    report = env.sink()
    assert report.tables.get(TABLE) is None or report.tables[TABLE].silver_inserted == 0
    assert env.table("silver").version() == silver_version

    # ... and applies later changes once, from the offsets the rebuild recorded
    bronze_rows = env.table("bronze").to_pyarrow_table().num_rows
    env.execute("update shop.orders set status = 'shipped' where order_id between 30 and 34")
    env.execute("delete from shop.payments where order_id = 40")
    env.execute("delete from shop.order_items where order_id = 40")
    env.execute("delete from shop.orders where order_id = 40")
    generate(env.settings, "orders", 5, seed=4)
    env.sink_until_consistent()
    new_changes = env.table("bronze").to_pyarrow_table().num_rows - bronze_rows
    assert new_changes >= 11
    history = env.table("history").to_pyarrow_table()
    assert history.num_rows == len(history_before) + new_changes, "each new change is one history version"
    versions = history.group_by(["order_id", "_cdc_lsn"]).aggregate([([], "count_all")])
    assert max(versions.column("count_all").to_pylist()) == 1, "history holds a version twice"
    current = history.filter(pc.field("is_current")).group_by("order_id").aggregate([([], "count_all")])
    assert max(current.column("count_all").to_pylist()) == 1
    assert env.progress("silver") == env.progress("history") == env.progress("bronze")
