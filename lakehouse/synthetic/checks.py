"""Read-only checks of the generated data: row counts, integrity rules, content fingerprints.

Used by the tests, and handy after a long `simulate` run or before reconciling the lake with the
source (every rule should report 0).
"""

from __future__ import annotations

from psycopg import sql

from lakehouse.settings import OLTP_TABLES, Settings
from lakehouse.synthetic.db import connect, table

MARKETING_TABLES: tuple[str, ...] = ("campaigns", "ad_spend")
#: table -> primary key columns (the order of fingerprints)
PRIMARY_KEYS: dict[str, tuple[str, ...]] = {
    "customers": ("customer_id",),
    "addresses": ("address_id",),
    "products": ("product_id",),
    "inventory": ("product_id", "warehouse"),
    "orders": ("order_id",),
    "order_items": ("order_item_id",),
    "payments": ("payment_id",),
    "campaigns": ("campaign_id",),
    "ad_spend": ("campaign_id", "spend_date"),
}

#: rule -> query counting the rows that break it ({s}: OLTP schema, {m}: marketing schema)
RULES: dict[str, str] = {
    "order_total_differs_from_items": """
        select count(*) from {s}.orders o
        where o.order_total <> (select coalesce(sum(i.line_total), 0) from {s}.order_items i
                                where i.order_id = o.order_id)""",
    "orders_without_items": """
        select count(*) from {s}.orders o
        where not exists (select 1 from {s}.order_items i where i.order_id = o.order_id)""",
    "orders_without_exactly_one_payment": """
        select count(*) from {s}.orders o
        where (select count(*) from {s}.payments p where p.order_id = o.order_id) <> 1""",
    "payment_amount_differs_from_order_total": """
        select count(*) from {s}.payments p join {s}.orders o using (order_id)
        where p.amount <> o.order_total""",
    "line_total_wrong": """
        select count(*) from {s}.order_items where line_total <> quantity * unit_price - discount""",
    "shipping_address_of_another_customer": """
        select count(*) from {s}.orders o join {s}.addresses a on a.address_id = o.shipping_address_id
        where a.customer_id <> o.customer_id""",
    "campaign_unknown_or_inactive_that_day": """
        select count(*) from {s}.orders o left join {m}.campaigns c using (campaign_id)
        where o.campaign_id is not null
          and (c.campaign_id is null
               or (o.ordered_at at time zone 'UTC')::date not between c.start_date and c.end_date)""",
    "updated_before_created": """
        select (select count(*) from {s}.orders where updated_at < created_at)
             + (select count(*) from {s}.customers where updated_at < created_at)
             + (select count(*) from {s}.payments where updated_at < created_at)""",
}


def _format(query: str, settings: Settings) -> sql.Composed:
    return sql.SQL(query).format(s=sql.Identifier(settings.oltp_schema), m=sql.Identifier(settings.marketing_schema))


def _tables(settings: Settings) -> list[tuple[str, str]]:
    return [(settings.oltp_schema, t) for t in OLTP_TABLES] + [(settings.marketing_schema, t) for t in MARKETING_TABLES]


def table_counts(settings: Settings) -> dict[str, int]:
    """Rows per OLTP and marketing table."""
    with connect(settings) as conn:
        counts = {}
        for schema, name in _tables(settings):
            row = conn.execute(sql.SQL("select count(*) from {}").format(table(schema, name))).fetchone()
            counts[name] = row[0] if row else 0
        return counts


def integrity_violations(settings: Settings) -> dict[str, int]:
    """Rows breaking each rule of RULES (foreign keys are enforced by PostgreSQL itself)."""
    with connect(settings) as conn:
        result = {}
        for rule, query in RULES.items():
            row = conn.execute(_format(query, settings)).fetchone()
            result[rule] = row[0] if row else 0
        return result


def fingerprints(settings: Settings) -> dict[str, str]:
    """md5 of every table's full content (all columns, in primary-key order, rendered in UTC)."""
    with connect(settings) as conn:
        result = {}
        for schema, name in _tables(settings):
            order = sql.SQL(", ").join(map(sql.Identifier, PRIMARY_KEYS[name]))
            query = sql.SQL("select md5(coalesce(string_agg(t::text, E'\\n' order by {}), '')) from {} t").format(
                order, table(schema, name)
            )
            row = conn.execute(query).fetchone()
            result[name] = row[0] if row else ""
        return result
