"""The lake's Delta tables: where they are and how they are kept healthy (compaction, vacuum).

`LAKE_TABLES` is the catalogue shared by Dagster (maintenance assets), `lakehouse query` and the
docs: the layout follows docs/architecture.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError

from lakehouse.aws import s3_client
from lakehouse.settings import OLTP_TABLES, Settings

_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")


@dataclass(frozen=True)
class LakeTable:
    """One Delta table of the lake, e.g. ("bronze", "cdc", "orders") or ("silver", "orders")."""

    path: tuple[str, ...]
    writer: str  # which ingestion writes it: "cdc", "dlt_dynamodb", "dlt_landing", "dlt_marketing"

    def uri(self, settings: Settings) -> str:
        return settings.lake_uri(*self.path)

    @property
    def name(self) -> str:
        return "/".join(self.path)

    @property
    def is_silver_state(self) -> bool:
        """A CDC current-state table (it holds tombstones)."""
        return self.path[0] == "silver" and not self.path[-1].endswith("_history")


def _catalogue() -> tuple[LakeTable, ...]:
    tables: list[LakeTable] = []
    for table in OLTP_TABLES:
        tables += [
            LakeTable(("bronze", "cdc", table), "cdc"),
            LakeTable(("silver", table), "cdc"),
            LakeTable(("silver", f"{table}_history"), "cdc"),
        ]
    tables.append(LakeTable(("bronze", "cdc", "_dead_letters"), "cdc"))
    tables += [LakeTable(("bronze", "dynamodb", t), "dlt_dynamodb") for t in ("carts", "sessions", "reviews")]
    tables += [
        LakeTable(("bronze", "landing", t), "dlt_landing")
        for t in ("clickstream", "partner_feeds", "_quarantine", "_objects")
    ]
    tables += [LakeTable(("bronze", "marketing", t), "dlt_marketing") for t in ("campaigns", "ad_spend")]
    return tuple(tables)


LAKE_TABLES: tuple[LakeTable, ...] = _catalogue()


def open_table(settings: Settings, uri: str) -> DeltaTable | None:
    try:
        return DeltaTable(uri, storage_options=settings.delta_storage_options)
    except TableNotFoundError:
        return None


def discover(settings: Settings) -> dict[str, str]:
    """Every Delta table in the lake bucket: `<layer>/<...>` path → URI (found by `_delta_log/`)."""
    client = s3_client(settings)
    prefixes: set[str] = set()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=settings.lake_bucket):
        for obj in page.get("Contents", []):
            if "/_delta_log/" in obj["Key"]:
                prefixes.add(obj["Key"].split("/_delta_log/")[0])
    return {
        prefix: f"s3://{settings.lake_bucket}/{prefix}"
        for prefix in sorted(prefixes)
        if all(_NAME.match(part) for part in prefix.split("/"))
    }


def purge_tombstones(settings: Settings, uri: str, older_than_hours: int) -> dict[str, Any]:
    """Delete silver tombstones (`_cdc_deleted`) older than the retention.

    A tombstone keeps a deleted key from being resurrected by a late, older change; after the
    retention such a change is not expected any more (Debezium never reorders one key's changes).
    """
    table = open_table(settings, uri)
    if table is None:
        return {"skipped": "table does not exist yet"}
    if "_cdc_deleted" not in pa.schema(table.schema().to_arrow()).names:
        return {"skipped": "not a CDC silver table"}
    cutoff = (datetime.now(UTC) - timedelta(hours=older_than_hours)).strftime("%Y-%m-%dT%H:%M:%S.%f")
    metrics = table.delete(f"_cdc_deleted and _cdc_updated_at < '{cutoff}'")
    return {"tombstones_deleted": int(metrics.get("num_deleted_rows", 0)), "older_than_hours": older_than_hours}


def compact(settings: Settings, uri: str, target_size: int | None = None) -> dict[str, Any]:
    """Rewrite small files into larger ones (`OPTIMIZE`); a no-op on a compact table."""
    table = open_table(settings, uri)
    if table is None:
        return {"skipped": "table does not exist yet"}
    metrics = table.optimize.compact(target_size=target_size)
    return {
        "files_added": int(metrics.get("numFilesAdded", 0)),
        "files_removed": int(metrics.get("numFilesRemoved", 0)),
        "version": table.version(),
    }


def vacuum(settings: Settings, uri: str, retention_hours: int) -> dict[str, Any]:
    """Delete files no longer referenced and older than the retention (time travel stays possible
    within it)."""
    table = open_table(settings, uri)
    if table is None:
        return {"skipped": "table does not exist yet"}
    deleted = table.vacuum(retention_hours=retention_hours, dry_run=False, enforce_retention_duration=False)
    return {"files_deleted": len(deleted), "retention_hours": retention_hours, "version": table.version()}
