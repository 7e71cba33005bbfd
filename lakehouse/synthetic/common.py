"""Shared building blocks of the generators: time window, seeded RNG, errors, results.

Every generator is a pure function of (seed, entity, parameters, current source state), so two runs
with the same inputs produce identical data. Timestamps derive from the window, never the wall clock.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np

UTC = dt.UTC
#: A window start: a date, an ISO 'YYYY-MM-DD' string, or None for the default window.
DateLike = dt.date | str | None
DAY_US = 86_400_000_000
#: Most days a single call may cover (bounds memory and object counts).
MAX_DAYS = 366
#: Largest `count` per entity and call (documented in docs/synthetic-data.md).
MAX_COUNT: dict[str, int] = {
    "customers": 200_000,
    "addresses": 500_000,
    "products": 50_000,
    "inventory": 300_000,
    "orders": 2_000_000,
    "campaigns": 10_000,
    "ad_spend": 10_000,
    "carts": 200_000,
    "sessions": 200_000,
    "reviews": 200_000,
    "clickstream": 200_000,
    "partner_feeds": 50,
}


class SyntheticDataError(ValueError):
    """Bad parameters or a source state the request cannot be satisfied from (API 422, CLI exit 2).

    Raised before anything is written, so a failed request changes nothing.
    """


@dataclass(frozen=True)
class Window:
    """Half-open UTC interval [start, end) of whole days that generated timestamps fall into."""

    start_date: dt.date
    days: int

    @property
    def end_date(self) -> dt.date:
        """First day after the window (exclusive)."""
        return self.start_date + dt.timedelta(days=self.days)

    @property
    def start_us(self) -> int:
        return date_to_us(self.start_date)

    @property
    def end_us(self) -> int:
        return date_to_us(self.end_date)

    def dates(self) -> list[dt.date]:
        return [self.start_date + dt.timedelta(days=i) for i in range(self.days)]


def date_to_us(day: dt.date) -> int:
    """Microseconds since the epoch of midnight UTC of `day`."""
    return (day - dt.date(1970, 1, 1)).days * DAY_US


def make_window(start_date: DateLike = None, days: int | None = None) -> Window:
    """Validate window parameters; default is the 30 whole days before today (UTC), ending at midnight.

    Ending at today's midnight keeps every generated timestamp in the past.
    """
    if days is None:
        days = 30
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_DAYS:
        raise SyntheticDataError(f"days must be an integer between 1 and {MAX_DAYS}, got {days!r}")
    if start_date is None:
        start = dt.datetime.now(UTC).date() - dt.timedelta(days=days)
    elif isinstance(start_date, str):
        try:
            start = dt.date.fromisoformat(start_date)
        except ValueError:
            raise SyntheticDataError(f"start_date must be an ISO date YYYY-MM-DD, got {start_date!r}") from None
    else:
        start = start_date
    if not dt.date(1971, 1, 1) <= start <= dt.date(2999, 1, 1):
        raise SyntheticDataError(f"start_date {start} is out of range")
    return Window(start, days)


def new_seed() -> int:
    """A fresh seed when the caller gave none; reported back so the run can be reproduced."""
    return secrets.randbits(48)


def make_rng(seed: int, entity: str, *params: object) -> np.random.Generator:
    """RNG for one generator call: the parameters are part of the seed.

    Two calls with the same seed but different parameters thus get different streams (no duplicate
    event ids or overwritten DynamoDB keys), while repeating a call reproduces it exactly.
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise SyntheticDataError(f"seed must be a non-negative integer, got {seed!r}")
    digest = hashlib.sha256(repr((entity, *params)).encode()).digest()
    return np.random.default_rng([seed, int.from_bytes(digest[:8], "little")])


def rng_uuids(rng: np.random.Generator, n: int) -> list[str]:
    """`n` version-4 UUID strings drawn from `rng` (deterministic, unlike uuid.uuid4())."""
    raw = rng.integers(0, 256, size=(n, 16), dtype=np.uint8)
    return [str(uuid.UUID(bytes=row.tobytes(), version=4)) for row in raw]


def iso_us(values: np.ndarray) -> np.ndarray:
    """Epoch microseconds -> ISO-8601 UTC strings with a `Z` suffix (vectorised)."""
    return np.datetime_as_string(np.asarray(values, dtype="datetime64[us]"), unit="s", timezone="UTC")


def cents_str(cents: int) -> str:
    """Non-negative integer cents -> exact decimal text ('1234.50'), no float rounding on the way."""
    return f"{cents // 100}.{cents % 100:02d}"


def cents_to_str(cents: np.ndarray) -> list[str]:
    return [f"{c // 100}.{c % 100:02d}" for c in cents.tolist()]


def begin(
    entity: str, count: int, seed: int | None, start_date: DateLike, days: int | None
) -> tuple[GenerationResult, np.random.Generator]:
    """Validate the common parameters; result skeleton and RNG of one generator call."""
    check_count(entity, count, MAX_COUNT[entity])
    window = make_window(start_date, days)
    seed = new_seed() if seed is None else seed
    rng = make_rng(seed, entity, count, window.start_date.isoformat(), window.days)
    return GenerationResult(entity, seed, window), rng


def check_count(entity: str, count: int, maximum: int) -> None:
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= maximum:
        raise SyntheticDataError(f"count for {entity} must be between 1 and {maximum}, got {count!r}")


def check_rate(malformed_rate: float) -> None:
    if not 0.0 <= malformed_rate <= 1.0:
        raise SyntheticDataError(f"malformed_rate must be between 0 and 1, got {malformed_rate!r}")


@dataclass
class GenerationResult:
    """What one generator call wrote: rows/items/records per target, plus timing and reproduction data."""

    entity: str
    seed: int
    window: Window
    counts: dict[str, int] = field(default_factory=dict)
    elapsed_seconds: float = 0.0
    objects: list[dict[str, Any]] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter, repr=False)

    def finish(self) -> GenerationResult:
        self.elapsed_seconds = time.perf_counter() - self.started
        return self

    def merge(self, other: GenerationResult) -> None:
        """Fold a sub-step (of the starter set) into this result, keeping its own timing."""
        for key, value in other.counts.items():
            self.counts[key] = self.counts.get(key, 0) + value
        self.objects.extend(other.objects)
        self.steps.append(
            {
                "entity": other.entity,
                "counts": other.counts,
                "elapsed_seconds": round(other.elapsed_seconds, 3),
            }
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "entity": self.entity,
            "seed": self.seed,
            "start_date": self.window.start_date.isoformat(),
            "days": self.window.days,
            "counts": dict(self.counts),
            "elapsed_seconds": round(self.elapsed_seconds, 3),
            "objects": list(self.objects),
            "steps": list(self.steps),
        }
