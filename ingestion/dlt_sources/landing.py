"""S3 landing objects -> `bronze/landing/{clickstream,partner_feeds}`, `_quarantine` and `_objects`.

Bronze holds exactly one version of each landing object: the newest loaded. A re-uploaded
(corrected) object replaces ALL rows of its earlier version in one Delta commit, wherever they
are (a dropped day loses its rows, a moved event moves), and `_objects` (the manifest) records
every object version with the event days it touched, so dbt can restate the days an older
version covered. This needs a "replace these rows, add those" commit that neither dlt nor
delta-rs' writer offers in bounded memory and O(new data); see `delta_files`.

Per batch of objects, in this order (each step one Delta commit):
1. `_objects`: a `staged` row per object version (its event days), BEFORE any data moves: every
   row that may ever reach bronze lies in days some manifest row of its key names;
2. `_quarantine`: the version's malformed lines (earlier attempts' rows of it replaced);
3. the data table: the new rows added and every earlier row of these keys removed (only the
   files of the days the manifest names for them, pruned further by `_object_key` statistics);
4. `_objects`: a `loaded` row per version: the completion marker, and the ledger that makes a
   re-delivery a no-op.
A crash anywhere leaves the version without its `loaded` row: the next run does it again, and
steps 2 and 3 are replacements, so nothing doubles and no row is lost.
"""

from __future__ import annotations

import datetime as dt
import logging
import tempfile
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import pyarrow as pa
import pyarrow.compute as pc
from botocore.exceptions import ClientError
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError

from lakehouse.settings import Settings

from .core import bronze_table_uri
from .delta_files import PartitionedStager, Replace, StagedFile, append_rows, commit_files, s3_client, staging_dir
from .landing_parse import (
    BRONZE_SCHEMAS,
    DAY_COLUMNS,
    PARTITION_COLUMNS,
    PREFIXES,
    QUARANTINE_SCHEMA,
    TIMESTAMP,
    UNREADABLE_REASONS,
    Kind,
    UnreadableObject,
    check_kind,
    follows_layout,
    is_marker,
    off_layout_reason,
    parse_stream,
    quarantine_table,
    validate_prefix,
)

log = logging.getLogger(__name__)

QUARANTINE_TABLE: Final = "_quarantine"
MANIFEST_TABLE: Final = "_objects"
#: Objects streamed concurrently. Each holds a few blocks and their Arrow tables (~60 MB at most),
#: so this bounds the loader's memory; S3 latency already hides behind parsing inside each object
#: (read-ahead thread), and parsing is CPU-bound, so more workers than cores buy nothing.
DEFAULT_WORKERS: Final = 2
#: Objects per commit group (a sensor run is at most one group), and landing bytes per group.
BATCH_OBJECTS: Final = 200
BATCH_BYTES: Final = 1024 * 1024 * 1024
_MAX_EXPLICIT_KEYS: Final = 100_000
_MAX_KEY_BYTES: Final = 1024  # S3's own limit
_TRAVERSAL: Final = ".."

MANIFEST_SCHEMA: Final = pa.schema(
    [
        ("kind", pa.string()),
        ("object_key", pa.string()),
        ("object_etag", pa.string()),
        ("status", pa.string()),  # 'staged' (intent, before the data commit) | 'loaded' (done)
        ("event_dates", pa.list_(pa.date32())),
        ("rows", pa.int64()),
        ("quarantined_lines", pa.int64()),
        ("unknown_fields", pa.list_(pa.string())),
        ("load_id", pa.string()),  # = `_dlt_load_id` of the version's rows in the data table
        ("recorded_at", TIMESTAMP),
        ("loaded_at", TIMESTAMP),  # null while staged; set after the data commit
    ]
)


# ------------------------------------------------------------------------------ results
@dataclass(frozen=True)
class ObjectLoad:
    """What one run did with one object version."""

    key: str
    etag: str
    rows: int
    quarantined: int
    event_dates: tuple[dt.date, ...]
    replaced: bool  # an earlier version of the key had been loaded (its rows were removed)
    unknown_fields: tuple[str, ...] = ()
    top_reason: str | None = None

    @property
    def quarantine_rate(self) -> float:
        total = self.rows + self.quarantined
        return self.quarantined / total if total else 0.0


