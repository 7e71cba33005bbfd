"""Orders with their items and payments: a vectorised builder and a COPY writer.

Money is integer cents throughout, so `line_total = quantity * unit_price - discount` and
`order_total = sum(line_total)` hold exactly; it becomes numeric text only when written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg

from lakehouse.settings import Settings
from lakehouse.synthetic.common import DAY_US, DateLike, GenerationResult, Window, begin, cents_to_str, iso_us
from lakehouse.synthetic.db import connect, copy_rows, reserve_ids
from lakehouse.synthetic.pools import (
    CampaignPool,
    CustomerPool,
    ProductPool,
    load_campaigns,
    load_customers,
    load_products,
)
from lakehouse.synthetic.schema import ensure_schema

ORDER_STATUSES = ("pending", "paid", "shipped", "delivered", "cancelled", "returned")
PAYMENT_METHODS = ("card", "paypal", "bank_transfer", "gift_card")
PAYMENT_METHOD_P = (0.62, 0.24, 0.08, 0.06)
PAYMENT_STATUSES = ("authorized", "captured", "refunded", "failed")
#: Share of orders attributed to a marketing campaign (when one is active that day).
CAMPAIGN_SHARE = 0.3

ORDER_COLUMNS = (
    "order_id",
    "customer_id",
    "shipping_address_id",
    "status",
    "currency",
    "order_total",
    "campaign_id",
    "ordered_at",
    "created_at",
    "updated_at",
)
ITEM_COLUMNS = (
    "order_id",
    "product_id",
    "quantity",
    "unit_price",
    "discount",
    "line_total",
    "created_at",
    "updated_at",
)
PAYMENT_COLUMNS = ("order_id", "method", "status", "amount", "paid_at", "created_at", "updated_at")

#: Status mix by order age: upper age bound in days -> probabilities over ORDER_STATUSES.
_STATUS_BY_AGE: tuple[tuple[float, tuple[float, ...]], ...] = (
    (1 / 96, (1.0, 0.0, 0.0, 0.0, 0.0, 0.0)),  # < 15 minutes: not paid yet
    (0.25, (0.55, 0.40, 0.0, 0.0, 0.05, 0.0)),
    (2.0, (0.08, 0.50, 0.37, 0.0, 0.05, 0.0)),
    (6.0, (0.0, 0.04, 0.51, 0.40, 0.05, 0.0)),
    (np.inf, (0.0, 0.0, 0.01, 0.86, 0.05, 0.08)),
)
#: Hour-of-day shape of shopping (UTC), evenings busiest.
_HOUR_WEIGHTS = np.array([2, 1, 1, 1, 1, 2, 3, 4, 5, 6, 6, 7, 7, 7, 6, 6, 7, 8, 9, 10, 10, 9, 6, 4], dtype=np.float64)


@dataclass
class OrderBatch:
    """Column arrays of a batch of orders, their items (flattened) and one payment per order."""

    order_id: np.ndarray
    customer_id: np.ndarray
    shipping_address_id: np.ndarray  # -1 = none
    status: np.ndarray  # index into ORDER_STATUSES
    order_total: np.ndarray  # cents
    campaign_id: list[str | None]
    ordered_us: np.ndarray
    updated_us: np.ndarray
    item_order: np.ndarray  # index into the order arrays
    item_product_id: np.ndarray
    quantity: np.ndarray
    unit_price: np.ndarray  # cents
    discount: np.ndarray  # cents
    line_total: np.ndarray  # cents
    payment_method: np.ndarray  # index into PAYMENT_METHODS
    payment_status: np.ndarray  # index into PAYMENT_STATUSES
    paid_us: np.ndarray  # -1 = not paid
    payment_updated_us: np.ndarray

    def __len__(self) -> int:
        return len(self.order_id)


def sample_order_times(rng: np.random.Generator, n: int, window: Window) -> np.ndarray:
    """Ascending order timestamps over the window: growing day by day, busier weekends and evenings."""
    days = np.arange(window.days)
    weekday = (window.start_us // DAY_US + days + 3) % 7  # 0 = Monday (1970-01-01 was a Thursday)
    day_w = (1.0 + 0.01 * days) * np.where(weekday >= 5, 1.25, 1.0)
    day = rng.choice(window.days, size=n, p=day_w / day_w.sum())
    hour = rng.choice(24, size=n, p=_HOUR_WEIGHTS / _HOUR_WEIGHTS.sum())
    seconds = rng.integers(0, 3600, size=n)
    return np.sort(window.start_us + day * DAY_US + hour * 3_600_000_000 + seconds * 1_000_000)


def _statuses(rng: np.random.Generator, age_days: np.ndarray) -> np.ndarray:
    bounds = np.array([b for b, _ in _STATUS_BY_AGE])
    cum = np.cumsum(np.array([p for _, p in _STATUS_BY_AGE]), axis=1)
    bucket = np.searchsorted(bounds, age_days, side="right")
    u = rng.random(len(age_days))[:, None]
    return np.minimum((u >= cum[bucket]).sum(axis=1), len(ORDER_STATUSES) - 1)


def _status_times(rng: np.random.Generator, status: np.ndarray, ordered: np.ndarray, ref: int) -> np.ndarray:
    """When each order reached its status (never after the reference time)."""
    minute, day = 60_000_000, DAY_US
    lag_lo = np.array([0, 5 * minute, day, 2 * day, 10 * minute, 7 * day])[status]
    lag_hi = np.array([0, 60 * minute, 2 * day, 6 * day, day, 20 * day])[status]
    lag = lag_lo + (rng.random(len(status)) * (lag_hi - lag_lo)).astype(np.int64)
    return np.maximum(np.minimum(ordered + lag, ref), ordered) // 1_000_000 * 1_000_000


def build_orders(
    rng: np.random.Generator,
    order_ids: np.ndarray,
    ordered_us: np.ndarray,
    reference_us: int,
    customers: CustomerPool,
    products: ProductPool,
    campaigns: CampaignPool,
) -> OrderBatch:
    """Orders placed at `ordered_us`, with the status each would have reached by `reference_us`."""
    n = len(order_ids)
    cust = customers.pick(rng, ordered_us)
    status = _statuses(rng, (reference_us - ordered_us) / DAY_US)
    updated = _status_times(rng, status, ordered_us, reference_us)

    n_items = 1 + np.minimum(rng.poisson(1.4, size=n), 7)
    item_order = np.repeat(np.arange(n), n_items)
    m = len(item_order)
    prod = rng.choice(len(products), size=m, p=products.weights)
    quantity = np.minimum(rng.geometric(0.65, size=m), 10)
    unit_price = products.price_cents[prod]
    gross = quantity * unit_price
    pct = rng.choice(np.array([5, 10, 15, 20, 25]), size=m)
    discount = np.where(rng.random(m) < 0.15, gross * pct // 100, 0)
    line_total = gross - discount
    starts = np.concatenate(([0], np.cumsum(n_items)[:-1]))
    order_total = np.add.reduceat(line_total, starts) if m else np.zeros(n, np.int64)

    method = rng.choice(len(PAYMENT_METHODS), size=n, p=PAYMENT_METHOD_P)
    # pending -> authorized; paid/shipped/delivered -> captured; cancelled -> failed or refunded;
    # returned -> refunded
    cancelled_refund = rng.random(n) < 0.5
    pay_status = np.array([0, 1, 1, 1, 3, 2])[status]
    pay_status = np.where((status == 4) & cancelled_refund, 2, pay_status)
    paid = ordered_us + rng.integers(30, 1800, size=n) * 1_000_000
    paid = np.where(np.isin(pay_status, (1, 2)), np.minimum(paid, np.maximum(updated, ordered_us)), -1)
    pay_updated = np.where(pay_status == 1, np.maximum(paid, ordered_us), updated)

    return OrderBatch(
        order_id=order_ids,
        customer_id=customers.ids[cust],
        shipping_address_id=customers.shipping_address_id[cust],
        status=status,
        order_total=order_total,
        campaign_id=campaigns.id_list(campaigns.attribute(rng, ordered_us, CAMPAIGN_SHARE)),
        ordered_us=ordered_us // 1_000_000 * 1_000_000,
        updated_us=updated,
        item_order=item_order,
        item_product_id=products.ids[prod],
        quantity=quantity,
        unit_price=unit_price,
        discount=discount,
        line_total=line_total,
        payment_method=method,
        payment_status=pay_status,
        paid_us=paid // 1_000_000 * 1_000_000,
        payment_updated_us=pay_updated // 1_000_000 * 1_000_000,
    )


def write_orders(conn: psycopg.Connection, settings: Settings, batch: OrderBatch) -> dict[str, int]:
    """COPY a batch into orders, order_items and payments (item/payment ids come from their identity)."""
    schema = settings.oltp_schema
    ordered, updated = iso_us(batch.ordered_us).tolist(), iso_us(batch.updated_us).tolist()
    ship: list[Any] = [None if a < 0 else a for a in batch.shipping_address_id.tolist()]
    status = [ORDER_STATUSES[s] for s in batch.status.tolist()]
    orders = zip(
        batch.order_id.tolist(),
        batch.customer_id.tolist(),
        ship,
        status,
        ["USD"] * len(batch),
        cents_to_str(batch.order_total),
        batch.campaign_id,
        ordered,
        ordered,
        updated,
        strict=True,
    )
    item_ts = [ordered[i] for i in batch.item_order.tolist()]
    items = zip(
        batch.order_id[batch.item_order].tolist(),
        batch.item_product_id.tolist(),
        batch.quantity.tolist(),
        cents_to_str(batch.unit_price),
        cents_to_str(batch.discount),
        cents_to_str(batch.line_total),
        item_ts,
        item_ts,
        strict=True,
    )
    paid_iso = iso_us(batch.paid_us).tolist()
    paid: list[Any] = [None if p < 0 else paid_iso[i] for i, p in enumerate(batch.paid_us.tolist())]
    payments = zip(
        batch.order_id.tolist(),
        [PAYMENT_METHODS[m] for m in batch.payment_method.tolist()],
        [PAYMENT_STATUSES[s] for s in batch.payment_status.tolist()],
        cents_to_str(batch.order_total),
        paid,
        ordered,
        iso_us(batch.payment_updated_us).tolist(),
        strict=True,
    )
    return {
        "orders": copy_rows(conn, schema, "orders", ORDER_COLUMNS, orders),
        "order_items": copy_rows(conn, schema, "order_items", ITEM_COLUMNS, items),
        "payments": copy_rows(conn, schema, "payments", PAYMENT_COLUMNS, payments),
    }


#: Orders built and copied per chunk (bounds memory for millions of orders).
CHUNK = 50_000


def generate_orders(
    settings: Settings, count: int, seed: int | None = None, start_date: DateLike = None, days: int | None = None
) -> GenerationResult:
    """Insert `count` orders over the window with items and payments (one transaction, COPY)."""
    result, rng = begin("orders", count, seed, start_date, days)
    ensure_schema(settings)
    window = result.window
    with connect(settings) as conn:
        customers = load_customers(conn, settings)
        products = load_products(conn, settings)
        campaigns = load_campaigns(conn, settings)
        times = sample_order_times(rng, count, window)
        reference = window.end_us - 1_000_000  # statuses as of the last second of the window
        ids = reserve_ids(conn, settings, "orders", "order_id", count)
        for lo in range(0, count, CHUNK):
            batch = build_orders(
                rng, ids[lo : lo + CHUNK], times[lo : lo + CHUNK], reference, customers, products, campaigns
            )
            for key, value in write_orders(conn, settings, batch).items():
                result.counts[key] = result.counts.get(key, 0) + value
    return result.finish()
