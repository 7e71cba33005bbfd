"""DynamoDB sources: shopping carts, web sessions and product reviews.

Items reference existing customers/products/campaigns of PostgreSQL. Keys are UUIDs drawn from the
seeded RNG, so repeating a call rewrites the same items (idempotent) instead of adding new ones.
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import numpy as np
from boto3.dynamodb.types import TypeSerializer

from lakehouse.aws import dynamodb_client
from lakehouse.settings import Settings
from lakehouse.synthetic import vocab
from lakehouse.synthetic.common import DAY_US, DateLike, GenerationResult, Window, begin, iso_us, rng_uuids
from lakehouse.synthetic.db import connect
from lakehouse.synthetic.pools import (
    CampaignPool,
    CustomerPool,
    ProductPool,
    load_campaigns,
    load_customers,
    load_products,
)
from lakehouse.synthetic.schema import ensure_schema

Item = dict[str, Any]

CART_STATUSES = ("active", "converted", "abandoned")
ORGANIC_CHANNELS = ("direct", "organic_search", "referral", "social", "email")
#: campaign channel -> session channel
PAID_CHANNEL = {
    "search": "paid_search",
    "social": "paid_social",
    "email": "email",
    "display": "display",
    "affiliate": "affiliate",
}
RATING_P = (0.06, 0.06, 0.12, 0.30, 0.46)
BATCH = 25  # batch_write_item limit

_serializer = TypeSerializer()


def _times(rng: np.random.Generator, n: int, window: Window) -> np.ndarray:
    return (window.start_us + (rng.random(n) * (window.end_us - window.start_us)).astype(np.int64)) // 10**6 * 10**6


def _price(cents: int) -> Decimal:
    return Decimal(cents).scaleb(-2)


def build_carts(
    rng: np.random.Generator, n: int, window: Window, customers: CustomerPool, products: ProductPool
) -> list[Item]:
    created = np.sort(_times(rng, n, window))
    cust = customers.pick(rng, created)
    ids = rng_uuids(rng, n)
    status = rng.choice(len(CART_STATUSES), size=n, p=(0.3, 0.4, 0.3)).tolist()
    n_items = rng.integers(1, 6, size=n).tolist()
    updated = np.minimum(created + rng.integers(0, 3 * DAY_US, size=n), window.end_us - 1) // 10**6 * 10**6
    created_iso, updated_iso = iso_us(created), iso_us(updated)
    carts: list[Item] = []
    for i in range(n):
        k = min(n_items[i], len(products))
        prod = rng.choice(len(products), size=k, replace=False, p=products.weights)
        items = [
            {
                "product_id": int(products.ids[p]),
                "quantity": int(q),
                "unit_price": _price(int(products.price_cents[p])),
            }
            for p, q in zip(prod, rng.integers(1, 4, size=k), strict=True)
        ]
        carts.append(
            {
                "cart_id": ids[i],
                "customer_id": int(customers.ids[cust[i]]),
                "items": items,
                "status": CART_STATUSES[status[i]],
                "created_at": str(created_iso[i]),
                "updated_at": str(updated_iso[i]),
            }
        )
    return carts


def build_sessions(
    rng: np.random.Generator, n: int, window: Window, customers: CustomerPool, campaigns: CampaignPool
) -> list[Item]:
    """Web sessions; ~40% anonymous (no customer_id); campaign traffic carries its campaign_id."""
    started = np.sort(_times(rng, n, window))
    ids = rng_uuids(rng, n)
    known = (rng.random(n) < 0.6) & (len(customers) > 0)
    cust = customers.pick(rng, started) if len(customers) else np.zeros(n, np.int64)
    duration = np.minimum(rng.lognormal(5.5, 1.0, size=n), 4 * 3600).astype(np.int64) * 10**6
    ended = np.minimum(started + duration, window.end_us - 1) // 10**6 * 10**6
    device = rng.choice(len(vocab.DEVICES), size=n, p=vocab.DEVICE_P).tolist()
    organic = rng.integers(0, len(ORGANIC_CHANNELS), size=n).tolist()
    campaign = campaigns.attribute(rng, started, 0.35)
    page_views = (1 + rng.poisson(np.maximum(duration / 10**6 / 45, 0.5))).tolist()
    started_iso, ended_iso = iso_us(started), iso_us(ended)
    sessions: list[Item] = []
    for i in range(n):
        item: Item = {
            "session_id": ids[i],
            "started_at": str(started_iso[i]),
            "ended_at": str(ended_iso[i]),
            "device": vocab.DEVICES[device[i]],
            "channel": ORGANIC_CHANNELS[organic[i]],
            "page_views": int(page_views[i]),
            "updated_at": str(ended_iso[i]),
        }
        if known[i]:
            item["customer_id"] = int(customers.ids[cust[i]])
        if campaign[i] >= 0:
            item["campaign_id"] = str(campaigns.ids[campaign[i]])
            item["channel"] = PAID_CHANNEL[str(campaigns.channels[campaign[i]])]
        sessions.append(item)
    return sessions


def build_reviews(
    rng: np.random.Generator, n: int, window: Window, customers: CustomerPool, products: ProductPool
) -> list[Item]:
    created = np.sort(_times(rng, n, window))
    ids = rng_uuids(rng, n)
    cust = customers.pick(rng, created)
    prod = rng.choice(len(products), size=n, p=products.weights)
    rating = (1 + rng.choice(5, size=n, p=RATING_P)).tolist()
    edited = rng.random(n) < 0.1
    updated = np.where(edited, np.minimum(created + rng.integers(0, 5 * DAY_US, size=n), window.end_us - 1), created)
    created_iso, updated_iso = iso_us(created), iso_us(updated // 10**6 * 10**6)
    reviews: list[Item] = []
    for i in range(n):
        r = rating[i]
        titles, phrases = vocab.REVIEW_TITLES[r], vocab.REVIEW_PHRASES[r]
        picks = rng.choice(len(phrases), size=2, replace=False)
        body = f"{phrases[picks[0]].capitalize()}, {phrases[picks[1]]}. " + (
            "Would recommend to friends." if r >= 4 else "Expected more." if r <= 2 else "It is fine overall."
        )
        reviews.append(
            {
                "review_id": ids[i],
                "product_id": int(products.ids[prod[i]]),
                "customer_id": int(customers.ids[cust[i]]),
                "rating": r,
                "title": titles[int(rng.integers(0, len(titles)))],
                "body": body,
                "created_at": str(created_iso[i]),
                "updated_at": str(updated_iso[i]),
            }
        )
    return reviews


def put_items(settings: Settings, logical_table: str, items: list[Item]) -> int:
    """batch_write_item in batches of 25, retrying unprocessed items with backoff."""
    client = dynamodb_client(settings)
    name = settings.dynamodb_table(logical_table)
    for lo in range(0, len(items), BATCH):
        pending: dict[str, Any] = {
            name: [
                {"PutRequest": {"Item": {k: _serializer.serialize(v) for k, v in item.items()}}}
                for item in items[lo : lo + BATCH]
            ]
        }
        for attempt in range(8):
            response = client.batch_write_item(RequestItems=pending)
            pending = response.get("UnprocessedItems") or {}
            if not pending:
                break
            time.sleep(0.05 * 2**attempt)
        else:
            raise RuntimeError(f"DynamoDB kept items unprocessed in {name}")
    return len(items)


def _generate(
    settings: Settings, entity: str, count: int, seed: int | None, start_date: DateLike, days: int | None
) -> GenerationResult:
    result, rng = begin(entity, count, seed, start_date, days)
    ensure_schema(settings)
    with connect(settings) as conn:
        if entity == "sessions":
            customers = load_customers(conn, settings, required=False)
            items = build_sessions(rng, count, result.window, customers, load_campaigns(conn, settings))
        else:
            customers, products = load_customers(conn, settings), load_products(conn, settings)
            build = build_carts if entity == "carts" else build_reviews
            items = build(rng, count, result.window, customers, products)
    result.counts[entity] = put_items(settings, entity, items)
    return result.finish()


def generate_carts(
    settings: Settings, count: int, seed: int | None = None, start_date: DateLike = None, days: int | None = None
) -> GenerationResult:
    """Put `count` carts of existing customers holding existing products."""
    return _generate(settings, "carts", count, seed, start_date, days)


def generate_sessions(
    settings: Settings, count: int, seed: int | None = None, start_date: DateLike = None, days: int | None = None
) -> GenerationResult:
    """Put `count` web sessions (anonymous ones when no customers exist)."""
    return _generate(settings, "sessions", count, seed, start_date, days)


def generate_reviews(
    settings: Settings, count: int, seed: int | None = None, start_date: DateLike = None, days: int | None = None
) -> GenerationResult:
    """Put `count` product reviews by existing customers."""
    return _generate(settings, "reviews", count, seed, start_date, days)
