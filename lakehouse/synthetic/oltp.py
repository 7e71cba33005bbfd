"""Customers, addresses, products and inventory of the OLTP schema: pure builders + COPY writers.

Builders take an RNG and already-reserved ids and return rows (tuples in `*_COLUMNS` order), so unit
tests can check them without a database; `generate_*` functions reserve ids, build and COPY in one
transaction (all or nothing).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from psycopg import sql

from lakehouse.settings import Settings
from lakehouse.synthetic import vocab
from lakehouse.synthetic.common import (
    DAY_US,
    DateLike,
    GenerationResult,
    SyntheticDataError,
    Window,
    begin,
    cents_str,
    iso_us,
)
from lakehouse.synthetic.db import connect, copy_rows, reserve_ids, table
from lakehouse.synthetic.pools import load_customers
from lakehouse.synthetic.schema import ensure_schema

Row = tuple[Any, ...]

CUSTOMER_COLUMNS = (
    "customer_id",
    "email",
    "first_name",
    "last_name",
    "phone",
    "segment",
    "marketing_opt_in",
    "preferences",
    "created_at",
    "updated_at",
)
ADDRESS_COLUMNS = (
    "address_id",
    "customer_id",
    "kind",
    "line1",
    "city",
    "postal_code",
    "country",
    "created_at",
    "updated_at",
)
PRODUCT_COLUMNS = (
    "product_id",
    "sku",
    "name",
    "category",
    "brand",
    "price",
    "cost",
    "description",
    "attributes",
    "is_active",
    "created_at",
    "updated_at",
)
INVENTORY_COLUMNS = (
    "product_id",
    "warehouse",
    "quantity_on_hand",
    "reorder_level",
    "created_at",
    "updated_at",
)

SEGMENTS = ("consumer", "business", "vip")
SEGMENT_P = (0.80, 0.15, 0.05)


def _pick(rng: np.random.Generator, options: tuple[str, ...], n: int, p: Any = None) -> list[str]:
    return [options[i] for i in rng.choice(len(options), size=n, p=p).tolist()]


def _between(rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray | int) -> np.ndarray:
    """Random microsecond timestamps in [lo, hi] (hi clamped to >= lo), whole seconds."""
    hi_arr = np.maximum(np.broadcast_to(hi, lo.shape), lo)
    return (lo + (rng.random(len(lo)) * (hi_arr - lo)).astype(np.int64)) // 1_000_000 * 1_000_000


# ---------------------------------------------------------------------------- customers
def build_preferences(rng: np.random.Generator, created_us: int, end_us: int, max_product_id: int) -> str:
    """A few KB of JSON (browsing history, wishlist): big enough to be TOASTed out of line."""
    n_hist = int(rng.integers(40, 70))
    span = max(end_us - created_us, 1)
    viewed = np.sort(created_us + rng.integers(0, span, size=n_hist)) // 1_000_000 * 1_000_000
    products = rng.integers(1, max_product_id + 1, size=n_hist).tolist()
    dwell = rng.integers(3, 600, size=n_hist).tolist()
    sources = _pick(rng, ("search", "home", "category", "recommendation", "email", "ad"), n_hist)
    history = [
        {"product_id": p, "viewed_at": str(t), "dwell_seconds": d, "source": s}
        for p, t, d, s in zip(products, iso_us(viewed), dwell, sources, strict=True)
    ]
    n_wish = int(rng.integers(3, 15))
    wishlist = [
        {"product_id": int(p), "added_at": str(t), "priority": int(q)}
        for p, t, q in zip(
            rng.integers(1, max_product_id + 1, size=n_wish),
            iso_us(created_us + rng.integers(0, span, size=n_wish) // 1_000_000 * 1_000_000),
            rng.integers(1, 4, size=n_wish),
            strict=True,
        )
    ]
    prefs = {
        "language": _pick(rng, ("en", "en", "en", "es", "fr", "de"), 1)[0],
        "newsletter_topics": sorted(set(_pick(rng, vocab.TOPICS, 3))),
        "sizes": {"apparel": _pick(rng, vocab.SIZES, 1)[0], "footwear_eu": int(rng.integers(35, 48))},
        "browsing_history": history,
        "wishlist": wishlist,
    }
    return json.dumps(prefs, separators=(",", ":"))


def signup_times(rng: np.random.Generator, n: int, window: Window) -> np.ndarray:
    """Ascending signup times over the year before the window and the window itself."""
    return np.sort(_between(rng, np.full(n, window.start_us - 365 * DAY_US), window.end_us - 1))


def build_customers(rng: np.random.Generator, ids: np.ndarray, created: np.ndarray, end_us: int) -> list[Row]:
    """Customers who signed up at `created` (epoch microseconds); profile edits before `end_us`."""
    n = len(ids)
    updated = np.where(rng.random(n) < 0.6, created, _between(rng, created, end_us - 1))
    first = _pick(rng, vocab.FIRST_NAMES, n)
    last = _pick(rng, vocab.LAST_NAMES, n)
    domains = _pick(rng, vocab.EMAIL_DOMAINS, n)
    segments = _pick(rng, SEGMENTS, n, SEGMENT_P)
    opt_in = (rng.random(n) < 0.45).tolist()
    has_phone = rng.random(n) < 0.8
    phones = rng.integers(0, 10_000_000, size=n).tolist()
    created_iso, updated_iso = iso_us(created), iso_us(updated)
    rows: list[Row] = []
    for i, cid in enumerate(ids.tolist()):
        phone = f"+1-555-{phones[i] // 10_000:03d}-{phones[i] % 10_000:04d}" if has_phone[i] else None
        email = f"{first[i]}.{last[i]}.{cid}@{domains[i]}".lower()
        prefs = build_preferences(rng, int(created[i]), end_us, 5_000)
        rows.append(
            (
                cid,
                email,
                first[i],
                last[i],
                phone,
                segments[i],
                opt_in[i],
                prefs,
                created_iso[i],
                updated_iso[i],
            )
        )
    return rows


def address_kinds(rng: np.random.Generator, n_customers: int) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Per customer: one shipping address, a billing one for 60%, a second shipping one for 10%.

    Returns the owner index and kind of each address, and a mask of the first (signup) addresses.
    """
    owner = [np.arange(n_customers)]
    kinds = [np.zeros(n_customers, dtype=np.int8)]
    billing = np.flatnonzero(rng.random(n_customers) < 0.6)
    second = np.flatnonzero(rng.random(n_customers) < 0.1)
    owner += [billing, second]
    kinds += [np.ones(len(billing), dtype=np.int8), np.zeros(len(second), dtype=np.int8)]
    order = np.argsort(np.concatenate(owner), kind="stable")
    owner_idx = np.concatenate(owner)[order]
    kind_idx = np.concatenate(kinds)[order]
    first = np.concatenate(([True], owner_idx[1:] != owner_idx[:-1])) if len(owner_idx) else owner_idx > 0
    return owner_idx, [("shipping", "billing")[k] for k in kind_idx.tolist()], first


