"""OLTP and marketing generation into a real PostgreSQL (an isolated database per test)."""

from __future__ import annotations

from collections.abc import Callable

import psycopg
import pytest
from psycopg import sql

from lakehouse.settings import OLTP_TABLES, Settings
from lakehouse.synthetic.checks import fingerprints, integrity_violations, table_counts
from lakehouse.synthetic.common import SyntheticDataError
from lakehouse.synthetic.db import connect
from lakehouse.synthetic.entities import generate
from lakehouse.synthetic.schema import ddl, ensure_schema

START = "2024-05-01"


def q(settings: Settings, text: str) -> sql.Composed:
    """SQL with {s} = the OLTP schema identifier."""
    return sql.SQL(text).format(s=sql.Identifier(settings.oltp_schema))


def _populate(settings: Settings, seed: int) -> None:
    for entity, count in (
        ("customers", 300),
        ("products", 60),
        ("campaigns", 12),
        ("ad_spend", 12),
        ("orders", 3_000),
        ("addresses", 50),
        ("inventory", 40),
    ):
        generate(settings, entity, count, seed=seed, start_date=START, days=20)


def test_schema_is_idempotent_and_cdc_ready(isolated_settings: Callable[[], Settings]) -> None:
    settings = isolated_settings()
    assert ensure_schema(settings) is True
    assert ensure_schema(settings) is False  # version marker: DDL not re-applied
    with connect(settings) as conn:
        # re-applying the DDL itself is harmless too
        conn.execute(ddl(settings))
        rows = conn.execute(
            """select c.relname, c.relreplident,
                      exists (select 1 from pg_index i where i.indrelid = c.oid and i.indisprimary)
               from pg_class c join pg_namespace n on n.oid = c.relnamespace
               where n.nspname = %s and c.relkind = 'r'""",
            (settings.oltp_schema,),
        ).fetchall()
    assert {r[0] for r in rows} == set(OLTP_TABLES)
    assert all(r[1] == "f" and r[2] for r in rows), rows  # replica identity full + primary key


def test_generated_oltp_data_is_consistent(isolated_settings: Callable[[], Settings]) -> None:
    settings = isolated_settings()
    _populate(settings, seed=11)
    counts = table_counts(settings)
    assert counts["customers"] == 300 and counts["orders"] == 3_000 and counts["payments"] == 3_000
    assert counts["order_items"] > 3_000 and counts["addresses"] > 300 + 50 and counts["ad_spend"] > 0
    assert integrity_violations(settings) == dict.fromkeys(integrity_violations(settings), 0)
    with connect(settings) as conn:
        statuses: dict[str, int] = dict(
            conn.execute(q(settings, "select status, count(*) from {s}.orders group by 1")).fetchall()
        )
        assert statuses["delivered"] > 0.6 * 3_000
        attributed = conn.execute(q(settings, "select count(campaign_id)::float / count(*) from {s}.orders")).fetchone()
        assert attributed is not None and 0.15 < attributed[0] < 0.35
        window = conn.execute(
            q(settings, "select min(ordered_at)::date::text, max(ordered_at)::date::text from {s}.orders")
        ).fetchone()
        assert window == ("2024-05-01", "2024-05-20")
        # large values really live in TOAST (out of line): the toast relations hold data
        toast = conn.execute(
            """select c.relname, pg_relation_size(c.reltoastrelid) from pg_class c
               where c.relnamespace = %s::regnamespace and c.relname in ('customers', 'products')""",
            (settings.oltp_schema,),
        ).fetchall()
        assert all(size > 0 for _, size in toast), toast
        # updated_at follows every UPDATE (trigger)
        before = conn.execute(q(settings, "select updated_at from {s}.products where product_id = 1")).fetchone()
        conn.execute(q(settings, "update {s}.products set is_active = not is_active where product_id = 1"))
        after = conn.execute(q(settings, "select updated_at from {s}.products where product_id = 1")).fetchone()
        assert before is not None and after is not None and after[0] > before[0]
        # FKs are real constraints
        with pytest.raises(psycopg.errors.ForeignKeyViolation):
            conn.execute(
                q(
                    settings,
                    "insert into {s}.order_items (order_id, product_id, quantity, unit_price, line_total)"
                    " values (999999999, 1, 1, 1, 1)",
                )
            )


def test_orders_need_customers_and_products_and_change_nothing_otherwise(
    isolated_settings: Callable[[], Settings],
) -> None:
    settings = isolated_settings()
    generate(settings, "products", 10, seed=1, start_date=START)
    before = table_counts(settings)
    with pytest.raises(SyntheticDataError, match="customers"):
        generate(settings, "orders", 100, seed=1, start_date=START)
    with pytest.raises(SyntheticDataError, match="customers"):
        generate(settings, "addresses", 10, seed=1)
    with pytest.raises(SyntheticDataError, match="campaign"):
        generate(settings, "ad_spend", 5, seed=1)
    assert table_counts(settings) == before


def test_same_seed_and_state_give_identical_tables(isolated_settings: Callable[[], Settings]) -> None:
    first, second, third = isolated_settings(), isolated_settings(), isolated_settings()
    _populate(first, seed=5)
    _populate(second, seed=5)
    _populate(third, seed=6)
    a, b, c = fingerprints(first), fingerprints(second), fingerprints(third)
    assert a == b
    assert all(a[t] != c[t] for t in ("customers", "products", "orders", "order_items", "campaigns"))
