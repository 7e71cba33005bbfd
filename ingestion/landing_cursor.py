"""Which landing objects are new: the cursor behind the S3 sensor.

A "newer than the last LastModified" cursor (what `dagster_aws.s3.sensor.get_objects` offers)
misses objects: S3 timestamps have one-second resolution, so a second object written in the same
second as the cursor is never strictly newer; and an upload that started earlier but finished later
appears with an older LastModified. This cursor keeps a high-water mark plus every object version
(key, ETag) seen within a look-back window below it, and reports each object version exactly once:
a re-uploaded key with new content is a new version; the same content uploaded again is not.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

DEFAULT_LOOKBACK = timedelta(minutes=15)


@dataclass(frozen=True)
class LandingObject:
    key: str
    etag: str
    last_modified: datetime
    size: int = 0

    @classmethod
    def from_listing(cls, entry: Mapping[str, Any]) -> LandingObject:
        """From a `list_objects_v2` entry (as returned by `get_objects`)."""
        modified = entry["LastModified"]
        if modified.tzinfo is None:
            modified = modified.replace(tzinfo=UTC)
        return cls(str(entry["Key"]), str(entry["ETag"]).strip('"'), modified, int(entry.get("Size", 0)))


@dataclass
class LandingCursor:
    """High-water mark plus the object versions seen within `lookback` of it."""

    high_water: datetime | None = None
    seen: dict[str, str] = field(default_factory=dict)  # key -> ETag, for objects inside the window
    seen_at: dict[str, str] = field(default_factory=dict)  # key -> LastModified (ISO), for pruning

    def to_json(self) -> str:
        return json.dumps(
            {
                "high_water": self.high_water.isoformat() if self.high_water else None,
                "seen": self.seen,
                "seen_at": self.seen_at,
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str | None) -> LandingCursor:
        if not text:
            return cls()
        data = json.loads(text)
        high_water = datetime.fromisoformat(data["high_water"]) if data.get("high_water") else None
        return cls(high_water, dict(data.get("seen", {})), dict(data.get("seen_at", {})))

    def since(self, lookback: timedelta = DEFAULT_LOOKBACK) -> datetime | None:
        """Oldest LastModified that can still hold an object this cursor has not seen."""
        return self.high_water - lookback if self.high_water else None


def new_objects(
    listing: Iterable[LandingObject], cursor: LandingCursor, lookback: timedelta = DEFAULT_LOOKBACK
) -> tuple[list[LandingObject], LandingCursor]:
    """Objects not reported before (oldest first) and the cursor that remembers them too."""
    since = cursor.since(lookback)
    fresh = sorted(
        (
            obj
            for obj in listing
            if (since is None or obj.last_modified >= since) and cursor.seen.get(obj.key) != obj.etag
        ),
        key=lambda o: (o.last_modified, o.key),
    )
    seen = dict(cursor.seen)
    seen_at = dict(cursor.seen_at)
    high_water = cursor.high_water
    for obj in fresh:
        seen[obj.key] = obj.etag
        seen_at[obj.key] = obj.last_modified.isoformat()
        high_water = max(high_water, obj.last_modified) if high_water else obj.last_modified
    if high_water is not None:
        floor = high_water - lookback
        for key in [k for k, at in seen_at.items() if datetime.fromisoformat(at) < floor]:
            seen.pop(key, None)
            seen_at.pop(key, None)
    return fresh, LandingCursor(high_water, seen, seen_at)