def build_addresses(
    rng: np.random.Generator,
    ids: np.ndarray,
    customer_ids: np.ndarray,
    kinds: list[str],
    created_us: np.ndarray,
    end_us: int,
    exact: np.ndarray | None = None,
) -> list[Row]:
    """Addresses of the given customers (arrays aligned with `ids`), created in [created_us, end_us).

    Where `exact` is set the address is created at `created_us` itself (entered at signup).
    """
    n = len(ids)
    created = _between(rng, created_us, end_us - 1)
    if exact is not None:
        created = np.where(exact, created_us, created)
    updated = np.where(rng.random(n) < 0.8, created, _between(rng, created, end_us - 1))
    cities = rng.integers(0, len(vocab.CITIES), size=n).tolist()
    streets = _pick(rng, vocab.STREETS, n)
    numbers = rng.integers(1, 9_999, size=n).tolist()
    postal = rng.integers(10, 99, size=n).tolist()
    created_iso, updated_iso = iso_us(created), iso_us(updated)
    rows: list[Row] = []
    for i, aid in enumerate(ids.tolist()):
        city, country, prefix = vocab.CITIES[cities[i]]
        rows.append(
            (
                aid,
                int(customer_ids[i]),
                kinds[i],
                f"{numbers[i]} {streets[i]}",
                city,
                f"{prefix}{postal[i]}",
                country,
                created_iso[i],
                updated_iso[i],
            )
        )
    return rows


