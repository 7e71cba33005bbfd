"""dlt plumbing shared by every bronze source: destination, pipelines, cursors, run summaries.

Everything is derived from a `Settings` instance and passed to dlt explicitly: no `secrets.toml`,
no `DESTINATION__*` variables. Building a pipeline touches only the local working directory (never
the network), so Dagster can construct pipelines and sources at import time.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import dlt
from deltalake import DeltaTable
from dlt.common.configuration.specs import AwsCredentials
from dlt.common.pipeline import LoadInfo

from lakehouse.locks import exclusive
from lakehouse.settings import Settings

Dataset = Literal["dynamodb", "landing", "marketing"]
#: dataset (= source group) -> bronze tables written there (docs/architecture.md)
BRONZE_TABLES: Final[dict[str, tuple[str, ...]]] = {
    "dynamodb": ("carts", "sessions", "reviews"),
    # written by the landing loader (`landing.py`), not by a dlt pipeline
    "landing": ("clickstream", "partner_feeds", "_quarantine", "_objects"),
    "marketing": ("campaigns", "ad_spend"),
}
#: One pipeline (= one dlt working dir and state) per source, so parallel runs never share state.
PIPELINES: Final[dict[str, Dataset]] = {
    "bronze_dynamodb": "dynamodb",
    "bronze_marketing": "marketing",
}
_PIPELINE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
#: Lower bound of every ISO-8601 cursor (canonical form, see `iso_max`).
EPOCH_ISO: Final = "1970-01-01T00:00:00.000000Z"


# ------------------------------------------------------------------------------ destination
def destination(settings: Settings) -> Any:
    """dlt `filesystem` destination rooted at `s3://<lake>/bronze` (tables: `<dataset>/<table>`).

    Locally the emulator endpoint and static keys come from `settings`; in AWS (no keys, no endpoint)
    the credentials stay empty and dlt falls back to the default AWS credential chain.
    """
    values: dict[str, Any] = {
        "aws_access_key_id": settings.aws_access_key_id,
        "aws_secret_access_key": (
            settings.aws_secret_access_key.get_secret_value() if settings.aws_secret_access_key else None
        ),
        "region_name": settings.aws_region,
        "endpoint_url": settings.s3_endpoint,
    }
    credentials = AwsCredentials(**{k: v for k, v in values.items() if v is not None})
    return dlt.destinations.filesystem(bucket_url=settings.lake_uri("bronze"), credentials=credentials)


def make_pipeline(settings: Settings, name: str, dataset: Dataset | None = None) -> dlt.Pipeline:
    """A dlt pipeline writing Delta tables to `s3://<lake>/bronze/<dataset>/`.

    `name` must be one of `PIPELINES` unless `dataset` is given (benchmarks and tests use their own
    names). The working dir lives under `settings.state_path / "dlt"` and telemetry is off.
    """
    if not _PIPELINE_NAME.match(name):
        raise ValueError(f"invalid pipeline name {name!r}: lowercase letters, digits and '_'")
    if dataset is None:
        if name not in PIPELINES:
            raise ValueError(f"unknown pipeline {name!r}; known: {', '.join(PIPELINES)} (or pass dataset)")
        dataset = PIPELINES[name]
    if dataset not in BRONZE_TABLES:
        raise ValueError(f"unknown dataset {dataset!r}; known: {', '.join(BRONZE_TABLES)}")
    disable_telemetry()
    pipelines_dir = settings.state_path / "dlt"
    pipelines_dir.mkdir(parents=True, exist_ok=True)
    # dlt wipes and recreates a working dir without state: one process at a time (lakehouse.locks)
    with exclusive(pipelines_dir / f".{name}.lock"):
        return dlt.pipeline(
            pipeline_name=name,
            pipelines_dir=str(pipelines_dir),
            destination=destination(settings),
            dataset_name=dataset,
        )


def disable_telemetry() -> None:
    """dlt sends anonymous usage events by default; a lakehouse pipeline must not phone home.

    Set through dlt's in-memory config provider (process wide, nothing written to disk).
    """
    dlt.config["runtime.dlthub_telemetry"] = False
    # Arrow items skip dlt's row normalizer, which would add the load id: ask for it explicitly, so
    # every bronze row says which load wrote it (dbt staging carries it as `dlt_load_id`)
    dlt.config["normalize.parquet_normalizer.add_dlt_load_id"] = True


# ------------------------------------------------------------------------------ schema contract
#: The dlt schema contract of the DynamoDB and marketing sources, declared rather than implied:
#: - tables evolve: each resource creates its own table on the first run (`freeze` would refuse
#:   that) and `max_table_nesting=0` keeps nested data in JSON columns, so no other table appears;
#: - columns evolve: DynamoDB items are schemaless and the API may add fields; a new attribute is
#:   loaded as a new column (nothing dropped) and shows in the schema;
#: - data_type evolve: a value of another type goes to a variant column `<column>__v_<type>`
#:   instead of failing the load: with `freeze` dlt fails in normalize and leaves the package
#:   pending, so every later run of the pipeline fails until someone aborts it by hand, and one bad
#:   item would block all the others. Variant columns are never read by staging, so the asset
#:   check `variant_columns` fails loudly (threshold `bronze_max_variant_rows`) naming the keys.
SCHEMA_CONTRACT: Final[dict[str, Any]] = {"tables": "evolve", "columns": "evolve", "data_type": "evolve"}


# ------------------------------------------------------------------------------ cursors
def parse_iso(value: Any) -> dt.datetime:
    """An ISO-8601 timestamp (str or datetime) as an aware UTC datetime; naive values are UTC."""
    if isinstance(value, dt.datetime):
        parsed = value
    elif isinstance(value, str):
        parsed = dt.datetime.fromisoformat(value)
    else:
        raise TypeError(f"not an ISO-8601 timestamp: {value!r}")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC)


def canonical_iso(value: Any) -> str:
    """Fixed-width `YYYY-MM-DDTHH:MM:SS.ffffffZ`: the only form in which strings sort like times."""
    return parse_iso(value).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def iso_max(values: Sequence[Any]) -> str:
    """`last_value_func` for ISO-8601 cursors: the latest value, in canonical form.

    dlt's default `max` compares strings, and `...T10:00:00.5Z` sorts before `...T10:00:00Z`, so a
    source mixing precisions would move the cursor backwards or drop newer rows. Returning the
    canonical form also makes dlt's boundary de-duplication compare like with like.
    """
    return canonical_iso(max(parse_iso(v) for v in values))


#: An incremental cursor never moves past the start of the read minus this margin. A read is not a
#: snapshot and `updated_at` is not a commit time: a row written while a scan runs, or committed by
#: a long transaction whose `now()` is its start, can carry a stamp older than rows already read;
#: writers' clocks differ a little too. Re-reading the margin is harmless (merged on the key, and
#: unchanged rows are skipped through `UpdatedAtCursor.seen`).
CURSOR_SAFETY: Final = dt.timedelta(minutes=5)


@dataclass(frozen=True)
class UpdatedAtCursor:
    """Incremental position on an `updated_at` column, kept in dlt's resource state.

    `since`: rows with `updated_at >= since` are read (canonical ISO-8601, None: everything).
    `seen`: key -> `updated_at` of loaded rows at or after `since`; the next read returns them
    again and skips those that did not change, so a rerun without changes loads nothing.

    dlt's own `Incremental` cannot do this: its `lag` only works with the built-in `max`, and with
    a custom last-value function (`iso_max`) it moves the cursor forward instead of back.
    """

    since: str | None = None
    seen: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_state(cls, state: Any) -> UpdatedAtCursor:
        if not state:
            return cls()
        return cls(state.get("since"), dict(state.get("seen") or {}))

    def to_state(self) -> dict[str, Any]:
        return {"since": self.since, "seen": dict(sorted(self.seen.items()))}

    def wants(self, key: str, stamp: str) -> bool:
        """Whether a row read now must be loaded: at or after the cursor and not loaded as is."""
        return (self.since is None or stamp >= self.since) and self.seen.get(key) != stamp

    def advance(
        self, returned: dict[str, str], read_started: dt.datetime, safety: dt.timedelta = CURSOR_SAFETY
    ) -> UpdatedAtCursor:
        """The cursor after a read that returned `returned` (key -> canonical `updated_at`).

        It moves to the newest `updated_at` seen, but never past `read_started - safety`: a row
        stamped earlier but committed after the read is read by the next run.
        """
        if not returned:
            return self
        ceiling = canonical_iso(read_started - safety)
        since = min(max(returned.values()), ceiling)
        if self.since is not None:
            since = max(since, self.since)  # never backwards: what is below was read already
        seen = {key: stamp for key, stamp in {**self.seen, **returned}.items() if stamp >= since}
        return UpdatedAtCursor(since, seen)

    def forget(self, keys: Iterable[str]) -> UpdatedAtCursor:
        """The cursor without `keys` in `seen` (deleted rows: a re-created one must load again)."""
        gone = set(keys)
        return UpdatedAtCursor(self.since, {k: v for k, v in self.seen.items() if k not in gone})


# ------------------------------------------------------------------------------ run summary
@dataclass(frozen=True)
class TableLoad:
    """What one run did to one bronze table (for Dagster metadata)."""

    table: str
    uri: str
    rows: int
    delta_version: int | None


def bronze_table_uri(settings: Settings, dataset: str, table: str) -> str:
    if dataset not in BRONZE_TABLES or table not in BRONZE_TABLES[dataset]:
        raise ValueError(f"unknown bronze table {dataset}/{table}")
    return settings.lake_uri("bronze", dataset, table)


def delta_version(settings: Settings, uri: str) -> int | None:
    """Current version of the Delta table at `uri`, or None when it does not exist yet."""
    options = settings.delta_storage_options
    if not DeltaTable.is_deltatable(uri, storage_options=options):
        return None
    return int(DeltaTable(uri, storage_options=options).version())


def rows_by_table(pipeline: dlt.Pipeline) -> dict[str, int]:
    """Rows normalized per table in the pipeline's last run (dlt's own tables left out)."""
    trace = pipeline.last_trace
    info = trace.last_normalize_info if trace is not None else None
    counts = dict(info.row_counts) if info is not None else {}
    return {table: int(n) for table, n in counts.items() if not table.startswith("_dlt")}


def load_summary(
    settings: Settings, pipeline: dlt.Pipeline, tables: Iterable[str] | None = None
) -> dict[str, TableLoad]:
    """Rows loaded and resulting Delta version per bronze table of `pipeline`'s dataset.

    `tables` defaults to every bronze table of the dataset; tables without rows in this run are
    reported with rows=0 (and their current version, None if they do not exist yet).
    """
    dataset = pipeline.dataset_name
    rows = rows_by_table(pipeline)
    wanted = list(tables) if tables is not None else list(BRONZE_TABLES[dataset])
    summary: dict[str, TableLoad] = {}
    for table in wanted:
        uri = bronze_table_uri(settings, dataset, table)
        summary[table] = TableLoad(table, uri, rows.get(table, 0), delta_version(settings, uri))
    return summary


def raise_on_failed(info: LoadInfo) -> LoadInfo:
    """dlt reports failed jobs in `LoadInfo`; make them an exception so a run never half-succeeds."""
    info.raise_on_failed_jobs()
    return info
