"""Live OLTP activity for CDC: a steady stream of inserts, updates and deletes at a target rate.

Work is cut into ticks of 0.1 s; each tick is one small transaction holding its share of the
changes, so Debezium sees several commits per second. The pace is cumulative (changes due since
the start), so a slow tick is caught up by the next ones. Timestamps here are wall-clock `now`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import psycopg
from psycopg import sql

from lakehouse.settings import OLTP_TABLES, Settings
from lakehouse.synthetic.common import SyntheticDataError, make_rng, new_seed
from lakehouse.synthetic.db import connect, copy_rows, reserve_ids, table
from lakehouse.synthetic.oltp import (
    ADDRESS_COLUMNS,
    CUSTOMER_COLUMNS,
    address_kinds,
    build_addresses,
    build_customers,
)
from lakehouse.synthetic.orders import build_orders, write_orders
from lakehouse.synthetic.pools import (
    CampaignPool,
    CustomerPool,
    ProductPool,
    load_campaigns,
    load_customers,
    load_products,
)
from lakehouse.synthetic.schema import ensure_schema

MAX_RATE = 20_000.0
TICK = 0.1
#: operation -> (share of all row changes, row changes per operation on average)
MIX: dict[str, tuple[float, float]] = {
    "new_order": (0.30, 4.4),  # order + ~2.4 items + payment
    "advance_order": (0.30, 1.5),  # status update (+ payment update for paid/cancelled/returned)
    "stock_change": (0.14, 1.0),
    "email_change": (0.05, 1.0),
    "price_change": (0.04, 1.0),
    "new_customer": (0.04, 2.7),  # customer + addresses
    "new_address": (0.03, 1.0),
    "delete_address": (0.03, 1.0),  # addresses no order ships to
    "delete_order": (0.07, 3.4),  # cancelled unpaid orders with their items and payment
}
#: status -> (next status on the happy path, relative weight of picking an order in that status)
FLOW: dict[str, tuple[str, float]] = {
    "pending": ("paid", 1.0),
    "paid": ("shipped", 1.0),
    "shipped": ("delivered", 1.0),
    "delivered": ("returned", 0.03),
}
CANCEL_SHARE = 0.12  # of pending orders that advance
_KEEP_DELIVERED = 20_000


@dataclass
class SimulationSummary:
    """Committed row changes per table and operation."""

    seed: int = 0
    changes: dict[str, dict[str, int]] = field(
        default_factory=lambda: {t: {"insert": 0, "update": 0, "delete": 0} for t in OLTP_TABLES}
    )
    transactions: int = 0
    elapsed_seconds: float = 0.0
    interrupted: bool = False

    def add(self, name: str, op: str, n: int) -> None:
        self.changes[name][op] += n

    def merge(self, other: SimulationSummary) -> None:
        for name, ops in other.changes.items():
            for op, n in ops.items():
                self.changes[name][op] += n
        self.transactions += other.transactions

    @property
    def total(self) -> int:
        return sum(n for ops in self.changes.values() for n in ops.values())

    def totals(self, op: str) -> int:
        return sum(ops[op] for ops in self.changes.values())

    @property
    def rate(self) -> float:
        return self.total / self.elapsed_seconds if self.elapsed_seconds else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "changes": {t: dict(ops) for t, ops in self.changes.items()},
            "total": self.total,
            "transactions": self.transactions,
            "elapsed_seconds": round(self.elapsed_seconds, 3),
            "changes_per_second": round(self.rate, 1),
            "interrupted": self.interrupted,
        }


class _Bag:
    """Ids to draw from at random without replacement (O(1) swap-remove)."""

    def __init__(self, items: list[Any] | None = None, limit: int | None = None) -> None:
        self.items: list[Any] = list(items or [])
        self.limit = limit

    def __len__(self) -> int:
        return len(self.items)

    def add(self, values: list[Any]) -> None:
        self.items.extend(values)
        if self.limit is not None and len(self.items) > self.limit:
            del self.items[: len(self.items) - self.limit]

    def take(self, rng: np.random.Generator, n: int) -> list[Any]:
        taken = []
        for _ in range(min(n, len(self.items))):
            i = int(rng.integers(0, len(self.items)))
            self.items[i], self.items[-1] = self.items[-1], self.items[i]
            taken.append(self.items.pop())
        return taken


@dataclass
class _State:
    """What the simulator knows about the database; refreshed from what its own changes return."""

    customers: CustomerPool
    products: ProductPool
    campaigns: CampaignPool
    orders: dict[str, _Bag]
    cancelled: _Bag
    inventory: _Bag
    addresses: _Bag  # addresses that are not a customer's main shipping address
    product_index: dict[int, int] = field(default_factory=dict)

    def add_customers(self, ids: np.ndarray, created_us: int, shipping: np.ndarray) -> None:
        pool = self.customers
        self.customers = CustomerPool(
            np.concatenate([pool.ids, ids]),
            np.concatenate([pool.created_us, np.full(len(ids), created_us, np.int64)]),
            np.concatenate([pool.shipping_address_id, shipping]),
        )


def _load_state(conn: psycopg.Connection, settings: Settings) -> _State:
    s = settings.oltp_schema
    customers = load_customers(conn, settings)
    products = load_products(conn, settings)
    orders = {status: _Bag(limit=_KEEP_DELIVERED if status == "delivered" else None) for status in FLOW}
    open_rows = conn.execute(
        sql.SQL(
            """(select order_id, status from {o} where status in ('pending', 'paid', 'shipped')
                order by order_id desc limit 100000)
               union all
               (select order_id, status from {o} where status = 'delivered'
                order by order_id desc limit %s)"""
        ).format(o=table(s, "orders")),
        (_KEEP_DELIVERED,),
    ).fetchall()
    for order_id, status in open_rows:
        orders[status].add([order_id])
    cancelled = conn.execute(
        sql.SQL(
            """select o.order_id from {o} o join {p} p using (order_id)
               where o.status = 'cancelled' and p.status = 'failed' order by o.order_id limit 10000"""
        ).format(o=table(s, "orders"), p=table(s, "payments"))
    ).fetchall()
    stock = conn.execute(
        sql.SQL("select product_id, warehouse from {} order by 1, 2 limit 500000").format(table(s, "inventory"))
    ).fetchall()
    spare = conn.execute(
        sql.SQL(
            """select a.address_id from {a} a
               where a.address_id not in (select min(address_id) from {a}
                                          where kind = 'shipping' group by customer_id)
                 and not exists (select 1 from {o} o where o.shipping_address_id = a.address_id)
               order by a.address_id limit 100000"""
        ).format(a=table(s, "addresses"), o=table(s, "orders"))
    ).fetchall()
    return _State(
        customers=customers,
        products=products,
        campaigns=load_campaigns(conn, settings),
        orders=orders,
        cancelled=_Bag([r[0] for r in cancelled]),
        inventory=_Bag([tuple(r) for r in stock]),
        addresses=_Bag([r[0] for r in spare]),
        product_index={int(p): i for i, p in enumerate(products.ids.tolist())},
    )


class _Tick:
    """One transaction's worth of changes."""

    def __init__(
        self,
        conn: psycopg.Connection,
        settings: Settings,
        state: _State,
        rng: np.random.Generator,
        now_us: int,
    ) -> None:
        self.conn, self.settings, self.state, self.rng, self.now_us = conn, settings, state, rng, now_us
        self.summary = SimulationSummary()
        self._t = {name: table(settings.oltp_schema, name) for name in OLTP_TABLES}

    def run(self, plan: dict[str, int]) -> None:
        # deletes first: they use candidates collected by earlier (committed) ticks
        self.delete_orders(plan["delete_order"])
        self.delete_addresses(plan["delete_address"])
        self.new_orders(plan["new_order"])
        self.advance_orders(plan["advance_order"])
        self.stock_changes(plan["stock_change"])
        self.email_changes(plan["email_change"])
        self.price_changes(plan["price_change"])
        self.new_customers(plan["new_customer"])
        self.new_addresses(plan["new_address"])

    def new_orders(self, n: int) -> None:
        if n <= 0:
            return
        st = self.state
        ids = reserve_ids(self.conn, self.settings, "orders", "order_id", n)
        batch = build_orders(
            self.rng, ids, np.full(n, self.now_us), self.now_us, st.customers, st.products, st.campaigns
        )
        for name, count in write_orders(self.conn, self.settings, batch).items():
            self.summary.add(name, "insert", count)
        st.orders["pending"].add(ids.tolist())

    def advance_orders(self, n: int) -> None:
        st, rng = self.state, self.rng
        statuses = list(FLOW)
        weights = np.array([len(st.orders[s]) * FLOW[s][1] for s in statuses])
        if n <= 0 or weights.sum() == 0:
            return
        picks = rng.choice(len(statuses), size=n, p=weights / weights.sum())
        for k, status in enumerate(statuses):
            ids = st.orders[status].take(rng, int((picks == k).sum()))
            if not ids:
                continue
            if status == "pending":
                cancel = rng.random(len(ids)) < CANCEL_SHARE
                self._move([i for i, c in zip(ids, cancel, strict=True) if c], "pending", "cancelled")
                self._move([i for i, c in zip(ids, cancel, strict=True) if not c], "pending", "paid")
            else:
                self._move(ids, status, FLOW[status][0])

    def _move(self, ids: list[int], old: str, new: str) -> None:
        if not ids:
            return
        moved = [
            r[0]
            for r in self.conn.execute(
                sql.SQL("update {} set status = %s where order_id = any(%s) and status = %s returning order_id").format(
                    self._t["orders"]
                ),
                (new, ids, old),
            ).fetchall()
        ]
        self.summary.add("orders", "update", len(moved))
        payment = {
            "paid": ("captured", "authorized", True),
            "cancelled": ("failed", "authorized", False),
            "returned": ("refunded", "captured", False),
        }.get(new)
        if payment and moved:
            set_paid = sql.SQL(", paid_at = now()") if payment[2] else sql.SQL("")
            cur = self.conn.execute(
                sql.SQL("update {} set status = %s{} where order_id = any(%s) and status = %s").format(
                    self._t["payments"], set_paid
                ),
                (payment[0], moved, payment[1]),
            )
            self.summary.add("payments", "update", cur.rowcount)
        if new == "cancelled":
            self.state.cancelled.add(moved)
        elif new in self.state.orders:
            self.state.orders[new].add(moved)

    def delete_orders(self, n: int) -> None:
        ids = self.state.cancelled.take(self.rng, n)
        if not ids:
            return
        doomed = [
            r[0]
            for r in self.conn.execute(
                sql.SQL("select order_id from {} where order_id = any(%s) and status = 'cancelled' for update").format(
                    self._t["orders"]
                ),
                (ids,),
            ).fetchall()
        ]
        for name in ("payments", "order_items", "orders"):
            cur = self.conn.execute(sql.SQL("delete from {} where order_id = any(%s)").format(self._t[name]), (doomed,))
            self.summary.add(name, "delete", cur.rowcount)

    def delete_addresses(self, n: int) -> None:
        ids = self.state.addresses.take(self.rng, n)
        if not ids:
            return
        cur = self.conn.execute(
            sql.SQL(
                """delete from {a} a where a.address_id = any(%s)
                   and not exists (select 1 from {o} o where o.shipping_address_id = a.address_id)"""
            ).format(a=self._t["addresses"], o=self._t["orders"]),
            (ids,),
        )
        self.summary.add("addresses", "delete", cur.rowcount)

    def stock_changes(self, n: int) -> None:
        keys = self.state.inventory.take(self.rng, n)
        if not keys:
            return
        restock = self.rng.random(len(keys)) < 0.1
        delta = np.where(restock, self.rng.integers(50, 200, len(keys)), -self.rng.integers(1, 6, len(keys)))
        cur = self.conn.execute(
            sql.SQL(
                """update {} i set quantity_on_hand = greatest(0, i.quantity_on_hand + v.delta)
                   from unnest(%s::bigint[], %s::text[], %s::int[]) as v(product_id, warehouse, delta)
                   where i.product_id = v.product_id and i.warehouse = v.warehouse"""
            ).format(self._t["inventory"]),
            ([k[0] for k in keys], [k[1] for k in keys], delta.tolist()),
        )
        self.summary.add("inventory", "update", cur.rowcount)
        self.state.inventory.add(keys)

    def email_changes(self, n: int) -> None:
        pool = self.state.customers
        if n <= 0 or not len(pool):
            return
        ids = np.unique(pool.ids[self.rng.integers(0, len(pool), size=n)]).tolist()
        tags = [f"{self.now_us // 1000:x}{i}" for i in range(len(ids))]
        domains = [("example.com", "example.net", "mail.example")[int(d)] for d in self.rng.integers(0, 3, len(ids))]
        cur = self.conn.execute(
            sql.SQL(
                """update {} c set email = lower(c.first_name || '.' || c.last_name || '.' || c.customer_id
                                                 || '.' || v.tag || '@' || v.domain)
                   from unnest(%s::bigint[], %s::text[], %s::text[]) as v(customer_id, tag, domain)
                   where c.customer_id = v.customer_id"""
            ).format(self._t["customers"]),
            (ids, tags, domains),
        )
        self.summary.add("customers", "update", cur.rowcount)

    def price_changes(self, n: int) -> None:
        pool = self.state.products
        if n <= 0 or not len(pool):
            return
        ids = np.unique(pool.ids[self.rng.integers(0, len(pool), size=n)]).tolist()
        factor = self.rng.uniform(0.85, 0.95, len(ids)) + np.where(self.rng.random(len(ids)) < 0.6, 0.2, 0.0)
        rows = self.conn.execute(
            sql.SQL(
                """update {} p set price = greatest(0.99, round(p.price * v.factor, 1) - 0.01)
                   from unnest(%s::bigint[], %s::numeric[]) as v(product_id, factor)
                   where p.product_id = v.product_id returning p.product_id, (p.price * 100)::bigint"""
            ).format(self._t["products"]),
            (ids, factor.tolist()),
        ).fetchall()
        for product_id, cents in rows:
            pool.price_cents[self.state.product_index[product_id]] = cents
        self.summary.add("products", "update", len(rows))

    def new_customers(self, n: int) -> None:
        if n <= 0:
            return
        schema, now = self.settings.oltp_schema, self.now_us
        ids = reserve_ids(self.conn, self.settings, "customers", "customer_id", n)
        created = np.full(n, now, np.int64)
        customers = build_customers(self.rng, ids, created, now + 1)
        owner, kinds, first = address_kinds(self.rng, n)
        address_ids = reserve_ids(self.conn, self.settings, "addresses", "address_id", len(owner))
        addresses = build_addresses(self.rng, address_ids, ids[owner], kinds, created[owner], now + 1, exact=first)
        self.summary.add("customers", "insert", copy_rows(self.conn, schema, "customers", CUSTOMER_COLUMNS, customers))
        self.summary.add("addresses", "insert", copy_rows(self.conn, schema, "addresses", ADDRESS_COLUMNS, addresses))
        self.state.add_customers(ids, now, address_ids[first])
        self.state.addresses.add(address_ids[~first].tolist())

    def new_addresses(self, n: int) -> None:
        pool = self.state.customers
        if n <= 0 or not len(pool):
            return
        owner = self.rng.integers(0, len(pool), size=n)
        kinds = [("shipping", "billing")[int(k)] for k in self.rng.integers(0, 2, n)]
        ids = reserve_ids(self.conn, self.settings, "addresses", "address_id", n)
        created = np.full(n, self.now_us, np.int64)
        rows = build_addresses(self.rng, ids, pool.ids[owner], kinds, created, self.now_us + 1)
        count = copy_rows(self.conn, self.settings.oltp_schema, "addresses", ADDRESS_COLUMNS, rows)
        self.summary.add("addresses", "insert", count)
        self.state.addresses.add(ids.tolist())


