"""DynamoDB carts, sessions and reviews -> `bronze/dynamodb/<table>` (Delta, merged on the key).

A DynamoDB scan always reads the whole table (read capacity is charged for every item scanned);
the `updated_at >= cursor` FilterExpression only cuts what is sent back over the network and what
dlt has to process. Segments of a parallel scan run in a small thread pool.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final, cast

import boto3
import dlt
from boto3.dynamodb.types import Binary, TypeDeserializer
from botocore.config import Config
from dlt.common.schema.typing import TColumnSchema
from dlt.extract.resource import DltResource
from dlt.extract.source import DltSource

from lakehouse.settings import DYNAMODB_TABLES, Settings
from lakehouse.stack.resources import DYNAMODB_KEYS

from .core import canonical_iso, iso_second_floor

log = logging.getLogger(__name__)

Item = dict[str, Any]

_TS: Final[TColumnSchema] = {"data_type": "timestamp", "timezone": True, "precision": 6}
_TEXT: Final[TColumnSchema] = {"data_type": "text"}
_INT: Final[TColumnSchema] = {"data_type": "bigint"}
#: Declared columns: types stay stable even when the first batch lacks an optional attribute.
#: Attributes not listed here are still loaded (schema evolution adds the column).
#: Use `columns(table)`: dlt writes into the column dicts it is given, so each resource gets copies.
COLUMNS: Final[dict[str, dict[str, TColumnSchema]]] = {
    "carts": {
        "cart_id": {**_TEXT, "nullable": False},
        "customer_id": _INT,
        "items": {"data_type": "json"},
        "status": _TEXT,
        "created_at": _TS,
        "updated_at": {**_TS, "nullable": False},
    },
    "sessions": {
        "session_id": {**_TEXT, "nullable": False},
        "customer_id": _INT,
        "started_at": _TS,
        "ended_at": _TS,
        "device": _TEXT,
        "channel": _TEXT,
        "campaign_id": _TEXT,
        "page_views": _INT,
        "updated_at": {**_TS, "nullable": False},
    },
    "reviews": {
        "review_id": {**_TEXT, "nullable": False},
        "product_id": _INT,
        "customer_id": _INT,
        "rating": _INT,
        "title": _TEXT,
        "body": _TEXT,
        "created_at": _TS,
        "updated_at": {**_TS, "nullable": False},
    },
}

_deserializer = TypeDeserializer()

#: The next scan starts no later than this before the current scan started. A scan is not a
#: snapshot: an item written while it runs may carry an `updated_at` older than items read after
#: it, and writers' clocks differ a little. Re-reading that margin is harmless (merge on the key).
CURSOR_SAFETY: Final = dt.timedelta(minutes=5)


@dataclass(frozen=True)
class ScanCursor:
    """Incremental position of one table, kept in dlt's resource state (committed with the load).

    `since`: items with `updated_at >= since` are read (canonical ISO-8601, None: everything).
    `seen`: key -> `updated_at` of loaded items at or after `since`; the next scan returns them
    again and skips those that did not change, so a rerun without changes loads nothing.
    """

    since: str | None = None
    seen: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_state(cls, state: Any) -> ScanCursor:
        if not state:
            return cls()
        return cls(state.get("since"), dict(state.get("seen") or {}))

    def to_state(self) -> dict[str, Any]:
        return {"since": self.since, "seen": dict(sorted(self.seen.items()))}

    def advance(self, returned: dict[str, str], scan_started: dt.datetime, safety: dt.timedelta) -> ScanCursor:
        """The cursor after a scan that returned `returned` (key -> canonical `updated_at`).

        It moves to the newest `updated_at` seen, but never past `scan_started - safety`: an
        item updated during the scan with an older timestamp is read by the next run.
        """
        if not returned:
            return self
        ceiling = canonical_iso(scan_started - safety)
        since = min(max(returned.values()), ceiling)
        if self.since is not None:
            since = max(since, self.since)  # never backwards: what is below was read already
        seen = {key: stamp for key, stamp in {**self.seen, **returned}.items() if stamp >= since}
        return ScanCursor(since, seen)


def columns(table: str) -> dict[str, TColumnSchema]:
    return {name: cast(TColumnSchema, dict(column)) for name, column in COLUMNS[table].items()}


def plain(value: Any) -> Any:
    """A deserialized DynamoDB value as plain JSON-friendly Python.

    Numbers: integral -> int, otherwise float (DynamoDB numbers are decimals of up to 38 digits;
    float keeps ~15 significant digits, plenty for prices with 2 decimals, and gives JSON numbers
    inside the `items` JSON column). Sets -> sorted lists, binary -> base64 text, maps/lists recurse.
    """
    if isinstance(value, Decimal):
        if value == value.to_integral_value():
            return int(value)
        return float(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted(plain(v) for v in value)
    if isinstance(value, Binary):
        return base64.b64encode(cast(Any, value).value).decode("ascii")  # stubs lack `.value`
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode("ascii")
    return value


def deserialize(item: dict[str, Any]) -> Item:
    """Low-level client item (`{"attr": {"S": ...}}`) -> plain dict."""
    return {name: plain(_deserializer.deserialize(value)) for name, value in item.items()}


def parallel_scan(
    scan: Callable[..., dict[str, Any]],
    request: dict[str, Any],
    segments: int,
) -> Iterator[list[dict[str, Any]]]:
    """Pages of a parallel scan, as they arrive (order across segments is arbitrary).

    At most one request per segment is in flight (the next page of a segment is requested as soon
    as the previous one arrived, before it is handed out), so memory stays bounded to about one page
    per segment and abandoning the iterator only waits for the requests in flight.
    """
    if not 1 <= segments <= 64:
        raise ValueError("segments must be between 1 and 64")

    def page(segment: int, start_key: dict[str, Any] | None) -> dict[str, Any]:
        kwargs = dict(request)
        if segments > 1:
            kwargs.update(Segment=segment, TotalSegments=segments)
        if start_key:
            kwargs["ExclusiveStartKey"] = start_key
        return scan(**kwargs)

    with ThreadPoolExecutor(max_workers=segments, thread_name_prefix="ddb-scan") as pool:
        pending: dict[Future[dict[str, Any]], int] = {
            pool.submit(page, segment, None): segment for segment in range(segments)
        }
        try:
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    segment = pending.pop(future)
                    response = future.result()
                    next_key = response.get("LastEvaluatedKey")
                    if next_key:
                        pending[pool.submit(page, segment, next_key)] = segment
                    yield response.get("Items", [])
        finally:
            for future in pending:
                future.cancel()


def _client(settings: Settings) -> Any:
    # adaptive retries absorb throttling of a provisioned table during a parallel scan
    config = Config(connect_timeout=5, read_timeout=60, retries={"max_attempts": 8, "mode": "adaptive"})
    return boto3.session.Session().client("dynamodb", config=config, **settings.boto3_kwargs())


def table_resource(settings: Settings, logical: str, segments: int = 4, page_size: int | None = None) -> DltResource:
    """One DynamoDB table as an incremental, merged dlt resource (no network until extraction)."""
    if logical not in DYNAMODB_TABLES:
        raise ValueError(f"unknown DynamoDB table {logical!r}; known: {', '.join(DYNAMODB_TABLES)}")
    if page_size is not None and not 1 <= page_size <= 10_000:
        raise ValueError("page_size must be between 1 and 10000")
    key = DYNAMODB_KEYS[logical]
    physical = settings.dynamodb_table(logical)

    def scan_items() -> Iterator[list[Item]]:
        state = dlt.current.resource_state()
        cursor = ScanCursor.from_state(state.get("cursor"))
        request: dict[str, Any] = {"TableName": physical}
        if page_size:
            request["Limit"] = page_size
        if cursor.since is not None:
            # ">=" on the second: the filter compares strings, so it must be a safe lower bound for
            # any precision; `ScanCursor.wants` then compares exact instants.
            request.update(
                FilterExpression="#cursor >= :since",
                ExpressionAttributeNames={"#cursor": "updated_at"},
                ExpressionAttributeValues={":since": {"S": iso_second_floor(cursor.since)}},
            )
        scan_started = dt.datetime.now(dt.UTC)
        client = _client(settings)
        returned: dict[str, str] = {}
        for page in parallel_scan(client.scan, request, segments):
            wanted = []
            for raw in page:
                item = deserialize(raw)
                if "updated_at" not in item:
                    raise ValueError(f"DynamoDB item {item.get(key)!r} of {physical} has no updated_at (contract)")
                stamp = canonical_iso(item["updated_at"])
                if cursor.since is not None and stamp < cursor.since:
                    continue
                returned[str(item[key])] = stamp
                if cursor.seen.get(str(item[key])) != stamp:
                    wanted.append(item)
            if wanted:
                yield wanted
        state["cursor"] = cursor.advance(returned, scan_started, CURSOR_SAFETY).to_state()
        log.info("dynamodb %s: %d items at or after the cursor %s", physical, len(returned), cursor.since)

    return dlt.resource(
        scan_items,
        name=logical,
        table_name=logical,
        primary_key=key,
        write_disposition={"disposition": "merge", "strategy": "upsert"},
        columns=columns(logical),
        table_format="delta",
    )


def dynamodb_source(
    settings: Settings,
    tables: Sequence[str] = DYNAMODB_TABLES,
    segments: int = 4,
    page_size: int | None = None,
) -> DltSource:
    """dlt source `dynamodb` with one resource per table (`carts`, `sessions`, `reviews`).

    Nested values (cart `items`) are stored as JSON text in one column (`max_table_nesting=0`):
    a child table would need its own merge on (cart_id, list index) and still leave deleted
    line items behind, while dbt reads JSON arrays directly.
    """
    unknown = set(tables) - set(DYNAMODB_TABLES)
    if unknown or not tables:
        raise ValueError(f"tables must be a non-empty subset of {', '.join(DYNAMODB_TABLES)}")
    resources = [table_resource(settings, t, segments, page_size) for t in tables]

    @dlt.source(name="dynamodb", max_table_nesting=0)
    def dynamodb() -> list[DltResource]:
        return resources

    return dynamodb()
