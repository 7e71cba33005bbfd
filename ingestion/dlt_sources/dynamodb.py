"""DynamoDB carts, sessions and reviews -> `bronze/dynamodb/<table>` (Delta, merged on the key).

A DynamoDB scan always reads the whole table (read capacity is charged for every item scanned).
After the first load, the scan asks only for keys and `updated_at` (small responses, compared as
instants in Python, whatever their format), the changed items are fetched with BatchGetItem, and
the key list reconciles deletes: items deleted or past their TTL leave bronze. Segments of a
parallel scan run in a small thread pool.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from decimal import Decimal
from typing import Any, Final, cast

import boto3
import dlt
from boto3.dynamodb.types import Binary, TypeDeserializer
from botocore.config import Config
from botocore.exceptions import ClientError
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError
from dlt.common.schema.typing import TColumnSchema
from dlt.extract.resource import DltResource
from dlt.extract.source import DltSource

from lakehouse.aws import DYNAMODB_KEYS
from lakehouse.settings import DYNAMODB_TABLES, Settings

from .core import CURSOR_SAFETY, SCHEMA_CONTRACT, UpdatedAtCursor, bronze_table_uri, canonical_iso

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


def columns(table: str) -> dict[str, TColumnSchema]:
    declared = {name: cast(TColumnSchema, dict(column)) for name, column in COLUMNS[table].items()}
    # rows with `_deleted = true` delete their key (dlt hard delete) and are not stored
    return declared | {"_deleted": cast(TColumnSchema, {"data_type": "bool", "hard_delete": True})}


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


#: The column that marks a delete in a load (dlt's `hard_delete` hint): rows carrying it remove their
#: key from bronze and are never stored, so bronze keeps only live items (always null in the table).
DELETED: Final = "_deleted"
#: Keys per BatchGetItem request (DynamoDB's limit).
_BATCH_GET: Final = 100


def ttl_attribute(client: Any, table: str) -> str | None:
    """The table's TTL attribute when TTL is on; None when off or when the role may not ask."""
    try:
        description = client.describe_time_to_live(TableName=table).get("TimeToLiveDescription", {})
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("AccessDeniedException", "UnrecognizedClientException"):
            log.warning(
                "dynamodb %s: cannot read the TTL setting (%s): expired items leave bronze only once DynamoDB "
                "removes them; grant dynamodb:DescribeTimeToLive",
                table,
                exc.response["Error"]["Code"],
            )
            return None
        raise
    if description.get("TimeToLiveStatus") in ("ENABLED", "ENABLING"):
        return str(description.get("AttributeName")) or None
    return None


def expired(item: Item, ttl: str | None, now_epoch: float) -> bool:
    """Past its TTL: DynamoDB deletes such items within days but still returns them until then."""
    if ttl is None:
        return False
    value = item.get(ttl)
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 < value < now_epoch


def _stamp(item: Item, key: str, table: str) -> str:
    if item.get("updated_at") is None:
        raise ValueError(f"DynamoDB item {item.get(key)!r} of {table} has no updated_at (contract)")
    try:
        return canonical_iso(item["updated_at"])
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"DynamoDB item {item.get(key)!r} of {table}: updated_at {item['updated_at']!r} is not ISO-8601 ({exc})"
        ) from exc