@dataclass
class LandingLoad:
    """Report of one `load_landing` run (for logs, Dagster metadata and asset checks)."""

    kind: Kind
    load_id: str
    listed: int = 0
    already_loaded: int = 0
    objects: list[ObjectLoad] = field(default_factory=list)
    delta_versions: dict[str, int | None] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def rows(self) -> int:
        return sum(o.rows for o in self.objects)

    @property
    def quarantined(self) -> int:
        return sum(o.quarantined for o in self.objects)


@dataclass
class _Staged:
    key: str
    etag: str
    data: list[StagedFile]
    quarantine: list[StagedFile]
    rows: int
    quarantined: int
    days: set[str]
    top_reason: str | None = None
    unknown_fields: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class _Known:
    """What the manifest says about one key: loaded versions and every day any version touched."""

    loaded: dict[str, int]  # etag -> rows of its `loaded` row
    days: frozenset[str]
    attempted: frozenset[str]  # etags with any manifest row (staged or loaded)


# ------------------------------------------------------------------------------ S3
def _etag(value: str) -> str:
    return value.strip('"')


@dataclass(frozen=True)
class _Listed:
    etag: str
    size: int


def _list(settings: Settings, kind: Kind, prefix: str, client: Any) -> dict[str, _Listed]:
    """Every object under `prefix`, on the layout or not (the caller sorts them out)."""
    found: dict[str, _Listed] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=settings.landing_bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            key = obj["Key"]
            # a key with `..` is quarantined by name, with the same (empty) ETag in both modes
            etag = "" if _TRAVERSAL in key else _etag(obj["ETag"])
            found[key] = _Listed(etag, int(obj.get("Size", 0)) or (1 if _TRAVERSAL in key else 0))
    return found


def list_objects(settings: Settings, kind: str, prefix: str | None = None, client: Any = None) -> dict[str, str]:
    """`key -> etag` of the loadable landing objects of `kind` under `prefix` (keys off the layout left out)."""
    checked = check_kind(kind)
    listed = _list(
        settings, checked, validate_prefix(checked, prefix or PREFIXES[checked]), client or s3_client(settings)
    )
    return {key: item.etag for key, item in listed.items() if follows_layout(checked, key)}