def _plan(rng: np.random.Generator, budget: float) -> dict[str, int]:
    """How many operations of each kind make up about `budget` row changes."""
    return {op: int(rng.poisson(max(budget, 0.0) * share / rows)) for op, (share, rows) in MIX.items()}


def simulate(
    settings: Settings,
    rate: float,
    duration: float,
    seed: int | None = None,
    stop: threading.Event | None = None,
    progress: Callable[[SimulationSummary], None] | None = None,
) -> SimulationSummary:
    """Apply ~`rate` row changes per second for `duration` seconds (0 = until `stop` is set).

    Needs existing customers and products. Returns the committed changes; setting `stop` (e.g. from
    a SIGINT handler) ends the run after the current transaction.
    """
    if not 0 < rate <= MAX_RATE:
        raise SyntheticDataError(f"rate must be > 0 and <= {MAX_RATE:.0f} changes/s, got {rate!r}")
    if not duration >= 0:  # also rejects NaN
        raise SyntheticDataError(f"duration must be >= 0 seconds (0 = until interrupted), got {duration!r}")
    seed = new_seed() if seed is None else seed
    rng = make_rng(seed, "simulate")
    stop = stop or threading.Event()
    ensure_schema(settings)
    summary = SimulationSummary(seed=seed)
    with connect(settings, autocommit=True) as conn:
        state = _load_state(conn, settings)
        start = time.monotonic()
        deadline = start + duration if duration else float("inf")
        last_report, tick_no = start, 0
        while not stop.is_set() and time.monotonic() < deadline:
            # changes due by the end of this tick, from the real elapsed time: slow ticks are caught up
            due = rate * min(time.monotonic() - start + TICK, duration or float("inf"))
            plan = _plan(rng, min(due - summary.total, rate * 0.5))
            if any(plan.values()):
                tick = _Tick(conn, settings, state, rng, time.time_ns() // 1000)
                with conn.transaction():
                    tick.run(plan)
                if tick.summary.total:
                    tick.summary.transactions = 1
                summary.merge(tick.summary)
            tick_no += 1
            now = time.monotonic()
            summary.elapsed_seconds = now - start
            if progress and now - last_report >= 5:
                progress(summary)
                last_report = now
            pause = start + tick_no * TICK - now
            if pause > 0:
                stop.wait(min(pause, max(deadline - now, 0)))
        summary.elapsed_seconds = time.monotonic() - start
        summary.interrupted = stop.is_set()
    return summary
