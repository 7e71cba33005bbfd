"""Snapshots of existing source rows the generators draw references from (as numpy arrays).

Loaded in primary-key order so the same database state always yields the same arrays (determinism).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import psycopg
from psycopg import sql

from lakehouse.settings import Settings
from lakehouse.synthetic.common import DAY_US, SyntheticDataError


@dataclass(frozen=True)
class CustomerPool:
    """Customers sorted by signup time, so 'customers who existed at time t' is a prefix."""

    ids: np.ndarray  # int64
    created_us: np.ndarray  # int64, ascending
    shipping_address_id: np.ndarray  # int64, -1 when the customer has no shipping address

    def __len__(self) -> int:
        return len(self.ids)

    def pick(self, rng: np.random.Generator, at_us: np.ndarray) -> np.ndarray:
        """Index of a random customer who had signed up by each time (any customer if none had)."""
        eligible = np.searchsorted(self.created_us, at_us, side="right")
        eligible = np.where(eligible == 0, len(self.ids), eligible)
        return np.minimum((rng.random(len(at_us)) * eligible).astype(np.int64), len(self.ids) - 1)


@dataclass(frozen=True)
class ProductPool:
    """Active products with their current price and a stable popularity weight."""

    ids: np.ndarray  # int64
    price_cents: np.ndarray  # int64
    skus: np.ndarray  # object (str)

    def __len__(self) -> int:
        return len(self.ids)

    @cached_property
    def weights(self) -> np.ndarray:
        """Heavy-tailed popularity derived from the id (the same products sell well in every batch)."""
        mixed = (self.ids.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(11)
        u = mixed.astype(np.float64) / float(1 << 53)
        w = (u + 0.02) ** -1.2
        return w / w.sum()


@dataclass(frozen=True)
class CampaignPool:
    ids: np.ndarray  # object (str)
    start_day: np.ndarray  # int64, days since epoch
    end_day: np.ndarray  # int64, inclusive
    channels: np.ndarray  # object (str)

    def __len__(self) -> int:
        return len(self.ids)

    def attribute(self, rng: np.random.Generator, at_us: np.ndarray, share: float) -> np.ndarray:
        """Campaign index for about `share` of the events, among campaigns active on their day; -1 = none."""
        result = np.full(len(at_us), -1, dtype=np.int64)
        chosen = rng.random(len(at_us)) < share
        pick = rng.random(len(at_us))
        if not len(self.ids):
            return result
        days = at_us // DAY_US
        for day in np.unique(days[chosen]):
            active = np.flatnonzero((self.start_day <= day) & (self.end_day >= day))
            if len(active):
                rows = np.flatnonzero(chosen & (days == day))
                result[rows] = active[(pick[rows] * len(active)).astype(np.int64)]
        return result

    def id_list(self, index: np.ndarray) -> list[str | None]:
        return [None if i < 0 else str(self.ids[i]) for i in index.tolist()]


def load_customers(conn: psycopg.Connection, settings: Settings, required: bool = True) -> CustomerPool:
    query = sql.SQL(
        """select c.customer_id, (extract(epoch from c.created_at) * 1e6)::bigint, coalesce(a.address_id, -1)
           from {s}.customers c
           left join (select customer_id, min(address_id) as address_id from {s}.addresses
                      where kind = 'shipping' group by customer_id) a using (customer_id)
           order by c.created_at, c.customer_id"""
    ).format(s=sql.Identifier(settings.oltp_schema))
    rows = conn.execute(query).fetchall()
    if required and not rows:
        raise SyntheticDataError("no customers exist yet: generate customers first")
    arr = np.array(rows, dtype=np.int64).reshape(-1, 3)
    return CustomerPool(arr[:, 0].copy(), arr[:, 1].copy(), arr[:, 2].copy())


def load_products(conn: psycopg.Connection, settings: Settings, required: bool = True) -> ProductPool:
    """Active products (all products if none is active)."""
    query = sql.SQL(
        """select product_id, (price * 100)::bigint, sku, is_active from {s}.products order by product_id"""
    ).format(s=sql.Identifier(settings.oltp_schema))
    rows = conn.execute(query).fetchall()
    if required and not rows:
        raise SyntheticDataError("no products exist yet: generate products first")
    active = [r for r in rows if r[3]] or rows
    return ProductPool(
        np.array([r[0] for r in active], dtype=np.int64),
        np.array([r[1] for r in active], dtype=np.int64),
        np.array([r[2] for r in active], dtype=object),
    )


def load_campaigns(conn: psycopg.Connection, settings: Settings) -> CampaignPool:
    query = sql.SQL(
        """select campaign_id, start_date - date '1970-01-01', end_date - date '1970-01-01', channel
           from {s}.campaigns order by campaign_id"""
    ).format(s=sql.Identifier(settings.marketing_schema))
    rows = conn.execute(query).fetchall()
    return CampaignPool(
        np.array([r[0] for r in rows], dtype=object),
        np.array([r[1] for r in rows], dtype=np.int64),
        np.array([r[2] for r in rows], dtype=np.int64),
        np.array([r[3] for r in rows], dtype=object),
    )
