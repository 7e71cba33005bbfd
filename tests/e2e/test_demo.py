"""The demo end to end: generator → CDC/dlt → Delta → dbt marts, reconciled against the sources.

The starter data has only USD orders, only full refunds and orders every day; `changed` adds what
the marts must get right beyond that (orders in EUR and GBP, a partial refund, a returned campaign
order, a day whose orders are all deleted) in PostgreSQL, carries it through CDC and one Dagster
partition run, and the revenue and campaign marts are reconciled against PostgreSQL with the
seed's exchange rates.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from decimal import Decimal

import duckdb
import psycopg
import pytest

from ingestion.cdc.config import SinkConfig
from ingestion.cdc.sink import CdcSink
from ingestion.cdc.verify import compare_table
from ingestion.dlt_sources import load_landing, make_pipeline, marketing_source, raise_on_failed
from lakehouse import duck
from lakehouse.dagster_instance import REPO_ROOT, dagster_env
from lakehouse.demo import DEFINITIONS_MODULE, recorded_window
from lakehouse.query import run_query
from lakehouse.settings import OLTP_TABLES, Settings
from lakehouse.stack.resources import s3_client
from orchestration.selection import partitioned_selection
from tests.e2e.conftest import lakehouse_cli
from tests.fixtures.lake import to_usd

MARTS = [p.stem for p in sorted((REPO_ROOT / "models" / "marts").glob("*.sql"))]
#: the partial refund `changed` books on a campaign order
REFUND = Decimal("10.00")


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


def _materialize_partitions(settings: Settings, *partitions: str) -> None:
    """The daily dbt assets for `--partition DAY` or `--partition-range A...B`, through Dagster."""
    command = [
        sys.executable, "-m", "dagster", "asset", "materialize", "-m", DEFINITIONS_MODULE,
        "--select", partitioned_selection(), *partitions,
    ]  # fmt: skip
    result = subprocess.run(command, env=dagster_env(settings), cwd=REPO_ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def _sink_until_silver_matches(settings: Settings, tables: tuple[str, ...], timeout: float = 180) -> None:
    """Run the CDC sink until silver equals PostgreSQL for `tables` (Debezium publishes asynchronously)."""
    deadline = time.monotonic() + timeout
    while True:
        with CdcSink(SinkConfig.from_settings(settings)) as sink:
            sink.run_once(tables=list(tables))
        diffs = [compare_table(settings, table) for table in tables]
        if all(diff.equal for diff in diffs):
            return
        assert time.monotonic() < deadline, "; ".join(d.summary() for d in diffs if not d.equal)
        time.sleep(2)


@dataclass(frozen=True)
class Changed:
    day: dt.date  # orders of this day: two converted to EUR / GBP, one partially refunded, one returned
    empty_day: dt.date  # every order of this day deleted
    eur: int
    gbp: int
    refunded: int
    returned: int
    restated_campaign: str  # its spend on `day` restated by the API (new amount, in EUR)
    dropped_event: str  # in `day`'s clickstream object v1, gone from its corrected v2
    moved_event: str  # on `day` in v1, on `empty_day` in v2
    retried_event: str  # delivered again in a late object (a producer retry)
    late_event: str  # only in the late object


def _landing_lines(settings: Settings, key: str) -> list[dict]:
    """The JSON lines of a gzipped landing object that parse (the generator's broken lines do not)."""
    body = s3_client(settings).get_object(Bucket=settings.landing_bucket, Key=key)["Body"].read()
    lines = []
    for line in gzip.decompress(body).decode().splitlines():
        try:
            lines.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return lines


def _put_landing(settings: Settings, key: str, events: list[dict]) -> None:
    body = gzip.compress(("\n".join(json.dumps(e) for e in events) + "\n").encode(), mtime=0)
    s3_client(settings).put_object(Bucket=settings.landing_bucket, Key=key, Body=body)


def _correct_landing(settings: Settings, day: dt.date, moved_to: dt.date) -> tuple[str, str, str, str]:
    """`day`'s clickstream object re-uploaded corrected (one event dropped, one moved to `moved_to`)
    and a late object for `day` with a retry of a third event and one new event, both loaded by
    the landing loader. Returns (dropped, moved, retried, late) event ids."""
    listing = s3_client(settings).list_objects_v2(Bucket=settings.landing_bucket, Prefix=f"clickstream/dt={day}/")
    [key] = [o["Key"] for o in listing.get("Contents", [])]
    events = _landing_lines(settings, key)
    # page views (no order, no product): the changes move no order or purchase between days
    views = [n for n, e in enumerate(events) if e["event_type"] == "page_view" and e.get("order_id") is None]
    assert len(views) >= 3
    dropped, moved, retried = (events[n] for n in views[:3])
    moved = moved | {"event_ts": moved_to.isoformat() + moved["event_ts"][10:]}
    _put_landing(settings, key, [moved if e is events[views[1]] else e for e in events if e is not dropped])
    late = retried | {"event_id": f"late-{retried['event_id']}"}
    late_key = f"clickstream/dt={day}/events-late.json.gz"
    _put_landing(settings, late_key, [retried, late])
    report = load_landing(settings, kind="clickstream", object_keys=[key, late_key])
    assert sorted((o.key, o.rows, o.replaced) for o in report.objects) == sorted(
        [(key, len(events) - 1, True), (late_key, 2, False)]
    )
    return dropped["event_id"], moved["event_id"], retried["event_id"], late["event_id"]


@pytest.fixture(scope="module")
def changed(demo: Settings) -> Changed:
    """The cases of issue 12 the starter data lacks, made in PostgreSQL, through CDC to silver and
    then the dbt partitions of their two days (one Dagster run)."""
    day = recorded_window(demo).start + dt.timedelta(days=20)
    empty_day = day + dt.timedelta(days=1)
    on_day = "(ordered_at at time zone 'UTC')::date = %s and status in ('paid', 'shipped', 'delivered')"
    with psycopg.connect(demo.postgres_dsn) as conn:
        plain = conn.execute(
            f"select order_id from shop.orders where {on_day} and campaign_id is null order by 1 limit 2", (day,)
        ).fetchall()
        campaign = conn.execute(
            f"select order_id from shop.orders where {on_day} and campaign_id is not null and order_total > %s"
            " order by 1 limit 2",
            (day, 2 * REFUND),
        ).fetchall()
        assert len(plain) == 2 and len(campaign) == 2, "the starter data has such orders every day"
        [(restated_campaign,)] = conn.execute(
            f"select campaign_id from {demo.marketing_schema}.ad_spend where spend_date = %s order by 1 limit 1",
            (day,),
        ).fetchall()
        # the API restates the day's spend (a new amount, in EUR); the lake gets it by the next dlt load
        conn.execute(
            f"update {demo.marketing_schema}.ad_spend set spend = spend + 12.34, currency = 'EUR',"
            " updated_at = now() where campaign_id = %s and spend_date = %s",
            (restated_campaign, day),
        )
        events = _correct_landing(demo, day, empty_day)
        changed = Changed(
            day, empty_day, plain[0][0], plain[1][0], campaign[0][0], campaign[1][0], restated_campaign, *events
        )
        conn.execute("update shop.orders set currency = 'EUR' where order_id = %s", (changed.eur,))
        conn.execute("update shop.orders set currency = 'GBP' where order_id = %s", (changed.gbp,))
        conn.execute(
            "insert into shop.payments (order_id, method, status, amount, paid_at)"
            " values (%s, 'card', 'refunded', %s, now())",
            (changed.refunded, REFUND),
        )
        conn.execute("update shop.orders set status = 'returned' where order_id = %s", (changed.returned,))
        conn.execute("update shop.payments set status = 'refunded' where order_id = %s", (changed.returned,))
        doomed = "select order_id from shop.orders where (ordered_at at time zone 'UTC')::date = %s"
        for table in ("payments", "order_items", "orders"):
            conn.execute(f"delete from shop.{table} where order_id in ({doomed})", (empty_day,))
    _sink_until_silver_matches(demo, ("orders", "order_items", "payments"))
    raise_on_failed(make_pipeline(demo, "bronze_marketing").run(marketing_source(demo)))
    _materialize_partitions(demo, "--partition-range", f"{day}...{empty_day}")
    return changed


@dataclass(frozen=True)
class SourceOrder:
    order_id: int
    day: dt.date
    status: str
    currency: str
    total: Decimal
    campaign_id: str | None
    units: int
    refunded: Decimal

    @property
    def total_usd(self) -> Decimal:
        return to_usd(self.total, self.currency, self.day)

    @property
    def net_usd(self) -> Decimal:
        """Net revenue: nothing for cancelled or returned orders, else the total less refunds."""
        if self.status in ("cancelled", "returned"):
            return Decimal("0.00")
        return to_usd(self.total - self.refunded, self.currency, self.day)


def _source_orders(settings: Settings, start: dt.date, end: dt.date) -> list[SourceOrder]:
    rows = _pg(
        settings,
        f"""
        select o.order_id, (o.ordered_at at time zone 'UTC')::date, o.status, o.currency, o.order_total,
               o.campaign_id,
               (select coalesce(sum(quantity), 0) from shop.order_items i where i.order_id = o.order_id),
               (select coalesce(sum(amount), 0) from shop.payments p
                where p.order_id = o.order_id and p.status = 'refunded')
        from shop.orders o
        where (o.ordered_at at time zone 'UTC')::date >= '{start}' and (o.ordered_at at time zone 'UTC')::date < '{end}'
        """,
    )
    return [SourceOrder(*row) for row in rows]


def test_daily_revenue_reconciles_with_postgres(demo: Settings, changed: Changed) -> None:
    """Per day: revenue orders, units, gross revenue in USD (each order at its day's rate) and net
    revenue (returned orders out, partial refunds subtracted); a day without orders has a zero row."""
    window = recorded_window(demo)
    start, end = window.start, window.start + dt.timedelta(days=window.days)
    source = _source_orders(demo, start, end)
    zero = (0, 0, Decimal("0.00"), Decimal("0.00"))
    expected = {start + dt.timedelta(days=n): zero for n in range(window.days)}
    for order in source:
        if order.status != "cancelled":
            orders, units, gross, net = expected[order.day]
            expected[order.day] = (orders + 1, units + order.units, gross + order.total_usd, net + order.net_usd)
    assert [day for day, row in expected.items() if row == zero] == [changed.empty_day]
    with _warehouse(demo) as con:
        mart = {
            row[0]: row[1:]
            for row in con.execute(
                "select order_date, orders, items_sold, gross_revenue, net_revenue from marts.fct_daily_revenue "
                "where order_date >= ? and order_date < ?",
                [start, end],
            ).fetchall()
        }
        facts = {
            row[0]: row[1:]
            for row in con.execute(
                "select order_id, currency, order_total_usd, net_revenue_usd from marts.fct_orders"
                " where order_id in (?, ?, ?, ?)",
                [changed.eur, changed.gbp, changed.refunded, changed.returned],
            ).fetchall()
        }
    assert mart == expected
    by_id = {o.order_id: o for o in source}
    for order_id, currency in ((changed.eur, "EUR"), (changed.gbp, "GBP")):
        order = by_id[order_id]
        assert facts[order_id] == (currency, order.total_usd, order.total_usd)
        assert order.total_usd != order.total  # converted at the seed's rate, not summed as USD
    refunded = by_id[changed.refunded]
    assert facts[changed.refunded][2] == refunded.total - REFUND
    assert facts[changed.returned][2] == Decimal("0.00")


@pytest.mark.usefixtures("changed")
def test_campaign_performance_reconciles_with_postgres(demo: Settings) -> None:
    """Per campaign and day: spend in USD, and the orders and net revenue attributed to the campaign,
    returned and cancelled orders left out (so ROAS never counts them)."""
    window = recorded_window(demo)
    start, end = window.start, window.start + dt.timedelta(days=window.days)
    expected: dict[tuple[str, dt.date], tuple[Decimal, int, Decimal]] = {}
    for campaign_id, day, spend, currency in _pg(
        demo,
        f"select campaign_id, spend_date, spend, currency from {demo.marketing_schema}.ad_spend"
        f" where spend_date >= '{start}' and spend_date < '{end}'",
    ):
        expected[(campaign_id, day)] = (to_usd(spend, currency, day), 0, Decimal("0.00"))
    for order in _source_orders(demo, start, end):
        if order.campaign_id and order.status not in ("cancelled", "returned"):
            spend, orders, revenue = expected.get((order.campaign_id, order.day), (Decimal("0.00"), 0, Decimal("0.00")))
            expected[(order.campaign_id, order.day)] = (spend, orders + 1, revenue + order.net_usd)
    with _warehouse(demo) as con:
        rows = con.execute(
            "select campaign_id, performance_date, spend, attributed_orders, attributed_revenue, roas"
            " from marts.fct_campaign_performance_daily where performance_date >= ? and performance_date < ?",
            [start, end],
        ).fetchall()
    assert {(c, d): (spend, n, revenue) for c, d, spend, n, revenue, _ in rows} == expected
    for campaign_id, day, spend, _, revenue, roas in rows:
        assert roas == (pytest.approx(float(revenue / spend)) if spend else None), (campaign_id, day)


def test_ad_spend_is_the_apis_latest_restatement(demo: Settings, changed: Changed) -> None:
    """The spend the API restated (new amount, in EUR) replaces the old one in bronze, once, and
    reaches the mart converted to USD at the day's rate."""
    [(spend, currency)] = _pg(
        demo,
        f"select spend, currency from {demo.marketing_schema}.ad_spend"
        f" where campaign_id = '{changed.restated_campaign}' and spend_date = '{changed.day}'",
    )
    assert currency == "EUR"
    with _warehouse(demo) as con:
        staged = con.execute(
            "select spend, currency from staging.stg_marketing__ad_spend where campaign_id = ? and spend_date = ?",
            [changed.restated_campaign, changed.day],
        ).fetchall()
        [(mart_spend,)] = con.execute(
            "select spend from marts.fct_campaign_performance_daily where campaign_id = ? and performance_date = ?",
            [changed.restated_campaign, changed.day],
        ).fetchall()
    assert staged == [(spend, "EUR")]
    assert mart_spend == to_usd(spend, "EUR", changed.day) != spend


def test_clickstream_reconciles_with_the_landing_files(demo: Settings, changed: Changed) -> None:
    """Every event of the landing objects as they stand now counts once, on its UTC day: a corrected
    object's dropped event is gone, its moved event is on its new day only, an event delivered
    again in a late object counts once."""
    s3 = s3_client(demo)
    keys = [
        o["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=demo.landing_bucket, Prefix="clickstream/")
        for o in page.get("Contents", [])
    ]
    expected: dict[str, dt.date] = {}
    for key in keys:
        for event in _landing_lines(demo, key):
            expected.setdefault(event["event_id"], dt.date.fromisoformat(event["event_ts"][:10]))
    with _warehouse(demo) as con:
        rows = con.execute("select event_id, event_date from intermediate.int_clickstream__events").fetchall()
    events = dict(rows)
    assert len(events) == len(rows), "an event counted twice"
    assert events == expected
    assert changed.dropped_event not in events
    assert events[changed.moved_event] == changed.empty_day
    assert events[changed.retried_event] == changed.day and events[changed.late_event] == changed.day


def test_row_counts_match_the_sources(demo: Settings) -> None:
    window = recorded_window(demo)
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
    _materialize_partitions(demo, "--partition", (recorded_window(demo).start + dt.timedelta(days=10)).isoformat())
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
