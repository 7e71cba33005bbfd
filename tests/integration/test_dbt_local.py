"""dbt on the local target over the real S3 emulator: build, partition windows, idempotency, late data.

The lake is the deterministic fixture of tests/fixtures/lake.py (written with delta-rs into this
module's own buckets), dbt runs as a subprocess exactly as by hand or from Dagster, and every mart
figure is reconciled against the fixture's independent Python computation.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest

from lakehouse import duck
from lakehouse.settings import Settings, child_env
from lakehouse.stack import LocalStack
from lakehouse.stack.resources import ensure_resources
from tests.fixtures.lake import (
    DAY1,
    DAY2,
    DAY3,
    DAY4,
    LakeData,
    append_orders,
    bronze_rows,
    change_order_status,
    expected_campaign_performance,
    expected_daily_revenue,
    expected_funnel,
    write_bronze,
    write_lake,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
#: the virtualenv's dbt (as orchestration.dbt_project.DBT_EXECUTABLE; not imported: it parses on import)
DBT_EXECUTABLE = Path(sys.executable).parent / "dbt"

DAILY_MARTS = (
    "fct_orders",
    "fct_order_items",
    "fct_daily_revenue",
    "fct_web_sessions",
    "fct_conversion_funnel_daily",
    "fct_campaign_performance_daily",
)

DATE_COLUMN = {
    "fct_orders": "order_date",
    "fct_order_items": "order_date",
    "fct_daily_revenue": "order_date",
    "fct_web_sessions": "session_date",
    "fct_conversion_funnel_daily": "session_date",
    "fct_campaign_performance_daily": "performance_date",
}

#: one model per .sql file under models/
MODEL_COUNT = len(list((REPO_ROOT / "models").rglob("*.sql")))


@dataclass
class Lake:
    settings: Settings
    data: LakeData
    target_path: Path

    def dbt(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run dbt against this lake (own state dir, target path and logs)."""
        command = [
            str(DBT_EXECUTABLE), *args,
            "--project-dir", str(REPO_ROOT), "--profiles-dir", str(REPO_ROOT), "--target", "local",
            "--target-path", str(self.target_path), "--log-path", str(self.target_path / "logs"),
        ]  # fmt: skip
        result = subprocess.run(
            command,
            env=child_env(self.settings, DBT_SEND_ANONYMOUS_USAGE_STATS="false"),
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if check and result.returncode != 0:
            pytest.fail(f"dbt {' '.join(args)} failed ({result.returncode}):\n{result.stdout[-6000:]}")
        return result

    def run_window(self, min_date: dt.date, max_date: dt.date, lookback_days: int) -> None:
        """What Dagster does for a partition range: the daily marts over [min, max) + lookback (and
        the days restated inside it, which the order marts read from `int_restated_dates`)."""
        window = {"min_date": min_date.isoformat(), "max_date": max_date.isoformat(), "lookback_days": lookback_days}
        self.dbt("run", "--select", "int_restated_dates tag:daily", "--vars", json.dumps(window))

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        """Read the warehouse (views read the lake: the connection has the extensions and secret)."""
        with duck.connect(self.settings, self.settings.duckdb_path, read_only=True) as con:
            return con.sql(sql).fetchall()

    def execute(self, sql: str) -> None:
        with duckdb.connect(str(self.settings.duckdb_path)) as con:
            con.execute(sql)

    def daily_revenue(self) -> dict[dt.date, tuple[Any, ...]]:
        rows = self.query(
            "select order_date, orders, cancelled_orders, customers, items_sold, gross_revenue, net_revenue"
            " from marts.fct_daily_revenue"
        )
        return {row[0]: row[1:] for row in rows}

    def table_hash(self, table: str) -> str:
        """Order-independent hash of a whole mart."""
        rows = sorted(repr(row) for row in self.query(f"select * from marts.{table}"))
        return hashlib.sha256("\n".join(rows).encode()).hexdigest()

    def hashes_by_day(self, table: str) -> dict[dt.date, str]:
        column = DATE_COLUMN[table]
        by_day: dict[dt.date, list[str]] = {}
        with duckdb.connect(str(self.settings.duckdb_path), read_only=True) as con:
            result = con.sql(f"select * from marts.{table}")
            names = [c.lower() for c in result.columns]
            for row in result.fetchall():
                by_day.setdefault(row[names.index(column)], []).append(repr(row))
        return {day: hashlib.sha256("\n".join(sorted(rows)).encode()).hexdigest() for day, rows in by_day.items()}


@pytest.fixture(scope="module")
def lake(local_stack: LocalStack, settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lake]:
    """Own buckets (unique name prefix) and state dir on the session's stack; the fixture lake written."""
    state = tmp_path_factory.mktemp("dbt-state")
    isolated = settings.model_copy(update={"name_prefix": f"t-{uuid.uuid4().hex[:8]}", "state_dir": state})
    ensure_resources(isolated)
    duck.extension_directory(isolated)  # what the Dagster wrapper does before every dbt run
    data = LakeData.build()
    write_lake(isolated, data)
    yield Lake(isolated, data, state / "target")


@pytest.fixture(scope="module")
def built(lake: Lake) -> Lake:
    """`dbt build` without vars (the whole history), once for the module."""
    lake.dbt("build")
    return lake


def _as_revenue_tuple(expected: Any) -> tuple[Any, ...]:
    return (
        expected.orders,
        expected.cancelled_orders,
        expected.customers,
        expected.items_sold,
        expected.gross_revenue,
        expected.net_revenue,
    )


# ---------------------------------------------------------------------------- full build
def test_build_passes_every_model_and_test(built: Lake) -> None:
    results = json.loads((built.target_path / "run_results.json").read_text())["results"]
    statuses = {r["unique_id"]: r["status"] for r in results}
    models = [uid for uid in statuses if uid.startswith("model.")]
    tests = [uid for uid in statuses if uid.startswith("test.")]
    assert len(models) == MODEL_COUNT
    assert len(tests) > 100
    not_ok = {uid: s for uid, s in statuses.items() if s not in ("success", "pass")}
    assert not not_ok, f"models/tests not passing (warnings count too): {not_ok}"


def test_daily_revenue_reconciles_with_python(built: Lake) -> None:
    expected = {day: _as_revenue_tuple(e) for day, e in expected_daily_revenue(built.data).items()}
    assert built.daily_revenue() == expected
    # the tombstoned order 99 (DAY3, 1000.00) is nowhere
    assert built.query("select count(*) from marts.fct_orders where order_id = 99") == [(0,)]
    assert built.query("select count(*) from marts.fct_order_items where order_id = 99") == [(0,)]
    # an order at 23:59:59.5 UTC belongs to its UTC day; one at 00:00:00 to the next
    assert built.query("select order_id, order_date from marts.fct_orders where order_id in (2, 3) order by 1") == [
        (2, DAY1),
        (3, DAY2),
    ]


def test_campaign_performance_and_funnel_reconcile(built: Lake) -> None:
    rows = built.query(
        "select campaign_id, performance_date, spend, attributed_orders, attributed_revenue, roas"
        " from marts.fct_campaign_performance_daily"
    )
    actual = {(c, d): (spend, n, revenue, roas) for c, d, spend, n, revenue, roas in rows}
    expected = expected_campaign_performance(built.data)
    assert set(actual) == set(expected)
    for key, e in expected.items():
        spend, n, revenue, roas = actual[key]
        assert (spend, n, revenue) == (e.spend, e.attributed_orders, e.attributed_revenue), key
        assert roas == pytest.approx(e.roas) if e.roas is not None else roas is None, key
    funnel = built.query(
        "select session_date, sessions, product_view_sessions, add_to_cart_sessions, checkout_sessions,"
        " purchase_sessions from marts.fct_conversion_funnel_daily"
    )
    assert {row[0]: row[1:] for row in funnel} == expected_funnel(built.data)


def test_tombstones_and_duplicates_stay_out(built: Lake) -> None:
    assert built.query("select count(*) from marts.dim_customers where customer_id = 6") == [(0,)]
    assert built.query("select count(*) from marts.dim_customers") == [(5,)]
    # two clickstream events were delivered twice: staging keeps one of each
    raw_events = len(built.data.events) + len(built.data.duplicated_event_ids)
    assert built.query("select count(*) from staging.stg_landing__clickstream") == [(raw_events - 2,)]


def test_docs_generate_and_every_column_is_documented(built: Lake) -> None:
    """`dbt docs generate` works; the catalog's real columns are exactly the documented ones."""
    built.dbt("docs", "generate")
    manifest = json.loads((built.target_path / "manifest.json").read_text())
    catalog = json.loads((built.target_path / "catalog.json").read_text())
    models = {uid: n for uid, n in manifest["nodes"].items() if n["resource_type"] == "model"}
    assert len(models) == MODEL_COUNT
    undocumented = [n["name"] for n in models.values() if not n["description"].strip()]
    assert not undocumented, f"models without description: {undocumented}"
    for uid, node in models.items():
        documented = {c: v["description"].strip() for c, v in node["columns"].items()}
        actual = {c.lower() for c in catalog["nodes"][uid]["columns"]}
        assert set(documented) == actual, f"{node['name']}: documented columns differ from the relation's"
        assert all(documented.values()), f"{node['name']}: columns without description"
    for source in manifest["sources"].values():
        assert source["description"].strip(), source["unique_id"]


# ---------------------------------------------------------------------------- partition windows
# Tests below start from the state the full build left and restore it when they change it.
def test_partition_run_only_touches_its_window(built: Lake) -> None:
    before = {table: built.hashes_by_day(table) for table in DAILY_MARTS}
    try:
        # make every day of every daily mart wrong, then run the DAY3 partition without lookback
        for table in DAILY_MARTS:
            built.execute(f"delete from marts.{table}")
        built.run_window(DAY3, DAY4, lookback_days=0)
        for table in DAILY_MARTS:
            after = built.hashes_by_day(table)
            assert set(after) == {DAY3}, f"{table}: the DAY3 partition wrote {sorted(after)}"
            assert after[DAY3] == before[table][DAY3], f"{table}: DAY3 differs from the full build"
    finally:
        built.dbt("run", "--select", "tag:daily")  # no vars: every day
    assert {t: built.hashes_by_day(t) for t in DAILY_MARTS} == before


def test_rerunning_a_partition_is_idempotent(built: Lake) -> None:
    baseline = {table: built.table_hash(table) for table in DAILY_MARTS}
    # window [DAY2, DAY4): session s3 starts on DAY1 and ends on DAY2, just before the window
    for _ in range(2):
        built.run_window(DAY3, DAY4, lookback_days=1)
        assert {table: built.table_hash(table) for table in DAILY_MARTS} == baseline
    assert built.query("select count(*), count(distinct session_id) from marts.fct_web_sessions") == [(7, 7)]


def test_bad_window_vars_fail_clearly(built: Lake) -> None:
    window = '{"min_date": "2026-03-04", "max_date": "2026-03-01"}'
    result = built.dbt("run", "--select", "fct_daily_revenue", "--vars", window, check=False)
    assert result.returncode != 0
    assert "must be before max_date" in result.stdout


# ---------------------------------------------------------------------------- through Dagster
def test_dagster_partition_run_builds_the_window(built: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    """The @dbt_assets op end to end: partition -> dbt build --vars, materializations, asset checks."""
    import dagster as dg

    from orchestration.defs import dbt as dbt_defs

    monkeypatch.setattr(dbt_defs, "get_settings", lambda: built.settings)
    before = built.daily_revenue()
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        [dbt_defs.dbt_lakehouse],
        partition_key=DAY3.isoformat(),
        resources={"dbt": dbt_defs.dbt_resource(built.settings)},
        instance=instance,
    )
    assert result.success
    materialized = {
        event.asset_key.to_user_string(): event.partition
        for event in result.get_asset_materialization_events()
        if event.asset_key
    }
    assert len(materialized) == MODEL_COUNT
    assert materialized["marts/fct_daily_revenue"] == DAY3.isoformat()
    checks = result.get_asset_check_evaluations()
    assert len(checks) > 100
    failed = [c.check_name for c in checks if not c.passed]
    assert not failed, failed
    logged = "\n".join(entry.user_message for entry in instance.all_logs(result.run_id))
    assert '"min_date": "2026-03-03", "max_date": "2026-03-04", "lookback_days": 2' in logged
    assert built.daily_revenue() == before  # same data, same figures


# ---------------------------------------------------------------------------- late-arriving data (last: mutates)
def test_late_arriving_order_is_picked_up_by_the_lookback(built: Lake) -> None:
    before = built.daily_revenue()
    late = built.data.add_late_order()  # placed on DAY2, lands now
    append_orders(built.settings, built.data, [late])
    expected = {day: _as_revenue_tuple(e) for day, e in expected_daily_revenue(built.data).items()}
    assert expected[DAY2] != before[DAY2]

    # the DAY4 partition without lookback leaves DAY2 as it was...
    built.run_window(DAY4, DAY4 + dt.timedelta(days=1), lookback_days=0)
    assert built.daily_revenue()[DAY2] == before[DAY2]
    # ...with the default lookback of 2 days the DAY4 partition rebuilds DAY2..DAY4
    built.run_window(DAY4, DAY4 + dt.timedelta(days=1), lookback_days=2)
    assert built.daily_revenue() == expected
    assert built.query(
        "select attributed_orders, attributed_revenue from marts.fct_campaign_performance_daily"
        f" where campaign_id = 'cmp_000002' and performance_date = date '{DAY2}'"
    ) == [(2, Decimal("276.00"))]
    assert built.query("select count(*) from marts.fct_order_items where order_id = 8") == [(1,)]


def test_a_change_older_than_the_lookback_is_restated(built: Lake) -> None:
    """An order of DAY1 is cancelled on DAY4 (its rows reach silver then): the DAY4 partition
    rebuilds DAY1 too, however short the lookback, and leaves the days in between alone."""
    order = next(o for o in built.data.orders if o.order_date == DAY1 and o.counts_as_revenue and not o.deleted)
    before = built.daily_revenue()
    untouched = built.hashes_by_day("fct_orders")[DAY3]
    change_order_status(
        built.settings, built.data, order.order_id, "cancelled", dt.datetime.combine(DAY4, dt.time(9), dt.UTC)
    )
    expected = {day: _as_revenue_tuple(e) for day, e in expected_daily_revenue(built.data).items()}
    assert expected[DAY1] != before[DAY1]

    built.run_window(DAY4, DAY4 + dt.timedelta(days=1), lookback_days=0)
    assert built.daily_revenue() == expected
    assert built.query(f"select order_status from marts.fct_orders where order_id = {order.order_id}") == [
        ("cancelled",)
    ]
    assert built.hashes_by_day("fct_orders")[DAY3] == untouched
    assert built.query("select restated_date from intermediate.int_restated_dates") == [(DAY1,)]
    # rebuilding again changes nothing, and a partition whose window saw no change restates nothing
    built.run_window(DAY4, DAY4 + dt.timedelta(days=1), lookback_days=0)
    assert built.daily_revenue() == expected
    built.run_window(DAY3, DAY3 + dt.timedelta(days=1), lookback_days=0)
    assert built.query("select count(*) from intermediate.int_restated_dates") == [(0,)]
    assert built.daily_revenue() == expected


def test_a_corrected_landing_file_replaces_its_earlier_version(built: Lake) -> None:
    """A clickstream object re-uploaded with new content (new ETag, a later dlt load) replaces its
    earlier version in staging; a partner feed dated ahead hides no other partner's offers."""
    key = f"clickstream/dt={DAY1}/events-a.json.gz"
    before = built.query(f"select event_id from staging.stg_landing__clickstream where object_key = '{key}' order by 1")
    assert len(before) > 1
    kept = next(row for row in bronze_rows(built.data)[("landing", "clickstream")] if row["event_id"] == before[0][0])
    write_bronze(
        built.settings,
        ("landing", "clickstream"),
        [kept | {"_object_etag": "etag-corrected", "_line_number": 1, "_dlt_load_id": "1772999999.000001"}],
        append=True,
    )
    assert built.query(f"select event_id from staging.stg_landing__clickstream where object_key = '{key}'") == [
        before[0]
    ]

    offers = "select sku, partner_offers from intermediate.int_products__partner_prices order by sku"
    baseline = built.query(offers)
    future = bronze_rows(built.data)[("landing", "partner_feeds")][-1] | {
        "partner_id": "partner_003",
        "feed_date": DAY4 + dt.timedelta(days=10),
        "_object_key": "partner_feeds/partner_003/dt=2026-03-14/feed.csv",
        "_dlt_load_id": "1772999999.000002",
    }
    write_bronze(built.settings, ("landing", "partner_feeds"), [future], append=True)
    after = dict(built.query(offers))
    assert after[future["sku"]] == dict(baseline)[future["sku"]] + 1
    assert {sku: n for sku, n in after.items() if sku != future["sku"]} == {
        sku: n for sku, n in baseline if sku != future["sku"]
    }
