"""Marketing store: campaigns and daily ad spend (generation), plus the paged reads the API serves."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import math
from decimal import Decimal
from typing import Any

import numpy as np
import psycopg
from psycopg import sql

from lakehouse.settings import Settings
from lakehouse.synthetic.common import (
    DAY_US,
    UTC,
    DateLike,
    GenerationResult,
    SyntheticDataError,
    Window,
    begin,
    cents_str,
    date_to_us,
    iso_us,
)
from lakehouse.synthetic.db import connect, copy_rows, table
from lakehouse.synthetic.schema import ensure_schema

CHANNELS = ("search", "social", "email", "display", "affiliate")
CHANNEL_P = (0.35, 0.25, 0.15, 0.15, 0.10)
#: Per channel: cost per thousand impressions (dollars) and click-through rate.
CHANNEL_ECONOMICS = {
    "search": (12.0, 0.035),
    "social": (7.0, 0.012),
    "email": (1.5, 0.025),
    "display": (3.0, 0.004),
    "affiliate": (5.0, 0.015),
}
THEMES = (
    "Spring Sale",
    "Summer Deals",
    "Back to School",
    "Black Friday",
    "Holiday Gifts",
    "New Arrivals",
    "Clearance",
    "Loyalty Rewards",
    "Brand Awareness",
    "Retargeting",
)

CAMPAIGN_COLUMNS = (
    "campaign_id",
    "name",
    "channel",
    "status",
    "daily_budget",
    "start_date",
    "end_date",
    "created_at",
    "updated_at",
)
AD_SPEND_COLUMNS = (
    "campaign_id",
    "spend_date",
    "impressions",
    "clicks",
    "spend",
    "currency",
    "created_at",
    "updated_at",
)

#: API resources: table name and primary-key columns (the tie-breaker of the stable ordering).
RESOURCES: dict[str, tuple[str, tuple[str, ...]]] = {
    "campaigns": ("campaigns", ("campaign_id",)),
    "ad_spend": ("ad_spend", ("campaign_id", "spend_date")),
}
MAX_PAGE_SIZE = 1000
#: SQL types of the primary-key columns (keyset cursors carry their values as text)
KEY_TYPES = {"campaign_id": "text", "spend_date": "date"}


def campaign_id(number: int) -> str:
    return f"cmp_{number:06d}"


def build_campaigns(rng: np.random.Generator, first_number: int, count: int, window: Window) -> list[tuple[Any, ...]]:
    """Campaigns starting up to 30 days before the window or inside it, running 7-60 days.

    Status is as of the window's last day: scheduled, active (10% paused) or ended.
    """
    start_day0 = window.start_us // DAY_US
    last_day = window.end_us // DAY_US - 1
    start = start_day0 - 30 + rng.integers(0, window.days + 30, size=count)
    end = start + rng.integers(7, 61, size=count)
    channels = rng.choice(len(CHANNELS), size=count, p=CHANNEL_P).tolist()
    themes = rng.integers(0, len(THEMES), size=count).tolist()
    budget = rng.integers(5, 200, size=count) * 1000  # cents: $50 .. $1,990 in steps of $10
    paused = rng.random(count) < 0.1
    created = (start - rng.integers(1, 15, size=count)) * DAY_US + rng.integers(0, DAY_US, size=count)
    created = created // 1_000_000 * 1_000_000
    # updated_at = when the status last changed: went live (start day), paused (a later day), ended
    status = np.where(start > last_day, 0, np.where(end < last_day, 3, np.where(paused, 2, 1)))
    change_day = np.select(
        [status == 1, status == 2, status == 3],
        [start, start + (rng.random(count) * (last_day - start + 1)).astype(np.int64), end + 1],
        default=0,
    )
    change_at = change_day * DAY_US + rng.integers(0, 3_600, size=count) * 1_000_000
    updated = np.where(status == 0, created, np.maximum(created, change_at))
    created_iso, updated_iso = iso_us(created), iso_us(updated)
    rows: list[tuple[Any, ...]] = []
    epoch = dt.date(1970, 1, 1)
    for i in range(count):
        status_name = ("scheduled", "active", "paused", "ended")[status[i]]
        channel = CHANNELS[channels[i]]
        number = first_number + i
        rows.append(
            (
                campaign_id(number),
                f"{THEMES[themes[i]]} - {channel} #{number}",
                channel,
                status_name,
                cents_str(int(budget[i])),
                epoch + dt.timedelta(days=int(start[i])),
                epoch + dt.timedelta(days=int(end[i])),
                created_iso[i],
                updated_iso[i],
            )
        )
    return rows


def build_ad_spend(
    rng: np.random.Generator, campaigns: list[tuple[str, str, Decimal, dt.date, dt.date]], window: Window
) -> list[tuple[Any, ...]]:
    """One row per (campaign, day of the window the campaign ran); reported late on that day.

    `campaigns` holds (campaign_id, channel, daily_budget, start_date, end_date).
    """
    rows: list[tuple[Any, ...]] = []
    for cid, channel, budget, start, end in campaigns:
        days = [d for d in window.dates() if start <= d <= end]
        if not days:
            continue
        n = len(days)
        cpm, ctr = CHANNEL_ECONOMICS[channel]
        spend = (float(budget) * rng.uniform(0.55, 1.0, size=n) * 100).astype(np.int64)  # cents
        impressions = (spend / 100 / (cpm * rng.uniform(0.8, 1.25, size=n)) * 1000).astype(np.int64)
        clicks = rng.binomial(impressions, ctr)
        reported = np.array([date_to_us(d) for d in days]) + rng.integers(82_800, 86_400, size=n) * 1_000_000
        reported_iso = iso_us(reported)
        for j, day in enumerate(days):
            rows.append(
                (
                    cid,
                    day,
                    int(impressions[j]),
                    int(clicks[j]),
                    cents_str(int(spend[j])),
                    "USD",
                    reported_iso[j],
                    reported_iso[j],
                )
            )
    return rows


def generate_campaigns(
    settings: Settings, count: int, seed: int | None = None, start_date: DateLike = None, days: int | None = None
) -> GenerationResult:
    """Insert `count` campaigns numbered after the highest existing `cmp_NNNNNN`."""
    result, rng = begin("campaigns", count, seed, start_date, days)
    ensure_schema(settings)
    campaigns = table(settings.marketing_schema, "campaigns")
    with connect(settings) as conn:
        conn.execute(sql.SQL("lock table {} in share row exclusive mode").format(campaigns))
        row = conn.execute(
            sql.SQL("select coalesce(max(substr(campaign_id, 5)::bigint), 0) from {}").format(campaigns)
        ).fetchone()
        first = (row[0] if row else 0) + 1
        rows = build_campaigns(rng, first, count, result.window)
        result.counts["campaigns"] = copy_rows(conn, settings.marketing_schema, "campaigns", CAMPAIGN_COLUMNS, rows)
    return result.finish()


def generate_ad_spend(
    settings: Settings, count: int, seed: int | None = None, start_date: DateLike = None, days: int | None = None
) -> GenerationResult:
    """Daily spend for up to `count` campaigns that ran during the window (days already reported are kept)."""
    result, rng = begin("ad_spend", count, seed, start_date, days)
    ensure_schema(settings)
    window = result.window
    schema = settings.marketing_schema
    with connect(settings) as conn:
        candidates = conn.execute(
            sql.SQL(
                """select campaign_id, channel, daily_budget, start_date, end_date from {}
                   where start_date < %s and end_date >= %s order by campaign_id"""
            ).format(table(schema, "campaigns")),
            (window.end_date, window.start_date),
        ).fetchall()
        if not candidates:
            raise SyntheticDataError("no campaign ran during the window: generate campaigns first")
        chosen = np.sort(rng.permutation(len(candidates))[:count])
        rows = build_ad_spend(rng, [candidates[i] for i in chosen], window)
        existing = set(
            conn.execute(
                sql.SQL("select campaign_id, spend_date from {} where spend_date >= %s and spend_date < %s").format(
                    table(schema, "ad_spend")
                ),
                (window.start_date, window.end_date),
            ).fetchall()
        )
        new_rows = [r for r in rows if (r[0], r[1]) not in existing]
        result.counts["ad_spend"] = copy_rows(conn, schema, "ad_spend", AD_SPEND_COLUMNS, new_rows)
    return result.finish()


# ---------------------------------------------------------------------------- API reads
def _json_value(value: Any) -> Any:
    """dates -> 'YYYY-MM-DD', timestamps -> ISO-8601 UTC ('...Z'), numerics -> JSON numbers."""
    if isinstance(value, dt.datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value


def encode_cursor(row: dict[str, Any], key: tuple[str, ...]) -> str:
    """Opaque keyset cursor: the (updated_at, primary key) of the last row of a page."""
    values = [row["updated_at"], *(row[k] for k in key)]
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, key: tuple[str, ...]) -> list[str]:
    """The values of a cursor made by `encode_cursor` for the same resource; clear error otherwise."""
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise SyntheticDataError("after: not a cursor returned by this API (next_cursor)") from None
    if not (isinstance(values, list) and len(values) == len(key) + 1 and all(isinstance(v, str) for v in values)):
        raise SyntheticDataError("after: not a cursor of this resource (next_cursor)")
    try:
        dt.datetime.fromisoformat(values[0])
        for name, value in zip(key, values[1:], strict=True):
            if KEY_TYPES[name] == "date":
                dt.date.fromisoformat(value)
    except ValueError:
        raise SyntheticDataError("after: not a cursor of this resource (next_cursor)") from None
    return values


def validate_page_request(resource: str, page: int, page_size: int, after: str | None) -> list[str] | None:
    """Check a page request before touching the database; returns the decoded cursor, if any."""
    if resource not in RESOURCES:
        raise SyntheticDataError(f"unknown marketing resource {resource!r}")
    if page < 1:
        raise SyntheticDataError("page must be >= 1")
    if after is not None and page != 1:
        raise SyntheticDataError("pass either page or after, not both")
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise SyntheticDataError(f"page_size must be between 1 and {MAX_PAGE_SIZE}")
    return decode_cursor(after, RESOURCES[resource][1]) if after is not None else None


def fetch_page(
    conn: psycopg.Connection,
    settings: Settings,
    resource: str,
    updated_since: dt.datetime | None,
    page: int,
    page_size: int,
    after: str | None = None,
) -> dict[str, Any]:
    """One page of a marketing resource ordered by (updated_at, primary key); `updated_at >= since`.

    Two ways to page: `page` numbers (offsets), or the keyset cursor `after` (the `next_cursor` of
    the previous page). Offsets skip a row when an earlier one is updated between two requests
    (it moves to the end and the rest shift up a page); a keyset cursor never does, so loaders use it.
    """
    values = validate_page_request(resource, page, page_size, after)
    name, key = RESOURCES[resource]
    params: dict[str, Any] = {"since": updated_since, "limit": page_size, "offset": (page - 1) * page_size}
    conditions: list[sql.Composable] = [sql.SQL("updated_at >= %(since)s")] if updated_since else []
    tbl = table(settings.marketing_schema, name)
    count_where = sql.SQL("where ") + sql.SQL(" and ").join(conditions) if conditions else sql.SQL("")
    count_row = conn.execute(sql.SQL("select count(*) from {} {}").format(tbl, count_where), params).fetchone()
    total = count_row[0] if count_row else 0
    if values is not None:
        params.update({f"after_{i}": v for i, v in enumerate(values)})
        columns = sql.SQL(", ").join([sql.Identifier("updated_at"), *map(sql.Identifier, key)])
        placeholders = sql.SQL(", ").join(
            [sql.SQL("%(after_0)s::timestamptz")]
            + [sql.SQL("%({})s::{}").format(sql.SQL(f"after_{i}"), sql.SQL(KEY_TYPES[k])) for i, k in enumerate(key, 1)]
        )
        conditions.append(sql.SQL("({}) > ({})").format(columns, placeholders))
        params["offset"] = 0
    where = sql.SQL("where ") + sql.SQL(" and ").join(conditions) if conditions else sql.SQL("")
    order = sql.SQL(", ").join([sql.Identifier("updated_at"), *map(sql.Identifier, key)])
    cur = conn.execute(
        sql.SQL("select * from {} {} order by {} limit %(limit)s offset %(offset)s").format(tbl, where, order),
        params,
    )
    names = [c.name for c in cur.description or ()]
    raw = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    data = [{c: _json_value(v) for c, v in row.items()} for row in raw]
    total_pages = math.ceil(total / page_size)
    return {
        "data": data,
        "page": page,
        "page_size": page_size,
        "total": total,
        "total_pages": total_pages,
        "next_page": page + 1 if after is None and page < total_pages else None,
        "next_cursor": encode_cursor(data[-1], key) if len(data) == page_size else None,
    }
