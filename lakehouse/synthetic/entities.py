"""The entities the service can generate, one entry point for them, and the starter data set.

The API and the CLI both go through `generate(...)`, so validation and behaviour are identical.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from lakehouse.settings import Settings
from lakehouse.synthetic import dynamo, landing, marketing, oltp, orders
from lakehouse.synthetic.common import (
    MAX_COUNT,
    GenerationResult,
    SyntheticDataError,
    check_rate,
    make_window,
    new_seed,
)


@dataclass(frozen=True)
class Entity:
    name: str
    function: Callable[..., GenerationResult]
    default_count: int
    unit: str  # what `count` counts
    target: str  # where the data goes
    takes_malformed_rate: bool = False

    @property
    def max_count(self) -> int:
        return MAX_COUNT[self.name]


ENTITIES: dict[str, Entity] = {
    e.name: e
    for e in (
        Entity("customers", oltp.generate_customers, 1_000, "customers (+1-3 addresses each)", "postgres"),
        Entity("addresses", oltp.generate_addresses, 500, "addresses of existing customers", "postgres"),
        Entity("products", oltp.generate_products, 200, "products (+ stock in 2-4 warehouses)", "postgres"),
        Entity("inventory", oltp.generate_inventory, 100, "new (product, warehouse) stock rows", "postgres"),
        Entity("orders", orders.generate_orders, 5_000, "orders (+ items and a payment each)", "postgres"),
        Entity("campaigns", marketing.generate_campaigns, 20, "campaigns", "postgres (marketing)"),
        Entity(
            "ad_spend",
            marketing.generate_ad_spend,
            20,
            "campaigns to report daily spend for",
            "postgres (marketing)",
        ),
        Entity("carts", dynamo.generate_carts, 500, "carts", "dynamodb"),
        Entity("sessions", dynamo.generate_sessions, 2_000, "web sessions", "dynamodb"),
        Entity("reviews", dynamo.generate_reviews, 1_000, "reviews", "dynamodb"),
        Entity(
            "clickstream",
            landing.generate_clickstream,
            3_000,
            "browsing sessions (1-16 events each)",
            "s3",
            True,
        ),
        Entity(
            "partner_feeds",
            landing.generate_partner_feeds,
            3,
            "partners (one CSV per partner and day)",
            "s3",
            True,
        ),
    )
}
STARTER = "starter"
MAX_STARTER_SCALE = 20
#: entity -> count in the starter set at scale 1 (in this order: references exist before use)
STARTER_COUNTS: dict[str, int] = {
    "customers": 1_000,
    "products": 200,
    "campaigns": 20,
    "ad_spend": 20,
    "orders": 5_000,
    "carts": 500,
    "sessions": 2_000,
    "reviews": 1_000,
    "clickstream": 3_000,
    "partner_feeds": 3,
}
STARTER_FEED_DAYS = 3


def entity_names() -> list[str]:
    return [*ENTITIES, STARTER]


def generate(
    settings: Settings,
    entity: str,
    count: int | None = None,
    seed: int | None = None,
    start_date: dt.date | str | None = None,
    days: int | None = None,
    malformed_rate: float = 0.0,
) -> GenerationResult:
    """Generate `count` of `entity` (its default when None); raises SyntheticDataError before writing."""
    if entity == STARTER:
        if malformed_rate:
            raise SyntheticDataError("malformed_rate does not apply to the starter set")
        return generate_starter(settings, 1 if count is None else count, seed, start_date, days)
    spec = ENTITIES.get(entity)
    if spec is None:
        raise SyntheticDataError(f"unknown entity {entity!r}; known: {', '.join(entity_names())}")
    check_rate(malformed_rate)
    kwargs: dict[str, Any] = {"seed": seed, "start_date": start_date, "days": days}
    if spec.takes_malformed_rate:
        kwargs["malformed_rate"] = malformed_rate
    elif malformed_rate:
        raise SyntheticDataError("malformed_rate applies to clickstream and partner_feeds only")
    return spec.function(settings, spec.default_count if count is None else count, **kwargs)


def generate_starter(
    settings: Settings,
    scale: int = 1,
    seed: int | None = None,
    start_date: dt.date | str | None = None,
    days: int | None = None,
    only: Collection[str] | None = None,
) -> GenerationResult:
    """A small consistent data set in every source over the window (scale multiplies the sizes).

    Partner feeds cover the last few days of the window; everything else the whole window.
    `only` regenerates a subset exactly as the full set would have made it (same seed).
    """
    if isinstance(scale, bool) or not isinstance(scale, int) or not 1 <= scale <= MAX_STARTER_SCALE:
        raise SyntheticDataError(f"count (scale) of the starter set must be between 1 and {MAX_STARTER_SCALE}")
    window = make_window(start_date, days)
    seed = new_seed() if seed is None else seed
    result = GenerationResult(STARTER, seed, window)
    unknown = set(only or ()) - set(STARTER_COUNTS)
    if unknown:
        raise SyntheticDataError(f"not part of the starter set: {sorted(unknown)}")
    for name, base in STARTER_COUNTS.items():
        if only is not None and name not in only:
            continue
        start, n_days = window.start_date, window.days
        if name == "partner_feeds":
            n_days = min(STARTER_FEED_DAYS, window.days)
            start = window.end_date - dt.timedelta(days=n_days)
        count = base if name == "partner_feeds" else base * scale
        result.merge(ENTITIES[name].function(settings, count, seed=seed, start_date=start, days=n_days))
    return result.finish()
