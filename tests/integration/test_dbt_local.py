"""dbt on the local target over the real S3 emulator: build, partition windows, idempotency, late data.

The lake is the deterministic fixture of tests/fixtures/lake.py (written with delta-rs into this
module's own buckets), dbt runs as a subprocess exactly as by hand or from Dagster, and every mart
figure is reconciled against the fixture's independent Python computation.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import httpx
import psutil
import pytest

from lakehouse import duck
from lakehouse.dbt_docs import docs_target_path
from lakehouse.settings import Settings, child_env
from lakehouse.stack import LocalStack
from lakehouse.stack.process import free_port
from lakehouse.stack.resources import ensure_resources
from tests.fixtures.lake import (
    DAY1,
    DAY2,
    DAY3,
    DAY4,
    DAY5,
    DAY6,
    FIRST_PARTITION,
    PRE_PARTITION_DAY,
    Event,
    LakeData,
    ObjectVersion,
    Session,
    append_orders,
    bronze_rows,
    change_order_status,
    expected_campaign_performance,
    expected_daily_revenue,
    expected_funnel,
    expected_lifetime_revenue,
    expected_sessions,
    iso,
    landing_object,
    object_key,
    restate_ad_spend,
    write_bronze,
    write_clickstream,
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

#: which days of int_restated_dates each daily mart rebuilds besides its window (restated_for)
RESTATED_FOR = {
    "fct_orders": ("orders",),
    "fct_order_items": ("orders",),
    "fct_daily_revenue": ("orders",),
    "fct_web_sessions": ("clickstream",),
    "fct_conversion_funnel_daily": ("clickstream",),
    "fct_campaign_performance_daily": ("orders", "ad_spend"),
}

DATE_COLUMN = {
    "fct_orders": "order_date",
    "fct_order_items": "order_date",
    "fct_daily_revenue": "order_date",
    "fct_web_sessions": "session_date",
    "fct_conversion_funnel_daily": "session_date",
    "fct_campaign_performance_daily": "performance_date",
}

#: one model per .sql file under models/, one seed per .csv under seeds/
MODEL_COUNT = len(list((REPO_ROOT / "models").rglob("*.sql")))
SEED_COUNT = len(list((REPO_ROOT / "seeds").glob("*.csv")))


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

    def restated(self, kinds: tuple[str, ...]) -> set[dt.date]:
        """The earlier days the last run rebuilt for these kinds (int_restated_dates)."""
        listed = ", ".join(f"'{kind}'" for kind in kinds)
        rows = self.query(f"select restated_date from intermediate.int_restated_dates where restated_for in ({listed})")
        return {row[0] for row in rows}

    def sessions(self) -> dict[str, Session]:
        rows = self.query(
            "select session_id, session_date, started_at, ended_at, events, deepest_stage from marts.fct_web_sessions"
        )
        return {row[0]: Session(*row[1:]) for row in rows}

    def funnel(self) -> dict[dt.date, tuple[Any, ...]]:
        rows = self.query(
            "select session_date, sessions, product_view_sessions, add_to_cart_sessions, checkout_sessions,"
            " purchase_sessions from marts.fct_conversion_funnel_daily"
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


def _wait_for_http(url: str, process: subprocess.Popen[bytes], timeout: float) -> str:
    """GET `url` once it answers 200, while `process` (which serves it) is alive."""
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            output = process.stdout.read().decode(errors="replace") if process.stdout else ""
            pytest.fail(f"the server exited ({process.returncode}) before {url} answered:\n{output[-4000:]}")
        try:
            response = httpx.get(url, timeout=5)
            if response.status_code == 200:
                return response.text
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"{url} did not answer within {timeout} s")
        time.sleep(1)


# ---------------------------------------------------------------------------- full build
def test_build_passes_every_model_and_test(built: Lake) -> None:
    results = json.loads((built.target_path / "run_results.json").read_text())["results"]
    statuses = {r["unique_id"]: r["status"] for r in results}
    models = [uid for uid in statuses if uid.startswith("model.")]
    tests = [uid for uid in statuses if uid.startswith("test.")]
    unit_tests = {uid.split(".")[-1] for uid in statuses if uid.startswith("unit_test.")}
    assert len(models) == MODEL_COUNT
    assert len(tests) > 100
    assert {
        "restated_dates_follow_arrival_in_the_lake",
        "sessions_are_dated_by_their_first_event_and_seen_whole",
        "funnel_counts_a_session_at_every_stage_up_to_its_deepest",
        "roas_counts_net_revenue_in_usd_against_converted_spend",
    } <= unit_tests
    not_ok = {uid: s for uid, s in statuses.items() if s not in ("success", "pass")}
    assert not not_ok, f"models/tests not passing (warnings count too): {not_ok}"


def test_daily_revenue_reconciles_with_python(built: Lake) -> None:
    expected = {day: _as_revenue_tuple(e) for day, e in expected_daily_revenue(built.data).items()}
    assert expected[DAY5] == (0, 0, 0, 0, Decimal("0.00"), Decimal("0.00"))  # the spine: a day without orders
    assert built.daily_revenue() == expected
    # the tombstoned order 99 (DAY3, 1000.00) is nowhere
    assert built.query("select count(*) from marts.fct_orders where order_id = 99") == [(0,)]
    assert built.query("select count(*) from marts.fct_order_items where order_id = 99") == [(0,)]
    # an order at 23:59:59.5 UTC belongs to its UTC day; one at 00:00:00 to the next
    assert built.query("select order_id, order_date from marts.fct_orders where order_id in (2, 3) order by 1") == [
        (2, DAY1),
        (3, DAY2),
    ]


def test_amounts_in_other_currencies_are_converted_at_their_days_rate(built: Lake) -> None:
    """Orders and spend in EUR or GBP are converted with currency_rates at the rate valid on their
    own day before anything is summed; the order keeps its own currency and total too."""
    foreign = [o for o in built.data.live_orders if o.currency != "USD"]
    assert {o.currency for o in foreign} == {"EUR", "GBP"}
    rows = built.query(
        "select order_id, currency, order_total, order_total_usd from marts.fct_orders where currency <> 'USD'"
    )
    assert sorted(rows) == sorted((o.order_id, o.currency, o.total, o.total_usd) for o in foreign)
    lifetime = dict(built.query("select customer_id, lifetime_revenue from marts.dim_customers"))
    assert lifetime == expected_lifetime_revenue(built.data) | {3: Decimal("0.00")}


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
    assert built.funnel() == expected_funnel(built.data)
    assert built.sessions() == expected_sessions(built.data)


def test_tombstones_and_duplicates_stay_out(built: Lake) -> None:
    assert built.query("select count(*) from marts.dim_customers where customer_id = 6") == [(0,)]
    assert built.query("select count(*) from marts.dim_customers") == [(5,)]
    # two clickstream events were delivered twice (in a second object): staging has every bronze
    # row, the events model keeps one of each
    raw_events = len(built.data.events) + len(built.data.duplicated_event_ids)
    assert built.query("select count(*) from staging.stg_landing__clickstream") == [(raw_events,)]
    events = built.query("select event_id from intermediate.int_clickstream__events order by 1")
    assert events == sorted((e.event_id,) for e in built.data.events)


def test_lakehouse_docs_serves_the_documentation_and_every_column_is_documented(built: Lake) -> None:
    """`lakehouse docs` generates dbt's documentation of the warehouse and serves it on 127.0.0.1
    only; the catalog's real columns are exactly the documented ones."""
    port = free_port()
    cli = subprocess.Popen(
        [str(DBT_EXECUTABLE.parent / "lakehouse"), "docs", "--port", str(port)],
        env=child_env(built.settings),
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # the CLI and the dbt server it starts: stopped together below
    )
    try:
        page = _wait_for_http(f"http://127.0.0.1:{port}/", cli, timeout=600)
        assert "dbt" in page.lower()
        served_catalog = json.loads(_wait_for_http(f"http://127.0.0.1:{port}/catalog.json", cli, timeout=30))
        listening = {
            c.laddr.ip
            for p in [psutil.Process(cli.pid), *psutil.Process(cli.pid).children(recursive=True)]
            for c in p.net_connections(kind="tcp")
            if c.status == psutil.CONN_LISTEN and c.laddr.port == port
        }
        assert listening == {"127.0.0.1"}
    finally:
        os.killpg(cli.pid, signal.SIGTERM)
        cli.wait(timeout=30)
    site = docs_target_path(built.settings)
    assert (site / "static_index.html").is_file()  # the whole site in one file, no server needed
    manifest = json.loads((site / "manifest.json").read_text())
    catalog = json.loads((site / "catalog.json").read_text())
    assert served_catalog["nodes"].keys() == catalog["nodes"].keys()
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
        # DAY2's landing file arrived after midnight (on DAY3): the clickstream marts rebuild the days
        # it covers with their neighbours; nothing else of the lake arrived late
        assert built.restated(("orders", "ad_spend")) == set()
        assert built.restated(("clickstream",)) == {DAY1, DAY2}
        for table in DAILY_MARTS:
            after = built.hashes_by_day(table)
            written = {DAY3} | built.restated(RESTATED_FOR[table])
            assert set(after) == written & set(before[table]), f"{table}: the DAY3 partition wrote {sorted(after)}"
            for day in after:
                assert after[day] == before[table][day], f"{table}: {day} differs from the full build"
        # the first partition's run has no start: orders placed before the lake's first day (order
        # 10, PRE_PARTITION_DAY) reach the facts too, not only the dimensions
        built.run_window(FIRST_PARTITION, FIRST_PARTITION + dt.timedelta(days=1), lookback_days=2)
        assert built.query(f"select order_id from marts.fct_orders where order_date < date '{FIRST_PARTITION}'") == [
            (10,)
        ]
        for table in ("fct_orders", "fct_order_items", "fct_daily_revenue"):
            after = built.hashes_by_day(table)
            early = {day: digest for day, digest in before[table].items() if day <= FIRST_PARTITION}
            assert PRE_PARTITION_DAY in early, table
            assert {day: after.get(day) for day in early} == early, table
    finally:
        built.dbt("run", "--select", "tag:daily")  # no vars: every day
    assert {t: built.hashes_by_day(t) for t in DAILY_MARTS} == before