def head_objects(settings: Settings, kind: Kind, keys: Sequence[str], client: Any = None) -> dict[str, _Listed]:
    """ETag and size of explicitly named objects; missing objects are skipped with a warning."""
    client = client or s3_client(settings)

    def head(key: str) -> tuple[str, _Listed | None]:
        if _TRAVERSAL in key:
            # never sent to S3 (a proxy could normalise the path); quarantined by its name alone
            return key, _Listed("", 1)
        try:
            response = client.head_object(Bucket=settings.landing_bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                log.warning("%s: s3://%s/%s no longer exists; skipped", kind, settings.landing_bucket, key)
                return key, None
            raise
        return key, _Listed(_etag(response["ETag"]), int(response.get("ContentLength", 0)))

    with ThreadPoolExecutor(max_workers=8, thread_name_prefix="landing-head") as pool:
        return {key: item for key, item in pool.map(head, keys) if item is not None}


# ------------------------------------------------------------------------------ manifest (ledger)
def _open(settings: Settings, uri: str) -> DeltaTable | None:
    try:
        return DeltaTable(uri, storage_options=settings.delta_storage_options)
    except TableNotFoundError:
        return None


def manifest_uri(settings: Settings) -> str:
    return bronze_table_uri(settings, "landing", MANIFEST_TABLE)


def read_manifest(settings: Settings, kind: Kind, keys: Sequence[str] | None = None) -> pa.Table:
    """Manifest rows of `kind` (optionally only of `keys`); empty when the table does not exist."""
    table = _open(settings, manifest_uri(settings))
    if table is None:
        return MANIFEST_SCHEMA.empty_table()
    condition = pc.field("kind") == kind
    if keys is not None:
        condition = condition & pc.field("object_key").isin(pa.array(sorted(keys), pa.string()))
    return table.to_pyarrow_dataset().to_table(filter=condition)


def _known(manifest: pa.Table) -> dict[str, _Known]:
    loaded: dict[str, dict[str, int]] = {}
    days: dict[str, set[str]] = {}
    attempted: dict[str, set[str]] = {}
    for row in manifest.select(["object_key", "object_etag", "status", "event_dates", "rows"]).to_pylist():
        key = row["object_key"]
        days.setdefault(key, set()).update(d.isoformat() for d in row["event_dates"] or [])
        attempted.setdefault(key, set()).add(row["object_etag"])
        if row["status"] == "loaded":
            loaded.setdefault(key, {})[row["object_etag"]] = int(row["rows"] or 0)
    return {
        key: _Known(loaded.get(key, {}), frozenset(days.get(key, set())), frozenset(attempted[key]))
        for key in attempted
    }


def _manifest_rows(kind: Kind, staged: Sequence[_Staged], status: str, load_id: str) -> pa.Table:
    now = dt.datetime.now(dt.UTC)
    return pa.table(
        {
            "kind": [kind] * len(staged),
            "object_key": [s.key for s in staged],
            "object_etag": [s.etag for s in staged],
            "status": [status] * len(staged),
            "event_dates": [sorted(dt.date.fromisoformat(d) for d in s.days) for s in staged],
            "rows": [s.rows for s in staged],
            "quarantined_lines": [s.quarantined for s in staged],
            "unknown_fields": [sorted(s.unknown_fields) for s in staged],
            "load_id": [load_id] * len(staged),
            "recorded_at": [now] * len(staged),
            "loaded_at": [now if status == "loaded" else None] * len(staged),
        },
        schema=MANIFEST_SCHEMA,
    )


def bronze_versions(settings: Settings, kind: Kind, keys: Sequence[str]) -> dict[str, dict[str, set[str]]]:
    """key -> etag -> days, of the rows the data table really holds for `keys` (the verify scan)."""
    table = _open(settings, bronze_table_uri(settings, "landing", kind))
    if table is None or not keys:
        return {}
    day = DAY_COLUMNS[kind]
    found = table.to_pyarrow_dataset().to_table(
        columns=["_object_key", "_object_etag", day],
        filter=pc.field("_object_key").isin(pa.array(sorted(keys), pa.string())),
    )
    versions: dict[str, dict[str, set[str]]] = {}
    grouped = found.group_by(["_object_key", "_object_etag"]).aggregate([(day, "distinct")])
    for row in grouped.to_pylist():
        days = {d.isoformat() for d in row[f"{day}_distinct"] if d is not None}
        versions.setdefault(row["_object_key"], {})[row["_object_etag"]] = days
    return versions


def bootstrap_manifest(settings: Settings, kind: Kind, load_id: str) -> int:
    """First run on a data table written before the manifest existed (by the old dlt loader).

    Records every object version found in it and removes all but the latest load of each key
    (the old loader appended corrected versions next to the earlier ones). Returns the versions
    recorded. Manifest rows go first: the days of every version stay known even if the cleanup
    is interrupted (`verify` cleans up what is left).
    """
    uri = bronze_table_uri(settings, "landing", kind)
    table = _open(settings, uri)
    if table is None:
        return 0
    day = DAY_COLUMNS[kind]
    data = table.to_pyarrow_dataset().to_table(columns=["_object_key", "_object_etag", day, "_dlt_load_id"])
    if data.num_rows == 0:
        return 0
    grouped = data.group_by(["_object_key", "_object_etag"]).aggregate(
        [(day, "distinct"), ("_object_key", "count"), ("_dlt_load_id", "max")]
    )
    latest: dict[str, tuple[str, str]] = {}
    for row in grouped.to_pylist():
        key, load = row["_object_key"], row["_dlt_load_id_max"] or ""
        if key not in latest or load > latest[key][1]:
            latest[key] = (row["_object_etag"], load)
    stale: list[_Staged] = []
    versions: list[_Staged] = []
    for row in grouped.to_pylist():
        days = {d.isoformat() for d in row[f"{day}_distinct"] if d is not None}
        item = _Staged(row["_object_key"], row["_object_etag"], [], [], int(row["_object_key_count"]), 0, days)
        versions.append(item)
        if latest[item.key][0] != item.etag:
            stale.append(item)
    append_rows(settings, manifest_uri(settings), _manifest_rows(kind, versions, "loaded", load_id))
    if stale:
        partitions = frozenset(d for s in stale for d in s.days) if PARTITION_COLUMNS[kind] else None
        commit_files(
            settings,
            uri,
            BRONZE_SCHEMAS[kind],
            PARTITION_COLUMNS[kind],
            [],
            Replace(("_object_key", "_object_etag"), frozenset((s.key, s.etag) for s in stale), partitions),
            app_metadata={"landing.operation": "bootstrap", "landing.load_id": load_id},
            workdir=staging_dir(settings),
        )
    log.warning(
        "%s: manifest bootstrapped from bronze: %d object version(s), %d superseded version(s) removed",
        kind,
        len(versions),
        len(stale),
    )
    return len(versions)


# ------------------------------------------------------------------------------ staging
def new_load_id() -> str:
    """Same shape as dlt's load ids (epoch seconds with a fraction): sortable as text, like before."""
    return f"{time.time():.6f}"


#: Bytes requested from S3 per read of a streamed object.
READ_CHUNK_BYTES: Final = 1024 * 1024


def _with_load_id(table: pa.Table, load_id: str) -> pa.Table:
    return table.append_column("_dlt_load_id", pa.repeat(pa.scalar(load_id, pa.string()), table.num_rows))


def _stage_object(
    settings: Settings, client: Any, kind: Kind, key: str, etag: str, load_id: str, directory: Path
) -> _Staged | None:
    """Stream one object into local Parquet files (data per partition, quarantine).

    Never holds the object: S3 is read in 1 MiB chunks, inflated in pieces, cut into blocks of whole
    lines (`landing_parse.BLOCK_BYTES`) and each block's rows are written out before the next is
    read. An object found broken half-way (corrupt gzip, not UTF-8) loses what was staged and
    becomes one quarantine row, as if it had been read whole.
    """
    name = f"{abs(hash((key, etag))):x}"
    bad = PartitionedStager(directory, _QUARANTINE_ROWS, None, f"bad-{name}")
    now = dt.datetime.now(dt.UTC)
    if not follows_layout(kind, key):
        # under the kind's folder but not a landing object: a clear record, nothing fetched
        reason = off_layout_reason(kind, key)
        log.warning("%s: %s: %s", kind, key, reason)
        bad.write(_with_load_id(quarantine_table(kind, key, etag, [(0, "", reason)], now), load_id))
        return _Staged(key, etag, [], bad.close(), 0, 1, set(), reason)
    try:
        # IfMatch: parse exactly the version we decided to load (a concurrent overwrite fails loudly)
        body = client.get_object(Bucket=settings.landing_bucket, Key=key, IfMatch=f'"{etag}"')["Body"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            log.warning("%s: s3://%s/%s disappeared before it was read; skipped", kind, settings.landing_bucket, key)
            return None
        raise
    data = PartitionedStager(
        directory, BRONZE_SCHEMAS[kind], PARTITION_COLUMNS[kind], f"data-{name}", DAY_COLUMNS[kind]
    )
    reasons: dict[str, int] = {}
    quarantined = 0
    unknown: set[str] = set()
    try:
        for parsed in parse_stream(kind, body.iter_chunks(READ_CHUNK_BYTES), key, etag, prefetch=True):
            unknown.update(parsed.unknown_fields)
            if parsed.rows is not None and parsed.rows.num_rows:
                data.write(_with_load_id(parsed.rows, load_id))
            if parsed.bad:
                bad.write(_with_load_id(quarantine_table(kind, key, etag, parsed.bad, now), load_id))
                quarantined += len(parsed.bad)
                for _number, _raw, reason in parsed.bad:
                    reasons[reason[:80]] = reasons.get(reason[:80], 0) + 1
    except UnreadableObject as exc:
        message = str(exc) if str(exc).startswith("cannot ") else UNREADABLE_REASONS[kind].format(exc)
        log.warning("%s: %s is unreadable (%s); quarantined whole", kind, key, message)
        data.discard()
        bad.discard()
        bad.write(_with_load_id(quarantine_table(kind, key, etag, [(0, "", message)], now), load_id))
        return _Staged(key, etag, [], bad.close(), 0, 1, set(), message)
    finally:
        body.close()
    rows = data.rows
    days = set(data.partitions) if PARTITION_COLUMNS[kind] else set(data.days)
    return _Staged(
        key,
        etag,
        data.close(),
        bad.close(),
        rows,
        quarantined,
        days,
        max(reasons, key=lambda r: reasons[r]) if reasons else None,
        unknown,
    )


_QUARANTINE_ROWS: Final = QUARANTINE_SCHEMA.append(pa.field("_dlt_load_id", pa.string()))


# ------------------------------------------------------------------------------ the load
def _check_keys(kind: Kind, object_keys: Sequence[str]) -> list[str]:
    """Explicit keys must lie under the kind's folder. Keys there that are off the layout are not an
    error (the sensor passes every new key it lists): they are quarantined, never fetched."""
    if isinstance(object_keys, str):
        raise TypeError("object_keys must be a sequence of keys, not a string")
    if len(object_keys) > _MAX_EXPLICIT_KEYS:
        raise ValueError(f"at most {_MAX_EXPLICIT_KEYS} object keys per run")
    for key in object_keys:
        if (
            not isinstance(key, str)
            or not key.startswith(PREFIXES[kind])
            or len(key.encode()) > _MAX_KEY_BYTES
            or any(ord(c) < 32 for c in key)
        ):
            raise ValueError(f"{key!r} is not a {kind} landing object key (must lie under {PREFIXES[kind]!r})")
    return sorted(set(object_keys))


def _batches(items: Sequence[tuple[str, str]], sizes: dict[str, int]) -> Iterator[Sequence[tuple[str, str]]]:
    """Commit groups of at most `BATCH_OBJECTS` objects and about `BATCH_BYTES` of landing data (the
    staged Parquet of a group waits on local disk until its commit)."""
    batch: list[tuple[str, str]] = []
    total = 0
    for item in items:
        if batch and (len(batch) >= BATCH_OBJECTS or total + sizes.get(item[0], 0) > BATCH_BYTES):
            yield batch
            batch, total = [], 0
        batch.append(item)
        total += sizes.get(item[0], 0)
    if batch:
        yield batch


def load_landing(
    settings: Settings,
    kind: str = "clickstream",
    object_keys: Sequence[str] | None = None,
    prefix: str | None = None,
    workers: int = DEFAULT_WORKERS,
    verify: bool = False,
    reload: bool = False,
) -> LandingLoad:
    """Load the landing objects of `kind` that bronze does not hold in their current version.

    `object_keys` (the S3 sensor's run config) limits the run to those objects; without it every
    object under `prefix` (default: the kind's folder) is considered. `verify=True` also checks
    the data table itself for the objects the manifest says are loaded, and reloads those whose
    rows are missing or that still have rows of another version (the repair run). `reload=True`
    loads the listed objects again even if they are loaded (after the contract or the parser was
    fixed for objects that went to quarantine); it replaces their rows like a new version would.
    """
    started = time.perf_counter()
    checked = check_kind(kind)
    keys = _check_keys(checked, object_keys) if object_keys is not None else None
    if prefix is not None:
        validate_prefix(checked, prefix)
    if not 1 <= workers <= 32:
        raise ValueError("workers must be between 1 and 32")
    load_id = new_load_id()
    report = LandingLoad(checked, load_id)
    client = s3_client(settings)
    found = (
        head_objects(settings, checked, keys, client)
        if keys is not None
        else _list(settings, checked, prefix or PREFIXES[checked], client)
    )
    markers = sorted(k for k, item in found.items() if is_marker(checked, k, item.size))
    if markers:
        log.info("%s: %d empty marker object(s) skipped, e.g. %s", checked, len(markers), markers[0])
    listed = {k: item.etag for k, item in found.items() if not is_marker(checked, k, item.size)}
    report.listed = len(listed)
    manifest = read_manifest(settings, checked, list(listed))
    data_uri = bronze_table_uri(settings, "landing", checked)
    if (
        manifest.num_rows == 0
        and listed
        and _open(settings, data_uri) is not None
        and read_manifest(settings, checked).num_rows == 0
        and bootstrap_manifest(settings, checked, load_id)
    ):
        manifest = read_manifest(settings, checked, list(listed))
    known = _known(manifest)
    todo = {k: e for k, e in listed.items() if reload or e not in (known[k].loaded if k in known else {})}
    extra_days: dict[str, set[str]] = {}
    if verify:
        loaded_here = {k: e for k, e in listed.items() if k not in todo}
        present = bronze_versions(settings, checked, list(loaded_here))
        for key, etag in loaded_here.items():
            versions = present.get(key, {})
            missing = etag not in versions and known[key].loaded.get(etag, 0) > 0
            others = set(versions) - {etag}
            if missing or others:
                log.warning(
                    "%s: %s: bronze does not match the manifest (missing=%s, other versions=%s); reloading",
                    checked,
                    key,
                    missing,
                    sorted(others),
                )
                todo[key] = etag
                extra_days[key] = {d for days in versions.values() for d in days}
    report.already_loaded = len(listed) - len(todo)
    log.info(
        "%s: %d object(s) listed, %d to load, %d already loaded", checked, len(listed), len(todo), report.already_loaded
    )
    if todo:
        with tempfile.TemporaryDirectory(dir=staging_dir(settings), prefix=f"landing-{checked}-") as tmp:
            sizes = {k: item.size for k, item in found.items()}
            for batch in _batches(sorted(todo.items()), sizes):
                _load_batch(settings, client, checked, batch, known, extra_days, load_id, Path(tmp), workers, report)
    for table in (checked, QUARANTINE_TABLE, MANIFEST_TABLE):
        opened = _open(settings, bronze_table_uri(settings, "landing", table))
        report.delta_versions[table] = None if opened is None else opened.version()
    report.seconds = time.perf_counter() - started
    return report


def _load_batch(
    settings: Settings,
    client: Any,
    kind: Kind,
    batch: Sequence[tuple[str, str]],
    known: dict[str, _Known],
    extra_days: dict[str, set[str]],
    load_id: str,
    directory: Path,
    workers: int,
    report: LandingLoad,
) -> None:
    with ThreadPoolExecutor(max_workers=min(workers, len(batch)), thread_name_prefix="landing") as pool:
        results = list(
            pool.map(lambda item: _stage_object(settings, client, kind, item[0], item[1], load_id, directory), batch)
        )
    staged = [s for s in results if s is not None]
    if not staged:
        return
    manifest = manifest_uri(settings)
    metadata = {"landing.kind": kind, "landing.load_id": load_id, "landing.objects": len(staged)}
    # 1. intent: the days these versions touch are on record before any data moves
    append_rows(settings, manifest, _manifest_rows(kind, staged, "staged", load_id), metadata)
    # 2. quarantine rows of these versions (replacing an interrupted attempt's)
    retried = {(s.key, s.etag) for s in staged if s.key in known and s.etag in known[s.key].attempted}
    bad_files = [f for s in staged for f in s.quarantine]
    if bad_files or retried:
        commit_files(
            settings,
            bronze_table_uri(settings, "landing", QUARANTINE_TABLE),
            _QUARANTINE_ROWS,
            None,
            bad_files,
            Replace(("object_key", "object_etag"), frozenset((s.key, s.etag) for s in staged)),
            metadata,
            directory,
        )
    # 3. data: new rows in, every earlier row of these keys out, in one commit
    earlier = {s.key for s in staged if s.key in known or s.key in extra_days}
    partitions: frozenset[str] | None = None
    if PARTITION_COLUMNS[kind]:
        partitions = frozenset(
            d
            for s in staged
            for d in s.days | (known[s.key].days if s.key in known else set()) | extra_days.get(s.key, set())
        )
    data_files = [f for s in staged for f in s.data]
    if data_files or earlier:
        commit_files(
            settings,
            bronze_table_uri(settings, "landing", kind),
            BRONZE_SCHEMAS[kind],
            PARTITION_COLUMNS[kind],
            data_files,
            Replace(("_object_key",), frozenset((k,) for k in earlier), partitions) if earlier else None,
            metadata,
            directory,
        )
    # 4. done: the `loaded` rows are the ledger
    append_rows(settings, manifest, _manifest_rows(kind, staged, "loaded", load_id), metadata)
    for s in staged:
        for item in (*s.data, *s.quarantine):
            item.path.unlink(missing_ok=True)
        replaced = s.key in known and bool(known[s.key].loaded.keys() - {s.etag})
        report.objects.append(
            ObjectLoad(
                s.key,
                s.etag,
                s.rows,
                s.quarantined,
                tuple(sorted(dt.date.fromisoformat(d) for d in s.days)),
                replaced,
                tuple(sorted(s.unknown_fields)),
                s.top_reason,
            )
        )
        if s.quarantined:
            log.warning("%s: %s has %d malformed line(s) quarantined", kind, s.key, s.quarantined)


__all__ = [
    "MANIFEST_SCHEMA",
    "MANIFEST_TABLE",
    "QUARANTINE_TABLE",
    "LandingLoad",
    "ObjectLoad",
    "bootstrap_manifest",
    "bronze_versions",
    "head_objects",
    "list_objects",
    "load_landing",
    "read_manifest",
]
