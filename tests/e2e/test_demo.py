"""The demo end to end: generator → CDC/dlt → Delta → dbt marts, reconciled against the sources."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import subprocess
import sys
from decimal import Decimal

import duckdb
import psycopg
import pytest

from ingestion.cdc.verify import compare_table
from lakehouse import duck
from lakehouse.dagster_instance import REPO_ROOT, dagster_env
from lakehouse.demo import DEFINITIONS_MODULE, default_window
from lakehouse.query import run_query
from lakehouse.settings import OLTP_TABLES, Settings
from orchestration.selection import partitioned_selection
from tests.e2e.conftest import lakehouse_cli

MARTS = [p.stem for p in sorted((REPO_ROOT / "models" / "marts").glob("*.sql"))]


def _pg(settings: Settings, sql: str) -> list[tuple]:
    with psycopg.connect(settings.postgres_dsn) as conn:
        return conn.execute(sql).fetchall()  # type: ignore[arg-type]


def _warehouse(settings: Settings) -> duckdb.DuckDBPyConnection:
    return duck.connect(settings, settings.duckdb_path, read_only=True)


def test_every_mart_answers_through_the_query_command(demo: Settings) -> None:
    assert len(MARTS) >= 9
    for mart in MARTS:
        result = lakehouse_cli(demo, "query", f"select count(*) as n from {mart}", "--format", "json")
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)[0]["n"] > 0, f"{mart} is empty"


def test_silver_equals_postgres(demo: Settings) -> None:
    for table in OLTP_TABLES:
        diff = compare_table(demo, table)
        assert diff.equal, diff.summary()


def test_daily_revenue_reconciles_with_postgres(demo: Settings) -> None:
    window = default_window()
    start, end = window.start, window.start + dt.timedelta(days=window.days)
    source = {
        row[0]: row[1:]
        for row in _pg(
            demo,
            f"""
            select (o.ordered_at at time zone 'UTC')::date, count(*),
                   sum((select sum(quantity) from shop.order_items i where i.order_id = o.order_id)),
                   sum(o.order_total)
            from shop.orders o
            where o.status <> 'cancelled'
              and o.ordered_at >= '{start}'::date and o.ordered_at < '{end}'::date
            group by 1
            """,
        )
    }
    con = _warehouse(demo)
    try:
        mart = {
            row[0]: row[1:]
            for row in con.execute(
                "select order_date, orders, items_sold, gross_revenue from marts.fct_daily_revenue "
                "where order_date >= ? and order_date < ?",
                [start, end],
            ).fetchall()
        }
    finally:
        con.close()
    assert len(source) == window.days, "the starter data has orders every day of the window"
    assert set(mart) == set(source)
    for day, (orders, items, revenue) in source.items():
        m_orders, m_items, m_revenue = mart[day]
        assert (m_orders, m_items) == (orders, items), day
        assert Decimal(str(m_revenue)).quantize(Decimal("0.01")) == Decimal(revenue), day


def test_row_counts_match_the_sources(demo: Settings) -> None:
    window = default_window()
    start, end = window.start, window.start + dt.timedelta(days=window.days)
    orders = _pg(demo, f"select count(*) from shop.orders where ordered_at >= '{start}' and ordered_at < '{end}'")
    items = _pg(
        demo,
        "select count(*) from shop.order_items i join shop.orders o using (order_id) "
        f"where o.ordered_at >= '{start}' and o.ordered_at < '{end}'",
    )
    customers = _pg(demo, "select count(*) from shop.customers")
    products = _pg(demo, "select count(*) from shop.products")
    expected = {
        "fct_orders": orders[0][0],
        "fct_order_items": items[0][0],
        "dim_customers": customers[0][0],
        "dim_products": products[0][0],
    }
    for mart, count in expected.items():
        answer = run_query(demo, f"select count(*) from {mart}")
        assert answer.rows == [(count,)], mart


def _marts_fingerprint(settings: Settings) -> dict[str, str]:
    con = _warehouse(settings)
    try:
        result = {}
        for mart in MARTS:
            rows = con.execute(f"select * from marts.{mart} order by all").fetchall()
            result[mart] = hashlib.sha256(repr(rows).encode()).hexdigest()
        return result
    finally:
        con.close()


def test_rerunning_a_partition_gives_identical_marts(demo: Settings) -> None:
    before = _marts_fingerprint(demo)
    day = (default_window().start + dt.timedelta(days=10)).isoformat()
    command = [
        sys.executable, "-m", "dagster", "asset", "materialize", "-m", DEFINITIONS_MODULE,
        "--select", partitioned_selection(), "--partition", day,
    ]  # fmt: skip
    result = subprocess.run(command, env=dagster_env(demo), cwd=REPO_ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert _marts_fingerprint(demo) == before


def test_an_invalid_partition_key_is_rejected_clearly(demo: Settings) -> None:
    command = [
        sys.executable, "-m", "dagster", "asset", "materialize", "-m", DEFINITIONS_MODULE,
        "--select", partitioned_selection(), "--partition", "not-a-day",
    ]  # fmt: skip
    result = subprocess.run(command, env=dagster_env(demo), cwd=REPO_ROOT, capture_output=True, text=True)
    assert result.returncode != 0
    assert "not-a-day" in result.stdout + result.stderr


def test_query_of_an_unknown_table_lists_the_available_ones(demo: Settings) -> None:
    result = lakehouse_cli(demo, "query", "select * from no_such_mart")
    assert result.returncode == 1
    assert "no_such_mart" in result.stderr and "Available tables" in result.stderr
    assert "fct_daily_revenue" in result.stderr and "silver.orders" in result.stderr


def test_status_reports_every_service_healthy(demo: Settings) -> None:
    result = lakehouse_cli(demo, "status")
    assert result.returncode == 0, result.stdout
    for service in ("s3", "postgres", "kafka", "api", "cdc"):
        assert service in result.stdout


@pytest.mark.parametrize("bad", [["generate", "orders", "--count", "-5"], ["generate", "unicorns", "--count", "5"]])
def test_invalid_cli_input_changes_nothing(demo: Settings, bad: list[str]) -> None:
    before = _pg(demo, "select count(*) from shop.orders")
    result = lakehouse_cli(demo, *bad)
    assert result.returncode == 2, result.stdout + result.stderr
    assert _pg(demo, "select count(*) from shop.orders") == before