def batch_get(
    client: Any, table: str, keys: Sequence[dict[str, Any]], threads: int = 4
) -> Iterator[list[dict[str, Any]]]:
    """Full items for `keys` (raw key attribute values), 100 per request, unprocessed keys retried."""

    def fetch(chunk: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        request: dict[str, Any] = {table: {"Keys": list(chunk)}}
        for attempt in range(12):
            response = client.batch_get_item(RequestItems=request)
            items += response.get("Responses", {}).get(table, [])
            request = response.get("UnprocessedKeys") or {}
            if not request:
                return items
            time.sleep(min(2.0, 0.05 * 2**attempt))  # throttled: back off, then ask for the rest
        raise RuntimeError(f"dynamodb {table}: BatchGetItem left keys unprocessed after 12 attempts")

    chunks = [keys[i : i + _BATCH_GET] for i in range(0, len(keys), _BATCH_GET)]
    if not chunks:
        return
    with ThreadPoolExecutor(max_workers=min(threads, len(chunks)), thread_name_prefix="ddb-get") as pool:
        yield from pool.map(fetch, chunks)


def bronze_keys(settings: Settings, logical: str, key: str) -> set[str]:
    """Keys the bronze table holds now (empty when it does not exist yet)."""
    uri = bronze_table_uri(settings, "dynamodb", logical)
    try:
        table = DeltaTable(uri, storage_options=settings.delta_storage_options)
    except TableNotFoundError:
        return set()
    if key not in table.schema().to_arrow().names:
        return set()
    column = table.to_pyarrow_dataset().to_table(columns=[key])[key]
    return {str(v) for v in column.to_pylist() if v is not None}


def table_resource(settings: Settings, logical: str, segments: int = 4, page_size: int | None = None) -> DltResource:
    """One DynamoDB table as an incremental, merged dlt resource (no network until extraction).

    First run: one full parallel scan. Later runs: a parallel scan of the keys and `updated_at`
    only (`ProjectionExpression`), then `BatchGetItem` for the items that changed since the
    cursor. The key list also gives the deletes: keys bronze holds that DynamoDB no longer has
    (or that are past their TTL) are removed from bronze in the same load.
    """
    if logical not in DYNAMODB_TABLES:
        raise ValueError(f"unknown DynamoDB table {logical!r}; known: {', '.join(DYNAMODB_TABLES)}")
    if page_size is not None and not 1 <= page_size <= 10_000:
        raise ValueError("page_size must be between 1 and 10000")
    key = DYNAMODB_KEYS[logical]
    physical = settings.dynamodb_table(logical)

    def scan_items() -> Iterator[list[Item]]:
        state = dlt.current.resource_state()
        cursor = UpdatedAtCursor.from_state(state.get("cursor"))
        client = _client(settings)
        ttl = ttl_attribute(client, physical)
        scan_started = dt.datetime.now(dt.UTC)
        now_epoch = time.time()
        request: dict[str, Any] = {"TableName": physical}
        if page_size:
            request["Limit"] = page_size
        returned: dict[str, str] = {}  # live key -> canonical updated_at, at or after the cursor
        live: set[str] = set()
        loaded = 0
        if cursor.since is None:
            for page in parallel_scan(client.scan, request, segments):
                wanted = []
                for raw in page:
                    item = deserialize(raw)
                    stamp = _stamp(item, key, physical)
                    if expired(item, ttl, now_epoch):
                        continue
                    name = str(item[key])
                    live.add(name)
                    returned[name] = stamp
                    wanted.append(item)
                loaded += len(wanted)
                if wanted:
                    yield wanted
        else:
            names = {"#k": key, "#u": "updated_at"} | ({"#t": ttl} if ttl else {})
            request.update(ProjectionExpression=", ".join(names), ExpressionAttributeNames=names)
            changed: list[dict[str, Any]] = []
            for page in parallel_scan(client.scan, request, segments):
                for raw in page:
                    item = deserialize(raw)
                    stamp = _stamp(item, key, physical)
                    if expired(item, ttl, now_epoch):
                        continue
                    name = str(item[key])
                    live.add(name)
                    if stamp >= cursor.since:
                        returned[name] = stamp
                    if cursor.wants(name, stamp):
                        changed.append({key: raw[key]})
            for page in batch_get(client, physical, changed, segments):
                wanted = []
                for raw in page:
                    item = deserialize(raw)
                    if expired(item, ttl, now_epoch):
                        continue
                    returned[str(item[key])] = _stamp(item, key, physical)  # what is loaded: as fetched
                    wanted.append(item)
                loaded += len(wanted)
                if wanted:
                    yield wanted
        gone = sorted(bronze_keys(settings, logical, key) - live)
        if gone:
            deleted_at = canonical_iso(scan_started)
            yield [{key: name, "updated_at": deleted_at, DELETED: True} for name in gone]
        state["cursor"] = cursor.advance(returned, scan_started, CURSOR_SAFETY).forget(gone).to_state()
        log.info(
            "dynamodb %s: %d live item(s), %d loaded, %d deleted or expired (cursor %s)",
            physical,
            len(live),
            loaded,
            len(gone),
            cursor.since,
        )

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

    @dlt.source(name="dynamodb", max_table_nesting=0, schema_contract=cast(Any, SCHEMA_CONTRACT))
    def dynamodb() -> list[DltResource]:
        return resources

    return dynamodb()
