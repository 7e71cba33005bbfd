"""S3 landing zone: clickstream events (gzipped JSON lines) and partner product feeds (CSV).

`malformed_rate` corrupts that share of records (broken JSON; wrong column count or non-numeric
price) so quarantine logic downstream has something to catch; every object reports how many good
and bad records it holds. Object names carry a hash of their content: repeating a call rewrites
the same objects, different data never overwrites an object.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import hashlib
import io
import json
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg
from psycopg import sql

from lakehouse.aws import s3_client
from lakehouse.settings import Settings
from lakehouse.synthetic import vocab
from lakehouse.synthetic.common import (
    DAY_US,
    DateLike,
    GenerationResult,
    Window,
    begin,
    check_rate,
    iso_us,
    rng_uuids,
)
from lakehouse.synthetic.db import connect, table
from lakehouse.synthetic.pools import CampaignPool, ProductPool, load_campaigns, load_customers, load_products
from lakehouse.synthetic.schema import ensure_schema

EVENT_TYPES = ("page_view", "product_view", "add_to_cart", "checkout_start", "purchase")
FEED_COLUMNS = ("partner_id", "sku", "partner_price", "currency", "stock_level", "feed_date")
SITE = "https://shop.example"
REFERRERS = {
    "direct": None,
    "organic_search": "https://www.google.com/",
    "social": "https://www.instagram.com/",
    "search": "https://www.google.com/aclk",
    "email": "https://mail.example/newsletter",
    "display": "https://ads.example/banner",
    "affiliate": "https://deals.example/",
}


@dataclass
class LandingObject:
    key: str
    good: int
    bad: int

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "good": self.good, "bad": self.bad}


# ---------------------------------------------------------------------------- clickstream
def build_session_events(
    rng: np.random.Generator,
    start_us: int,
    customer_id: int | None,
    products: ProductPool,
    campaign_id: str | None,
    channel: str,
    order: tuple[int, int, int] | None,
    not_before_us: int = 0,
) -> list[dict[str, Any]]:
    """One browsing session walking down the funnel; ends in `order`'s purchase if one is given.

    A purchase happens exactly at the order's `ordered_at`; earlier steps lead up to it but never
    before `not_before_us` (the window start).

    Each step is reached by fewer sessions: page views -> product views (75%) -> add to cart (35%)
    -> checkout (50%) -> purchase (only with an order to stand for, so order_id is always real).
    """
    session_id = rng_uuids(rng, 1)[0]
    device = vocab.DEVICES[int(rng.choice(len(vocab.DEVICES), p=vocab.DEVICE_P))]
    steps: list[tuple[str, int | None, str]] = []
    for _ in range(int(rng.integers(1, 5))):
        category = list(vocab.CATEGORIES)[int(rng.integers(0, len(vocab.CATEGORIES)))]
        steps.append(("page_view", None, f"/c/{category}"))
    viewed: list[int] = []
    if order is not None or rng.random() < 0.75:
        for p in rng.choice(len(products), size=int(rng.integers(1, 6)), p=products.weights):
            viewed.append(int(products.ids[p]))
            steps.append(("product_view", viewed[-1], f"/p/{viewed[-1]}"))
    if viewed and (order is not None or rng.random() < 0.35):
        for pid in viewed[: int(rng.integers(1, len(viewed) + 1))]:
            steps.append(("add_to_cart", pid, f"/p/{pid}"))
        if order is not None or rng.random() < 0.5:
            steps.append(("checkout_start", None, "/checkout"))
    if order is not None:
        steps.append(("purchase", None, "/checkout/complete"))
        customer_id = order[1]
    gaps = np.cumsum(rng.integers(5, 120, size=len(steps))) * 1_000_000
    if order is None:
        at = start_us + gaps
    else:
        at = np.minimum(np.maximum(order[2] - int(gaps[-1]), not_before_us) + gaps - gaps[0], order[2])
        at[-1] = order[2]
    times = iso_us(at)
    ids = rng_uuids(rng, len(steps))
    referrer = REFERRERS.get(channel)
    events = []
    for i, (event_type, product_id, path) in enumerate(steps):
        events.append(
            {
                "event_id": ids[i],
                "event_type": event_type,
                "event_ts": str(times[i]),
                "session_id": session_id,
                "customer_id": customer_id,
                "product_id": product_id,
                "order_id": order[0] if event_type == "purchase" and order else None,
                "page_url": SITE + path,
                "referrer": referrer if i == 0 else SITE + steps[i - 1][2],
                "campaign_id": campaign_id,
                "device": device,
            }
        )
    return events


def corrupt_json(rng: np.random.Generator, line: str) -> str:
    """A line no JSON parser accepts (truncated object, or not JSON at all)."""
    if rng.random() < 0.5:
        return line[: max(1, len(line) // 2)]
    return "{event_id: " + line[1:20].replace('"', "'")


def encode_lines(rng: np.random.Generator, records: list[dict[str, Any]], malformed_rate: float) -> tuple[str, int]:
    """JSON lines with about `malformed_rate` of them broken; returns the text and the broken count."""
    bad = rng.random(len(records)) < malformed_rate
    lines = [json.dumps(r, separators=(",", ":")) for r in records]
    lines = [corrupt_json(rng, line) if b else line for line, b in zip(lines, bad.tolist(), strict=True)]
    return "\n".join(lines) + "\n", int(bad.sum())


def _load_day_orders(
    conn: psycopg.Connection, settings: Settings, window: Window
) -> dict[int, list[tuple[int, int, int]]]:
    """Orders of the window by day number: (order_id, customer_id, ordered_at µs)."""
    rows = conn.execute(
        sql.SQL(
            """select order_id, customer_id, (extract(epoch from ordered_at) * 1e6)::bigint from {}
               where ordered_at >= %s and ordered_at < %s order by order_id"""
        ).format(table(settings.oltp_schema, "orders")),
        (window.start_date, window.end_date),
    ).fetchall()
    by_day: dict[int, list[tuple[int, int, int]]] = defaultdict(list)
    for row in rows:
        by_day[row[2] // DAY_US].append(row)
    return by_day


def _key(prefix: str, day: dt.date, stem: str, payload: bytes, suffix: str) -> str:
    digest = hashlib.sha256(payload).hexdigest()[:20]
    return f"{prefix}/dt={day.isoformat()}/{stem}-{digest}{suffix}"


def generate_clickstream(
    settings: Settings,
    count: int,
    seed: int | None = None,
    start_date: DateLike = None,
    days: int | None = None,
    malformed_rate: float = 0.0,
) -> GenerationResult:
    """`count` browsing sessions spread over the window -> one gzipped JSON-lines object per day.

    About 6% of sessions end in a purchase of a real order placed that day (when orders exist).
    """
    check_rate(malformed_rate)
    result, rng = begin("clickstream", count, seed, start_date, days)
    window = result.window
    ensure_schema(settings)
    with connect(settings) as conn:
        customers = load_customers(conn, settings, required=False)
        products = load_products(conn, settings)
        campaigns = load_campaigns(conn, settings)
        day_orders = _load_day_orders(conn, settings, window)
    # sessions start at least an hour before the window ends, so all their events fall inside it
    span = window.end_us - window.start_us - 3_600_000_000
    starts = np.sort(window.start_us + (rng.random(count) * span).astype(np.int64))
    campaign_idx = campaigns.attribute(rng, starts, 0.3)
    known = (rng.random(count) < 0.55) & (len(customers) > 0)
    cust = customers.pick(rng, starts) if len(customers) else np.zeros(count, np.int64)
    buys = rng.random(count) < 0.06
    by_day: dict[dt.date, list[dict[str, Any]]] = defaultdict(list)
    for i in range(count):
        day_number = int(starts[i] // DAY_US)
        orders = day_orders.get(day_number)
        order = orders.pop(int(rng.integers(0, len(orders)))) if buys[i] and orders else None
        cid = int(customers.ids[cust[i]]) if known[i] else None
        channel = _session_channel(rng, campaigns, int(campaign_idx[i]))
        campaign = None if campaign_idx[i] < 0 else str(campaigns.ids[campaign_idx[i]])
        for event in build_session_events(
            rng, int(starts[i]), cid, products, campaign, channel, order, window.start_us
        ):
            by_day[dt.date.fromisoformat(event["event_ts"][:10])].append(event)
    s3 = s3_client(settings)
    for day in sorted(by_day):
        events = sorted(by_day[day], key=lambda e: (e["event_ts"], e["event_id"]))
        text, bad = encode_lines(rng, events, malformed_rate)
        raw = text.encode()
        key = _key("clickstream", day, "events", raw, ".json.gz")
        s3.put_object(
            Bucket=settings.landing_bucket,
            Key=key,
            Body=gzip.compress(raw, mtime=0),
            ContentType="application/gzip",  # no Content-Encoding: readers must not unzip it on the fly
        )
        result.objects.append(LandingObject(key, len(events) - bad, bad).to_dict())
    result.counts["clickstream_sessions"] = count
    _count_objects(result, "clickstream", "events")
    return result.finish()


def _session_channel(rng: np.random.Generator, campaigns: CampaignPool, index: int) -> str:
    if index >= 0:
        return str(campaigns.channels[index])
    return ("direct", "organic_search", "social", "email")[int(rng.choice(4, p=(0.4, 0.4, 0.12, 0.08)))]


def _count_objects(result: GenerationResult, prefix: str, noun: str) -> None:
    result.counts[f"{prefix}_objects"] = len(result.objects)
    result.counts[f"{prefix}_{noun}"] = sum(o["good"] for o in result.objects)
    result.counts[f"{prefix}_malformed_{noun}"] = sum(o["bad"] for o in result.objects)


# ---------------------------------------------------------------------------- partner feeds
def partner_id(number: int) -> str:
    return f"partner_{number:03d}"


def build_feed(
    rng: np.random.Generator,
    partner: str,
    day: dt.date,
    products: ProductPool,
    share: float,
    currency: str,
    malformed_rate: float = 0.0,
) -> tuple[list[list[str]], int]:
    """Rows of one partner's daily feed (about `share` of the catalogue) and how many are broken."""
    listed = np.flatnonzero(rng.random(len(products)) < share)
    price = products.price_cents[listed] * rng.uniform(0.85, 1.15, size=len(listed))
    stock = rng.integers(0, 1000, size=len(listed))
    rows = [
        [
            partner,
            str(products.skus[p]),
            f"{price[j] / 100:.2f}",
            currency,
            str(int(stock[j])),
            day.isoformat(),
        ]
        for j, p in enumerate(listed.tolist())
    ]
    bad = rng.random(len(rows)) < malformed_rate
    rows = [corrupt_row(rng, r) if b else r for r, b in zip(rows, bad.tolist(), strict=True)]
    return rows, int(bad.sum())