def generate_customers(
    settings: Settings, count: int, seed: int | None = None, start_date: DateLike = None, days: int | None = None
) -> GenerationResult:
    """Insert `count` customers with their addresses (one transaction, COPY)."""
    result, rng = begin("customers", count, seed, start_date, days)
    ensure_schema(settings)
    schema = settings.oltp_schema
    with connect(settings) as conn:
        ids = reserve_ids(conn, settings, "customers", "customer_id", count)
        created = signup_times(rng, count, result.window)
        customers = build_customers(rng, ids, created, result.window.end_us)
        owner, kinds, first = address_kinds(rng, count)
        address_ids = reserve_ids(conn, settings, "addresses", "address_id", len(owner))
        addresses = build_addresses(
            rng, address_ids, ids[owner], kinds, created[owner], result.window.end_us, exact=first
        )
        result.counts["customers"] = copy_rows(conn, schema, "customers", CUSTOMER_COLUMNS, customers)
        result.counts["addresses"] = copy_rows(conn, schema, "addresses", ADDRESS_COLUMNS, addresses)
    return result.finish()


def generate_addresses(
    settings: Settings, count: int, seed: int | None = None, start_date: DateLike = None, days: int | None = None
) -> GenerationResult:
    """Insert `count` extra addresses for random existing customers, dated inside the window."""
    result, rng = begin("addresses", count, seed, start_date, days)
    ensure_schema(settings)
    with connect(settings) as conn:
        pool = load_customers(conn, settings)
        owner = rng.integers(0, len(pool), size=count)
        kinds = _pick(rng, ("shipping", "billing"), count)
        ids = reserve_ids(conn, settings, "addresses", "address_id", count)
        created = np.maximum(pool.created_us[owner], result.window.start_us)
        rows = build_addresses(rng, ids, pool.ids[owner], kinds, created, result.window.end_us)
        result.counts["addresses"] = copy_rows(conn, settings.oltp_schema, "addresses", ADDRESS_COLUMNS, rows)
    return result.finish()