def test_rerunning_a_partition_is_idempotent(built: Lake) -> None:
    """Re-running partitions over what the full build wrote changes nothing, at the edges included:
    window [DAY2, DAY4) with session s3 starting on DAY1 and ending on DAY2, just before it; and the
    DAY6 partition, which sees only the second event of session s8 (started on DAY4, 37 hours
    earlier): the session stays dated DAY4, it is not re-dated (nor duplicated) into DAY6."""
    baseline = {table: built.table_hash(table) for table in DAILY_MARTS}
    for min_date, lookback in ((DAY3, 1), (DAY3, 1), (DAY6, 0)):
        built.run_window(min_date, min_date + dt.timedelta(days=1), lookback_days=lookback)
        assert {table: built.table_hash(table) for table in DAILY_MARTS} == baseline, min_date
    sessions = len(expected_sessions(built.data))
    assert built.query("select count(*), count(distinct session_id) from marts.fct_web_sessions") == [
        (sessions, sessions)
    ]
    assert built.sessions()["s8"] == expected_sessions(built.data)["s8"]


def test_a_schema_change_of_a_daily_mart_fails_loudly(built: Lake) -> None:
    """A daily mart whose model has a column its table lacks (a release added it) is never appended
    to without it (dbt's default would silently drop the column): on_schema_change: fail stops
    the run with the cause; a full refresh (Dagster run config full_refresh) rebuilds the table."""
    before = built.table_hash("fct_daily_revenue")
    built.execute("alter table marts.fct_daily_revenue drop column average_order_value")
    window = json.dumps({"min_date": DAY3.isoformat(), "max_date": DAY4.isoformat()})
    result = built.dbt("run", "--select", "fct_daily_revenue", "--vars", window, check=False)
    assert result.returncode != 0
    assert "out of sync" in result.stdout
    built.dbt("run", "--select", "fct_daily_revenue", "--full-refresh")
    assert built.table_hash("fct_daily_revenue") == before