def corrupt_row(rng: np.random.Generator, row: list[str]) -> list[str]:
    """A row a strict reader rejects: a column missing, one too many, or a non-numeric price."""
    kind = int(rng.integers(0, 3))
    if kind == 0:
        return row[:-1]
    if kind == 1:
        return [*row, "unexpected"]
    return [*row[:2], str(rng.choice(["N/A", "12,99 EUR", "twelve", "price?"])), *row[3:]]


def generate_partner_feeds(
    settings: Settings,
    count: int,
    seed: int | None = None,
    start_date: DateLike = None,
    days: int | None = None,
    malformed_rate: float = 0.0,
) -> GenerationResult:
    """One CSV feed per partner (`count` partners: partner_001...) and day of the window."""
    check_rate(malformed_rate)
    result, rng = begin("partner_feeds", count, seed, start_date, days)
    ensure_schema(settings)
    with connect(settings) as conn:
        products = load_products(conn, settings)
    s3 = s3_client(settings)
    for number in range(1, count + 1):
        partner = partner_id(number)
        share = float(rng.uniform(0.3, 0.7))
        currency = "USD" if rng.random() < 0.7 else "EUR"
        for day in result.window.dates():
            rows, bad = build_feed(rng, partner, day, products, share, currency, malformed_rate)
            buffer = io.StringIO()
            writer = csv.writer(buffer, lineterminator="\n")
            writer.writerow(FEED_COLUMNS)
            writer.writerows(rows)
            raw = buffer.getvalue().encode()
            key = _key(f"partner_feeds/{partner}", day, "feed", raw, ".csv")
            s3.put_object(Bucket=settings.landing_bucket, Key=key, Body=raw, ContentType="text/csv")
            result.objects.append(LandingObject(key, len(rows) - bad, bad).to_dict())
    _count_objects(result, "partner_feed", "rows")
    return result.finish()
