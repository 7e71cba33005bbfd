"""Pure generation functions of lakehouse.synthetic: determinism, value ranges, invariants, validation."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import zlib
from decimal import Decimal

import numpy as np
import pytest

from lakehouse.synthetic import dynamo, landing, marketing, oltp, orders
from lakehouse.synthetic.common import (
    DAY_US,
    SyntheticDataError,
    Window,
    date_to_us,
    make_rng,
    make_window,
    rng_uuids,
)
from lakehouse.synthetic.pools import CampaignPool, CustomerPool, ProductPool

WINDOW = Window(dt.date(2024, 3, 1), 30)


def customer_pool(n: int = 300, seed: int = 1) -> CustomerPool:
    rng = np.random.default_rng(seed)
    created = np.sort(rng.integers(WINDOW.start_us - 200 * DAY_US, WINDOW.end_us, size=n))
    return CustomerPool(np.arange(1, n + 1, dtype=np.int64), created, np.arange(1001, 1001 + n, dtype=np.int64))


def product_pool(n: int = 50) -> ProductPool:
    ids = np.arange(1, n + 1, dtype=np.int64)
    return ProductPool(ids, 499 + ids * 100, np.array([f"SKU-{i:07d}" for i in ids], dtype=object))


def campaign_pool() -> CampaignPool:
    day0 = WINDOW.start_us // DAY_US
    return CampaignPool(
        np.array(["cmp_000001", "cmp_000002", "cmp_000003"], dtype=object),
        np.array([day0, day0 + 10, day0 - 40], dtype=np.int64),
        np.array([day0 + 9, day0 + 40, day0 - 35], dtype=np.int64),  # the third ended before the window
        np.array(["search", "email", "social"], dtype=object),
    )


def make_batch(seed: int, n: int = 2_000) -> orders.OrderBatch:
    rng = make_rng(seed, "orders-test")
    times = orders.sample_order_times(rng, n, WINDOW)
    ids = np.arange(1, n + 1, dtype=np.int64)
    return orders.build_orders(
        rng, ids, times, WINDOW.end_us - 1_000_000, customer_pool(), product_pool(), campaign_pool()
    )


def batch_fingerprint(batch: orders.OrderBatch) -> list[object]:
    return [v.tolist() if isinstance(v, np.ndarray) else v for v in vars(batch).values()]


# ------------------------------------------------------------------------------ window, rng
def test_window_defaults_to_the_30_days_before_today() -> None:
    window = make_window()
    today = dt.datetime.now(dt.UTC).date()
    assert window.days == 30
    assert window.end_date == today
    assert window.start_date == today - dt.timedelta(days=30)
    assert window.end_us - window.start_us == 30 * DAY_US


@pytest.mark.parametrize(
    ("start", "days"),
    [("2024-13-01", 5), ("yesterday", 5), ("2024-01-01", 0), ("2024-01-01", 367), (None, -1)],
)
def test_window_rejects_bad_parameters(start: str | None, days: int) -> None:
    with pytest.raises(SyntheticDataError):
        make_window(start, days)


def test_rng_depends_on_seed_and_parameters_only() -> None:
    a = make_rng(5, "orders", 10).integers(0, 1 << 62, size=4).tolist()
    assert a == make_rng(5, "orders", 10).integers(0, 1 << 62, size=4).tolist()
    assert a != make_rng(6, "orders", 10).integers(0, 1 << 62, size=4).tolist()
    assert a != make_rng(5, "orders", 11).integers(0, 1 << 62, size=4).tolist()
    uuids = rng_uuids(make_rng(1, "x"), 1_000)
    assert len(set(uuids)) == 1_000
    assert all(u[14] == "4" for u in uuids)  # version 4 layout
    with pytest.raises(SyntheticDataError):
        make_rng(-1, "orders")


# ------------------------------------------------------------------------------ orders
def test_orders_are_deterministic_for_a_seed() -> None:
    assert batch_fingerprint(make_batch(42)) == batch_fingerprint(make_batch(42))
    assert batch_fingerprint(make_batch(42)) != batch_fingerprint(make_batch(43))


def test_order_money_invariants_hold_exactly() -> None:
    batch = make_batch(7)
    assert (batch.quantity > 0).all()
    assert (batch.discount >= 0).all()
    assert (batch.line_total == batch.quantity * batch.unit_price - batch.discount).all()
    sums = np.bincount(batch.item_order, weights=batch.line_total, minlength=len(batch)).astype(np.int64)
    assert (sums == batch.order_total).all()
    assert set(np.unique(batch.item_order)) == set(range(len(batch)))  # every order has items
    products = product_pool()
    prices = dict(zip(products.ids.tolist(), products.price_cents.tolist(), strict=True))
    assert all(prices[p] == u for p, u in zip(batch.item_product_id.tolist(), batch.unit_price.tolist(), strict=True))


def test_order_times_statuses_and_payments_are_consistent() -> None:
    batch = make_batch(3, n=5_000)
    reference = WINDOW.end_us - 1_000_000
    assert (batch.ordered_us >= WINDOW.start_us).all() and (batch.ordered_us < WINDOW.end_us).all()
    assert (np.diff(batch.ordered_us) >= 0).all()  # ids ascend with time
    assert (batch.updated_us >= batch.ordered_us).all() and (batch.updated_us <= reference).all()
    status = np.array(orders.ORDER_STATUSES)[batch.status]
    pay = np.array(orders.PAYMENT_STATUSES)[batch.payment_status]
    age_days = (reference - batch.ordered_us) / DAY_US
    old = age_days > 6
    assert (status[old] == "delivered").mean() > 0.75  # most old orders were delivered
    assert set(status[age_days < 1 / 96]) <= {"pending"}
    assert set(pay[status == "pending"]) <= {"authorized"}
    assert set(pay[np.isin(status, ["paid", "shipped", "delivered"])]) <= {"captured"}
    assert set(pay[status == "returned"]) <= {"refunded"}
    assert set(pay[status == "cancelled"]) <= {"failed", "refunded"}
    paid = batch.paid_us >= 0
    assert (paid == np.isin(pay, ["captured", "refunded"])).all()
    assert (batch.paid_us[paid] >= batch.ordered_us[paid]).all()
    # customers had signed up when they ordered (the pool has someone for every order time)
    pool = customer_pool()
    created = dict(zip(pool.ids.tolist(), pool.created_us.tolist(), strict=True))
    late = [c for c, t in zip(batch.customer_id.tolist(), batch.ordered_us.tolist(), strict=True) if created[c] > t]
    assert late == []


def test_campaign_attribution_uses_campaigns_active_that_day() -> None:
    batch = make_batch(11, n=4_000)
    pool = campaign_pool()
    spans = {str(c): (s, e) for c, s, e in zip(pool.ids, pool.start_day, pool.end_day, strict=True)}
    attributed = [(c, t) for c, t in zip(batch.campaign_id, batch.ordered_us.tolist(), strict=True) if c]
    assert 0.2 < len(attributed) / len(batch) < 0.35  # ~30% where a campaign is active (always here)
    assert all(spans[c][0] <= t // DAY_US <= spans[c][1] for c, t in attributed)
    assert "cmp_000003" not in {c for c, _ in attributed}


def test_order_times_follow_the_window() -> None:
    times = orders.sample_order_times(make_rng(1, "t"), 20_000, WINDOW)
    days = np.bincount((times - WINDOW.start_us) // DAY_US, minlength=WINDOW.days)
    assert len(days) == WINDOW.days and days.min() > 0
    hours = np.bincount(times // 3_600_000_000 % 24, minlength=24)
    assert hours[19] > 3 * hours[3]  # evenings are busier than nights


# ------------------------------------------------------------------------------ customers, products
def test_customers_are_valid_and_carry_large_preferences() -> None:
    rng = make_rng(1, "c")
    ids = np.arange(1, 201, dtype=np.int64)
    created = oltp.signup_times(rng, 200, WINDOW)
    rows = oltp.build_customers(rng, ids, created, WINDOW.end_us)
    col = {name: i for i, name in enumerate(oltp.CUSTOMER_COLUMNS)}
    assert len({r[col["email"]] for r in rows}) == 200
    assert {r[col["segment"]] for r in rows} <= {"consumer", "business", "vip"}
    sizes = [len(r[col["preferences"]]) for r in rows]
    assert min(sizes) > 2_500  # above the 2 kB TOAST threshold
    prefs = json.loads(rows[0][col["preferences"]])
    assert {"browsing_history", "wishlist"} <= prefs.keys()
    assert all(r[col["created_at"]] <= r[col["updated_at"]] < "2024-03-31" for r in rows)


def test_customer_builder_is_deterministic() -> None:
    def build() -> list[tuple[object, ...]]:
        rng = make_rng(9, "c")
        created = oltp.signup_times(rng, 50, WINDOW)
        return oltp.build_customers(rng, np.arange(1, 51, dtype=np.int64), created, WINDOW.end_us)

    assert build() == build()


def test_every_customer_gets_a_shipping_address_first() -> None:
    owner, kinds, first = oltp.address_kinds(make_rng(2, "a"), 500)
    assert set(owner.tolist()) == set(range(500))
    assert all(kinds[i] == "shipping" for i in np.flatnonzero(first))
    assert first.sum() == 500
    assert 500 * 1.5 < len(owner) < 500 * 1.9


def test_products_have_big_descriptions_and_margins() -> None:
    rng = make_rng(3, "p")
    rows, created = oltp.build_products(rng, np.arange(1, 101, dtype=np.int64), WINDOW)
    col = {name: i for i, name in enumerate(oltp.PRODUCT_COLUMNS)}
    assert all(4_000 <= len(r[col["description"]].encode()) <= 8_000 for r in rows)
    assert all(Decimal(r[col["cost"]]) < Decimal(r[col["price"]]) for r in rows)
    assert len({r[col["sku"]] for r in rows}) == 100
    assert (created < WINDOW.start_us).all()  # products exist before any order of the window
    text = rows[0][col["description"]].encode()
    assert len(zlib.compress(text)) > 0.4 * len(text)  # low compressibility


def test_stocking_plan_uses_distinct_warehouses() -> None:
    owner, warehouses = oltp.stocking_plan(make_rng(4, "s"), 300)
    pairs = list(zip(owner.tolist(), warehouses, strict=True))
    assert len(pairs) == len(set(pairs))
    per_product = np.bincount(owner)
    assert per_product.min() >= 2 and per_product.max() <= 4


# ------------------------------------------------------------------------------ marketing
def test_campaigns_and_ad_spend() -> None:
    rng = make_rng(5, "m")
    rows = marketing.build_campaigns(rng, 7, 40, WINDOW)
    col = {name: i for i, name in enumerate(marketing.CAMPAIGN_COLUMNS)}
    assert [r[0] for r in rows] == [f"cmp_{n:06d}" for n in range(7, 47)]
    assert {r[col["channel"]] for r in rows} <= set(marketing.CHANNELS)
    last_day = WINDOW.end_date - dt.timedelta(days=1)
    for r in rows:
        start, end, status = r[col["start_date"]], r[col["end_date"]], r[col["status"]]
        assert end >= start
        assert status == ("scheduled" if start > last_day else "ended" if end < last_day else status)
        assert status in ("scheduled", "active", "paused", "ended")
        assert r[col["created_at"]] <= r[col["updated_at"]]
    campaigns = [
        (r[0], r[col["channel"]], Decimal(r[col["daily_budget"]]), r[col["start_date"]], r[col["end_date"]])
        for r in rows
    ]
    spend = marketing.build_ad_spend(rng, campaigns, WINDOW)
    expected = sum(1 for c in campaigns for d in WINDOW.dates() if c[3] <= d <= c[4])
    assert len(spend) == expected > 0
    budgets = {c[0]: c[2] for c in campaigns}
    for cid, day, impressions, clicks, amount, currency, created, updated in spend:
        assert WINDOW.start_date <= day < WINDOW.end_date
        assert 0 <= clicks <= impressions
        assert 0 <= Decimal(amount) <= budgets[cid]
        assert created == updated and created.startswith(day.isoformat())
        assert currency == "USD"


# ------------------------------------------------------------------------------ DynamoDB items
def test_dynamodb_items_reference_the_pools() -> None:
    rng = make_rng(6, "d")
    customers, products = customer_pool(), product_pool()
    carts = dynamo.build_carts(rng, 200, WINDOW, customers, products)
    assert {c["status"] for c in carts} == set(dynamo.CART_STATUSES)
    for cart in carts:
        assert cart["customer_id"] in set(customers.ids.tolist())
        assert 1 <= len(cart["items"]) <= 5
        assert all(isinstance(i["unit_price"], Decimal) for i in cart["items"])
        assert cart["created_at"] <= cart["updated_at"] and cart["created_at"].endswith("Z")
    sessions = dynamo.build_sessions(rng, 1_000, WINDOW, customers, campaign_pool())
    anonymous = sum("customer_id" not in s for s in sessions)
    assert 0.3 < anonymous / len(sessions) < 0.5
    assert all(s["started_at"] <= s["ended_at"] for s in sessions)
    paid = [s for s in sessions if "campaign_id" in s]
    assert paid and all(s["channel"] in dynamo.PAID_CHANNEL.values() for s in paid)
    reviews = dynamo.build_reviews(rng, 500, WINDOW, customers, products)
    ratings = [r["rating"] for r in reviews]
    assert set(ratings) <= {1, 2, 3, 4, 5} and np.mean(ratings) > 3.5
    assert len({r["review_id"] for r in reviews}) == 500


# ------------------------------------------------------------------------------ landing
@pytest.mark.parametrize("rate", [0.0, 0.1, 1.0])
def test_malformed_json_lines_are_counted(rate: float) -> None:
    records = [{"event_id": str(i), "n": i, "text": "x" * (i % 40)} for i in range(2_000)]
    text, bad = landing.encode_lines(make_rng(1, "l"), records, rate)
    lines = text.splitlines()
    assert len(lines) == 2_000
    broken = 0
    for line in lines:
        try:
            json.loads(line)
        except json.JSONDecodeError:
            broken += 1
    assert broken == bad
    assert bad == {0.0: 0, 1.0: 2_000}.get(rate, bad)
    if rate == 0.1:
        assert 120 < bad < 280


def _strict_feed_errors(rows: list[list[str]]) -> int:
    errors = 0
    for row in rows:
        if len(row) != len(landing.FEED_COLUMNS):
            errors += 1
            continue
        try:
            Decimal(row[2]) + int(row[4])
        except (ArithmeticError, ValueError):
            errors += 1
    return errors


def test_malformed_feed_rows_are_counted() -> None:
    rows, bad = landing.build_feed(
        make_rng(2, "f"), "partner_001", WINDOW.start_date, product_pool(400), 0.8, "USD", malformed_rate=0.2
    )
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    parsed = list(csv.reader(io.StringIO(buffer.getvalue())))
    assert _strict_feed_errors(parsed) == bad > 0
    clean, none_bad = landing.build_feed(
        make_rng(2, "f"), "partner_001", WINDOW.start_date, product_pool(400), 0.8, "USD"
    )
    assert none_bad == 0 and _strict_feed_errors(clean) == 0
    assert {r[1] for r in clean} <= set(product_pool(400).skus.tolist())


def test_sessions_walk_down_the_funnel() -> None:
    rng = make_rng(3, "s")
    counts = dict.fromkeys(landing.EVENT_TYPES, 0)
    order = (77, 5, WINDOW.start_us + 3 * DAY_US)
    for i in range(400):
        events = landing.build_session_events(
            rng,
            WINDOW.start_us + i * 60_000_000,
            None,
            product_pool(),
            None,
            "direct",
            order if i % 10 == 0 else None,
        )
        for event in events:
            counts[event["event_type"]] += 1
        assert [e["event_ts"] for e in events] == sorted(e["event_ts"] for e in events)
        assert len({e["session_id"] for e in events}) == 1
        if i % 10 == 0:
            assert events[-1]["event_type"] == "purchase" and events[-1]["order_id"] == 77
            assert events[-1]["event_ts"] == landing.iso_us(np.array([order[2]]))[0]
            assert {e["customer_id"] for e in events} == {5}
        else:
            assert all(e["order_id"] is None for e in events)
    funnel = [counts[t] for t in landing.EVENT_TYPES]
    assert funnel[0] > funnel[2] > funnel[3] > funnel[4] > 0


# ------------------------------------------------------------------------------ validation
def test_date_helpers() -> None:
    assert date_to_us(dt.date(1970, 1, 2)) == DAY_US
    assert WINDOW.dates()[0] == WINDOW.start_date and len(WINDOW.dates()) == 30