def test_bad_window_vars_fail_clearly(built: Lake) -> None:
    window = '{"min_date": "2026-03-04", "max_date": "2026-03-01"}'
    result = built.dbt("run", "--select", "fct_daily_revenue", "--vars", window, check=False)
    assert result.returncode != 0
    assert "must be before max_date" in result.stdout


# ---------------------------------------------------------------------------- through Dagster
def test_dagster_partition_run_builds_the_window(built: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    """The @dbt_assets op end to end: partition -> dbt build --vars, materializations, asset checks."""
    import dagster as dg

    from orchestration.dbt_project import build_manifest, dbt_project

    build_manifest(dbt_project, built.settings)  # never the stale target/manifest.json of an earlier checkout
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
    assert len(materialized) == MODEL_COUNT + SEED_COUNT
    assert materialized["marts/fct_daily_revenue"] == DAY3.isoformat()
    checks = result.get_asset_check_evaluations()
    assert len(checks) > 100
    failed = [c.check_name for c in checks if not c.passed]
    assert not failed, failed
    # column-level metadata on the materializations: schema as built, lineage through the SQL
    revenue = next(
        e.materialization.metadata
        for e in result.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey(["marts", "fct_daily_revenue"])
    )
    built_types = {c.name: c.type.lower() for c in revenue["dagster/column_schema"].value.columns}
    assert built_types["gross_revenue"] == "decimal(12,2)"
    lineage = revenue["dagster/column_lineage"].value.deps_by_column
    assert dg.TableColumnDep(dg.AssetKey(["marts", "fct_orders"]), "order_total_usd") in lineage["gross_revenue"]
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
    campaign_day = expected_campaign_performance(built.data)[("cmp_000002", DAY2)]
    assert campaign_day.attributed_orders == 2
    assert built.query(
        "select attributed_orders, attributed_revenue from marts.fct_campaign_performance_daily"
        f" where campaign_id = 'cmp_000002' and performance_date = date '{DAY2}'"
    ) == [(campaign_day.attributed_orders, campaign_day.attributed_revenue)]
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
    assert built.restated(("orders",)) == {DAY1}
    # rebuilding again changes nothing, and a partition whose window saw no change restates nothing
    built.run_window(DAY4, DAY4 + dt.timedelta(days=1), lookback_days=0)
    assert built.daily_revenue() == expected
    built.run_window(DAY3, DAY3 + dt.timedelta(days=1), lookback_days=0)
    assert built.restated(("orders", "ad_spend")) == set()
    assert built.daily_revenue() == expected


def test_ad_spend_reaching_the_lake_late_is_restated(built: Lake) -> None:
    """Spend of DAY1 restated by the API on DAY1 (its updated_at) but received by the lake only on
    DAY4 (a marketing load outage): the DAY4 partition rebuilds DAY1's campaign figures, because
    restatement follows the lake's load time (`_dlt_load_id`), not the API's stamp."""
    restate_ad_spend(
        built.settings, built.data, "cmp_000001", DAY1, "55.00", dt.datetime.combine(DAY4, dt.time(9), dt.UTC)
    )
    expected = expected_campaign_performance(built.data)[("cmp_000001", DAY1)]
    assert expected.spend == Decimal("55.00")

    built.run_window(DAY4, DAY4 + dt.timedelta(days=1), lookback_days=0)
    assert built.query(
        "select spend, roas from marts.fct_campaign_performance_daily"
        f" where campaign_id = 'cmp_000001' and performance_date = date '{DAY1}'"
    ) == [(expected.spend, pytest.approx(expected.roas))]
    assert built.restated(("ad_spend",)) == {DAY1}


def test_a_corrected_landing_file_replaces_every_row_of_its_earlier_version(built: Lake) -> None:
    """DAY1's clickstream object is re-uploaded on DAY4 with corrections: session s2's product_view
    is dropped, and s3's last page view (00:05 on DAY2 in the first version) is re-timed to DAY1
    23:59:30, so the object no longer covers DAY2. Bronze then holds only the new version (as the
    landing loader leaves it) and the manifest both: the DAY4 partition without lookback rebuilds
    every day either version covered (DAY2 only through the first version's manifest rows): the
    dropped event is gone, the moved one counts once, on its new day."""
    key = object_key(DAY1)
    first = next(v for v in built.data.objects if v.key == key)
    corrected = [
        replace(e, event_ts=iso(DAY1, "23:59:30")) if (e.session_id, e.event_date) == ("s3", DAY2) else e
        for e in first.events
        if (e.session_id, e.event_type) != ("s2", "product_view")
    ]
    before = built.sessions()
    built.data.correct_object(key, corrected, dt.datetime.combine(DAY4, dt.time(10), dt.UTC))
    expected = expected_sessions(built.data)
    assert expected["s2"].deepest_stage < before["s2"].deepest_stage
    assert expected["s3"].ended_at < before["s3"].ended_at
    write_clickstream(built.settings, built.data)
    built.run_window(DAY4, DAY4 + dt.timedelta(days=1), lookback_days=0)
    events = built.query("select event_id, event_date from intermediate.int_clickstream__events order by 1")
    assert events == sorted((e.event_id, e.event_date) for e in built.data.events)
    assert built.sessions() == expected
    assert built.funnel() == expected_funnel(built.data)
    assert built.restated(("clickstream",)) >= {DAY1, DAY2}


def test_a_partner_feed_dated_ahead_hides_no_other_offers(built: Lake) -> None:
    """A partner feed dated ahead (a partner's clock or a typo) hides no other partner's offers."""
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


def test_source_freshness_becomes_asset_checks_on_the_lake_assets(built: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    """`dbt source freshness` through Dagster: one check per lake table dbt reads. The fixture's
    rows reached the lake in March 2026, so every table is stale (ERROR, with its newest load time)
    except the ad spend that has just been received again."""
    import dagster as dg

    from orchestration.defs import dbt as dbt_defs

    monkeypatch.setattr(dbt_defs, "get_settings", lambda: built.settings)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    restate_ad_spend(built.settings, built.data, "cmp_000001", DAY2, "25.50", now)
    defs = dg.Definitions(
        assets=[dbt_defs.dbt_lakehouse],
        asset_checks=[dbt_defs.dbt_source_freshness],
        jobs=[dbt_defs.dbt_source_freshness_job],
        resources={"dbt": dbt_defs.dbt_resource(built.settings)},
    )
    job = defs.resolve_job_def("dbt_source_freshness_job")
    result = job.execute_in_process(instance=dg.DagsterInstance.ephemeral())
    assert result.success
    evaluations = {e.asset_key.to_user_string(): e for e in result.get_asset_check_evaluations()}
    assert set(evaluations) == {spec.asset_key.to_user_string() for spec in dbt_defs.freshness_specs}
    assert len(evaluations) == 15  # every source table of models/staging/_sources.yml
    spend = evaluations["bronze/marketing/ad_spend"]
    assert spend.passed, spend.metadata
    assert spend.metadata["max_loaded_at"].value.startswith(now.isoformat()[:16])
    orders = evaluations["silver/orders"]
    assert not orders.passed and orders.severity == dg.AssetCheckSeverity.ERROR
    last_change = max(o.ordered_at for o in built.data.orders)  # the fixture stamps changes 5 s after
    assert orders.metadata["max_loaded_at"].value.startswith(last_change[:16])
    assert orders.metadata["criteria"].value == "warn after 2 hour(s), error after 12 hour(s)"


def test_a_file_corrected_through_the_real_landing_loader_leaves_nothing_behind(built: Lake) -> None:
    """The landing loader itself (not the fixture) writes bronze and the manifest: a new object
    with sessions on DAY5 and DAY6 is loaded, then re-uploaded corrected: s10's product_view is
    dropped and its page view moved from DAY6 to DAY5 23:58, so the new version no longer covers
    DAY6. Today's partition (the day both versions arrived; no lookback) rebuilds the days of both
    versions from the manifest: DAY6 loses the event, DAY5 has it once, and the marts equal the
    fixture's independent computation before and after."""
    from ingestion.dlt_sources import load_landing
    from lakehouse.stack.resources import s3_client

    key = object_key(DAY5, "events-late")
    today = dt.datetime.now(dt.UTC).date()
    s9 = [
        Event("s9", event_type, iso(DAY5, clock), 3, product_id, device="mobile", event_id=f"e90{n}")
        for n, (event_type, clock, product_id) in enumerate(
            [("page_view", "10:00:00", None), ("product_view", "10:02:00", 2), ("add_to_cart", "10:05:00", 2)]
        )
    ]
    s10 = [Event("s10", "page_view", iso(DAY6, "08:00:00"), event_id="e910"),
           Event("s10", "product_view", iso(DAY6, "08:01:00"), product_id=4, event_id="e911")]  # fmt: skip

    def upload_and_load(events: list[Event]) -> str:
        put = s3_client(built.settings).put_object(
            Bucket=built.settings.landing_bucket, Key=key, Body=landing_object(events)
        )
        etag = str(put["ETag"]).strip('"')
        report = load_landing(built.settings, kind="clickstream", object_keys=[key])
        replaced = any(v.key == key for v in built.data.objects)
        assert [(o.key, o.etag, o.rows, o.quarantined, o.replaced) for o in report.objects] == [
            (key, etag, len(events), 0, replaced)
        ]
        built.run_window(today, today + dt.timedelta(days=1), lookback_days=0)
        return etag

    first_etag = upload_and_load(s9 + s10)
    built.data.objects.append(ObjectVersion(key, first_etag, dt.datetime.now(dt.UTC), s9 + s10))
    assert built.sessions()["s10"].session_date == DAY6
    assert built.sessions() == expected_sessions(built.data)
    assert built.funnel() == expected_funnel(built.data)

    moved = replace(s10[0], event_ts=iso(DAY5, "23:58:00"))
    etag = upload_and_load([*s9, moved])
    built.data.correct_object(key, [*s9, moved], dt.datetime.now(dt.UTC))
    # bronze holds the new version only; the manifest a staged and a loaded row per version
    assert built.query(
        f"select object_etag, count(*) from staging.stg_landing__clickstream where object_key = '{key}' group by 1"
    ) == [(etag, 4)]
    manifest = built.query(
        f"select object_etag, status, loaded_at is null, event_dates from staging.stg_landing__objects"
        f" where object_key = '{key}' order by recorded_at"
    )
    assert manifest == [
        (first_etag, "staged", True, [DAY5, DAY6]),
        (first_etag, "loaded", False, [DAY5, DAY6]),
        (etag, "staged", True, [DAY5]),
        (etag, "loaded", False, [DAY5]),
    ]
    assert built.restated(("clickstream",)) == {DAY4, DAY5, DAY6, DAY6 + dt.timedelta(days=1)}
    # the dropped event is gone from DAY6, the moved one counts once, on DAY5
    events = built.query(
        "select event_id, event_date from intermediate.int_clickstream__events where event_id like 'e91%'"
    )
    assert events == [("e910", DAY5)]
    sessions = built.sessions()
    assert sessions["s10"] == Session(DAY5, dt.datetime.combine(DAY5, dt.time(23, 58)),
                                      dt.datetime.combine(DAY5, dt.time(23, 58)), 1, 1)  # fmt: skip
    assert sessions == expected_sessions(built.data)
    assert built.funnel() == expected_funnel(built.data)
    assert DAY6 not in built.funnel()  # s10 was DAY6's only session (s8's second event belongs to DAY4)