# ---------------------------------------------------------------------------- products
def build_description(rng: np.random.Generator, name: str) -> str:
    """4-8 KB of text from ~64k pseudo-words: barely compressible, so TOAST stores it out of line."""
    bank = vocab.word_bank()
    target = int(rng.integers(4_000, 8_000))
    words = bank[rng.integers(0, len(bank), size=target // 7)].tolist()
    sentence_ends = set(np.cumsum(rng.integers(6, 18, size=len(words))).tolist())
    parts = [name + "."]
    for i, word in enumerate(words):
        parts.append(word + "." if i in sentence_ends else word)
    text = " ".join(parts)
    return text[:target] if len(text) > target else text


def build_products(rng: np.random.Generator, ids: np.ndarray, window: Window) -> tuple[list[Row], np.ndarray]:
    """Products that existed before the window (so every order in it can reference them).

    Returns the rows and their creation times (epoch microseconds).
    """
    n = len(ids)
    categories = list(vocab.CATEGORIES)
    cat = rng.integers(0, len(categories), size=n).tolist()
    brands = _pick(rng, vocab.BRANDS, n)
    adjectives = _pick(rng, vocab.ADJECTIVES, n)
    noun_pick = rng.random(n)
    price_u = rng.random(n)
    margin = rng.uniform(0.35, 0.75, size=n)
    created = _between(rng, np.full(n, window.start_us - 730 * DAY_US), window.start_us - DAY_US)
    updated = np.where(rng.random(n) < 0.5, created, _between(rng, created, window.start_us - 1))
    active = (rng.random(n) < 0.95).tolist()
    created_iso, updated_iso = iso_us(created), iso_us(updated)
    rows: list[Row] = []
    for i, pid in enumerate(ids.tolist()):
        category = categories[cat[i]]
        prefix, (lo, hi), nouns = vocab.CATEGORIES[category]
        name = f"{brands[i]} {adjectives[i]} {nouns[int(noun_pick[i] * len(nouns))]}"
        dollars = int(np.exp(np.log(lo) + price_u[i] * (np.log(hi) - np.log(lo))))
        price = max(dollars, 1) * 100 - 1  # prices end in .99
        cost = int(price * margin[i])
        attributes = {
            "color": _pick(rng, vocab.COLORS, 1)[0],
            "size": _pick(rng, vocab.SIZES, 1)[0],
            "material": _pick(rng, vocab.MATERIALS, 1)[0],
            "weight_kg": round(float(rng.uniform(0.05, 25.0)), 2),
            "warranty_months": int(rng.choice([0, 6, 12, 24])),
        }
        rows.append(
            (
                pid,
                f"{prefix}-{pid:07d}",
                name,
                category,
                brands[i],
                cents_str(price),
                cents_str(cost),
                build_description(rng, name),
                json.dumps(attributes),
                active[i],
                created_iso[i],
                updated_iso[i],
            )
        )
    return rows, created


def build_inventory(
    rng: np.random.Generator,
    product_ids: np.ndarray,
    warehouses: list[str],
    created_us: np.ndarray,
    end_us: int,
) -> list[Row]:
    """Stock rows for (product, warehouse) pairs (arrays aligned)."""
    n = len(product_ids)
    qty = rng.integers(0, 500, size=n).tolist()
    reorder = rng.integers(10, 60, size=n).tolist()
    created = _between(rng, created_us, end_us - 1)
    updated = _between(rng, created, end_us - 1)
    created_iso, updated_iso = iso_us(created), iso_us(updated)
    return [(int(product_ids[i]), warehouses[i], qty[i], reorder[i], created_iso[i], updated_iso[i]) for i in range(n)]


def stocking_plan(rng: np.random.Generator, n_products: int) -> tuple[np.ndarray, list[str]]:
    """Each product is stocked in 2-4 distinct warehouses."""
    n_wh = len(vocab.WAREHOUSES)
    per = rng.integers(2, 5, size=n_products)
    ranks = np.argsort(rng.random((n_products, n_wh)), axis=1)
    owner = np.repeat(np.arange(n_products), per)
    slot = np.concatenate([ranks[i, : per[i]] for i in range(n_products)]) if n_products else np.array([], int)
    return owner, [vocab.WAREHOUSES[k] for k in slot.tolist()]


def generate_products(
    settings: Settings, count: int, seed: int | None = None, start_date: DateLike = None, days: int | None = None
) -> GenerationResult:
    """Insert `count` products and their stock in 2-4 warehouses each."""
    result, rng = begin("products", count, seed, start_date, days)
    ensure_schema(settings)
    schema = settings.oltp_schema
    with connect(settings) as conn:
        ids = reserve_ids(conn, settings, "products", "product_id", count)
        products, created = build_products(rng, ids, result.window)
        owner, warehouses = stocking_plan(rng, count)
        stock = build_inventory(rng, ids[owner], warehouses, created[owner], result.window.start_us)
        result.counts["products"] = copy_rows(conn, schema, "products", PRODUCT_COLUMNS, products)
        result.counts["inventory"] = copy_rows(conn, schema, "inventory", INVENTORY_COLUMNS, stock)
    return result.finish()


def generate_inventory(
    settings: Settings, count: int, seed: int | None = None, start_date: DateLike = None, days: int | None = None
) -> GenerationResult:
    """Stock up to `count` (product, warehouse) pairs that have no inventory row yet."""
    result, rng = begin("inventory", count, seed, start_date, days)
    ensure_schema(settings)
    with connect(settings) as conn:
        query = sql.SQL(
            """select p.product_id, w.warehouse, (extract(epoch from p.created_at) * 1e6)::bigint
               from {p} p cross join unnest(%s::text[]) as w(warehouse)
               where not exists (select 1 from {i} i where i.product_id = p.product_id
                                 and i.warehouse = w.warehouse)
               order by p.product_id, w.warehouse"""
        ).format(p=table(settings.oltp_schema, "products"), i=table(settings.oltp_schema, "inventory"))
        missing = conn.execute(query, (list(vocab.WAREHOUSES),)).fetchall()
        if not missing:
            raise SyntheticDataError("no product lacks stock in any warehouse (generate products first)")
        chosen = np.sort(rng.permutation(len(missing))[:count])
        pids = np.array([missing[i][0] for i in chosen], dtype=np.int64)
        created = np.maximum(np.array([missing[i][2] for i in chosen], dtype=np.int64), result.window.start_us)
        rows = build_inventory(rng, pids, [missing[i][1] for i in chosen], created, result.window.end_us)
        result.counts["inventory"] = copy_rows(conn, settings.oltp_schema, "inventory", INVENTORY_COLUMNS, rows)
    return result.finish()
