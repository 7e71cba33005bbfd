"""S3 landing objects -> `bronze/landing/{clickstream,partner_feeds}` + `bronze/landing/_quarantine`.

Exactly once per object version (key + ETag), with appends only:
1. dlt resource state remembers `key -> etag` of every object processed. It is committed with the
   load package and restored from the destination when the local working dir is gone.
2. Objects missing from that state are looked up in the bronze table itself (`_object_key`,
   `_object_etag` columns; Delta file statistics prune the scan). This closes the gap of a state
   that is older than the data (lost working dir + a crash between the Delta commit and the state
   commit), which dlt state alone cannot.
3. Quarantine rows are written with merge strategy `insert-only` on (object_key, object_etag,
   line_number): reprocessing an object can never duplicate them.
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Final

import boto3
import dlt
import pyarrow as pa
import pyarrow.compute as pc
from botocore.config import Config
from botocore.exceptions import ClientError
from deltalake import DeltaTable
from dlt.common.schema.typing import TColumnSchema
from dlt.extract.resource import DltResource
from dlt.extract.source import DltSource

from lakehouse.settings import Settings

from .core import bronze_table_uri
from .landing_parse import (
    KEY_PATTERNS,
    PARSERS,
    PREFIXES,
    QUARANTINE_SCHEMA,
    Kind,
    Parsed,
    check_kind,
    quarantine_table,
    validate_key,
    validate_prefix,
)

log = logging.getLogger(__name__)

QUARANTINE_TABLE: Final = "_quarantine"
QUARANTINE_KEY: Final = ("object_key", "object_etag", "line_number")
#: Objects fetched and parsed concurrently (S3 latency hides behind parsing; Arrow releases the GIL).
DEFAULT_WORKERS: Final = 4
_MAX_EXPLICIT_KEYS: Final = 100_000

_CLICKSTREAM_COLUMNS: Final[dict[str, TColumnSchema]] = {
    # one folder per day: date-bounded dbt models and merges prune to a few partitions
    "event_date": {"partition": True},
}


def quarantine_hints() -> Any:
    """Hints of the shared quarantine table (written from inside the data resources)."""
    return dlt.mark.make_hints(
        table_name=QUARANTINE_TABLE,
        write_disposition={"disposition": "merge", "strategy": "insert-only"},
        primary_key=list(QUARANTINE_KEY),
        table_format="delta",
    )


def _s3(settings: Settings) -> Any:
    config = Config(connect_timeout=5, read_timeout=120, retries={"max_attempts": 5, "mode": "standard"})
    return boto3.session.Session().client("s3", config=config, **settings.boto3_kwargs())


def _etag(value: str) -> str:
    return value.strip('"')


def list_objects(settings: Settings, kind: str, prefix: str | None = None, client: Any = None) -> dict[str, str]:
    """`key -> etag` of the landing objects of `kind` under `prefix` (keys off the layout skipped).

    Also what an S3 sensor can diff against to find new objects.
    """
    kind = check_kind(kind)
    prefix = validate_prefix(kind, prefix or PREFIXES[kind])
    client = client or _s3(settings)
    found: dict[str, str] = {}
    skipped = 0
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=settings.landing_bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            if KEY_PATTERNS[kind].match(obj["Key"]) and ".." not in obj["Key"]:
                found[obj["Key"]] = _etag(obj["ETag"])
            else:
                skipped += 1
    if skipped:
        log.warning("%s: %d object(s) under %s do not follow the landing layout; skipped", kind, skipped, prefix)
    return found


def head_objects(settings: Settings, kind: Kind, keys: Iterable[str], client: Any = None) -> dict[str, str]:
    """`key -> etag` of explicitly named objects; missing objects are skipped with a warning."""
    client = client or _s3(settings)

    def head(key: str) -> tuple[str, str | None]:
        try:
            return key, _etag(client.head_object(Bucket=settings.landing_bucket, Key=key)["ETag"])
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                log.warning("%s: s3://%s/%s no longer exists; skipped", kind, settings.landing_bucket, key)
                return key, None
            raise

    with ThreadPoolExecutor(max_workers=8, thread_name_prefix="landing-head") as pool:
        return {key: etag for key, etag in pool.map(head, keys) if etag is not None}


def loaded_in_bronze(settings: Settings, kind: Kind, candidates: dict[str, str]) -> set[tuple[str, str]]:
    """(key, etag) pairs among `candidates` that already have rows in the bronze table."""
    if not candidates:
        return set()
    uri = bronze_table_uri(settings, "landing", kind)
    options = settings.delta_storage_options
    if not DeltaTable.is_deltatable(uri, storage_options=options):
        return set()
    table = DeltaTable(uri, storage_options=options)
    if "_object_key" not in table.schema().to_arrow().names:
        return set()
    keys = sorted(candidates)
    # Delta min/max statistics drop the files that cannot hold these keys before any is opened
    dataset = table.to_pyarrow_dataset(file_pruning_predicate=[("_object_key", "in", keys)])
    found = dataset.to_table(
        columns=["_object_key", "_object_etag"],
        filter=pc.field("_object_key").isin(pa.array(keys, pa.string())),
    )
    pairs = set(zip(found["_object_key"].to_pylist(), found["_object_etag"].to_pylist(), strict=True))
    return {(k, e) for k, e in pairs if candidates.get(k) == e}


def _fetch_and_parse(settings: Settings, client: Any, kind: Kind, key: str, etag: str) -> Parsed:
    # IfMatch: parse exactly the version we decided to load (a concurrent overwrite fails loudly)
    body = client.get_object(Bucket=settings.landing_bucket, Key=key, IfMatch=f'"{etag}"')["Body"].read()
    return PARSERS[kind](body, key, etag)


def _bounded_map(
    pool: ThreadPoolExecutor, fn: Any, items: Sequence[tuple[str, str]], window: int
) -> Iterator[tuple[str, str, Parsed]]:
    """Like `pool.map` but with at most `window` results waiting (memory stays bounded), in order."""
    futures: list[tuple[str, str, Future[Parsed]]] = []
    position = 0
    while position < len(items) or futures:
        while position < len(items) and len(futures) < window:
            key, etag = items[position]
            futures.append((key, etag, pool.submit(fn, key, etag)))
            position += 1
        key, etag, future = futures.pop(0)
        yield key, etag, future.result()


def landing_resource(
    settings: Settings,
    kind: str = "clickstream",
    object_keys: Sequence[str] | None = None,
    prefix: str | None = None,
    workers: int = DEFAULT_WORKERS,
    verify: bool = False,
) -> DltResource:
    """Resource `clickstream` or `partner_feeds` (append) that also feeds `_quarantine`.

    `object_keys` (e.g. from the S3 sensor's run config) limits the run to those objects; without
    it every object under `prefix` (default: the kind's folder) not loaded yet is processed.
    Keys are validated here, before anything touches S3.

    `verify=True` ignores the dlt state and asks the bronze table about every listed object: the
    repair run after a load that failed for good (dlt advances its local state at extract time).
    """
    checked_kind = check_kind(kind)
    keys: list[str] | None = None
    if object_keys is not None:
        if isinstance(object_keys, str):
            raise TypeError("object_keys must be a sequence of keys, not a string")
        if len(object_keys) > _MAX_EXPLICIT_KEYS:
            raise ValueError(f"at most {_MAX_EXPLICIT_KEYS} object keys per run")
        keys = sorted({validate_key(checked_kind, k).group(0) for k in object_keys})
    if prefix is not None:
        validate_prefix(checked_kind, prefix)
    if not 1 <= workers <= 32:
        raise ValueError("workers must be between 1 and 32")

    def objects() -> Iterator[Any]:
        state: dict[str, str] = dlt.current.resource_state().setdefault("objects", {})
        client = _s3(settings)
        listed = (
            head_objects(settings, checked_kind, keys, client)
            if keys is not None
            else list_objects(settings, checked_kind, prefix, client)
        )
        candidates = {k: e for k, e in listed.items() if verify or state.get(k) != e}
        for key, etag in loaded_in_bronze(settings, checked_kind, candidates):
            log.info("%s: %s (etag %s) is already in bronze; recorded and skipped", checked_kind, key, etag)
            state[key] = etag
            del candidates[key]
        log.info(
            "%s: %d object(s) listed, %d to load, %d already loaded",
            checked_kind,
            len(listed),
            len(candidates),
            len(listed) - len(candidates),
        )
        if not candidates:
            return
        todo = sorted(candidates.items())
        data_hints = dlt.mark.make_hints(
            table_name=checked_kind,
            write_disposition="append",
            columns=copy.deepcopy(_CLICKSTREAM_COLUMNS) if checked_kind == "clickstream" else {},
            table_format="delta",
        )
        now = dt.datetime.now(dt.UTC)
        with ThreadPoolExecutor(max_workers=min(workers, len(todo)), thread_name_prefix="landing") as pool:
            parse = lambda key, etag: _fetch_and_parse(settings, client, checked_kind, key, etag)  # noqa: E731
            for key, etag, parsed in _bounded_map(pool, parse, todo, window=workers * 2):
                if parsed.rows is not None and parsed.rows.num_rows:
                    yield dlt.mark.with_hints(parsed.rows, data_hints, create_table_variant=True)
                if parsed.bad:
                    bad = quarantine_table(checked_kind, key, etag, parsed.bad, now)
                    yield dlt.mark.with_hints(bad, quarantine_hints(), create_table_variant=True)
                    log.warning("%s: %s has %d malformed line(s) quarantined", checked_kind, key, len(parsed.bad))
                state[key] = etag

    return dlt.resource(
        objects,
        name=checked_kind,
        table_name=checked_kind,
        write_disposition="append",
        table_format="delta",
    )


def landing_source(
    settings: Settings,
    object_keys: Sequence[str] | None = None,
    kind: str = "clickstream",
    prefix: str | None = None,
    workers: int = DEFAULT_WORKERS,
    verify: bool = False,
) -> DltSource:
    """dlt source `landing_<kind>` (one resource, `clickstream` or `partner_feeds`).

    Each kind has its own source (= dlt schema) name, so the two landing pipelines share the
    `landing` dataset without overwriting each other's schema.
    """
    resource = landing_resource(settings, kind, object_keys, prefix, workers, verify)

    @dlt.source(name=f"landing_{kind}", max_table_nesting=0)
    def landing() -> list[DltResource]:
        return [resource]

    return landing()


__all__ = [
    "QUARANTINE_SCHEMA",
    "QUARANTINE_TABLE",
    "head_objects",
    "landing_resource",
    "landing_source",
    "list_objects",
    "loaded_in_bronze",
]
