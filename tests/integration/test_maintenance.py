"""Delta maintenance on the S3 emulator: tombstone purge, compaction, vacuum."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pyarrow as pa
from deltalake import DeltaTable, write_deltalake

from lakehouse.lake import compact, purge_tombstones, vacuum
from lakehouse.settings import Settings


def _silver(settings: Settings) -> str:
    uri = settings.lake_uri("silver", "orders")
    now = datetime.now(UTC)
    rows = [
        (1, False, now - timedelta(days=30)),  # live, old: stays
        (2, True, now - timedelta(days=30)),  # old tombstone: purged
        (3, True, now - timedelta(hours=1)),  # fresh tombstone: stays
    ]
    for order_id, deleted, updated in rows:  # one commit per row: three small files
        write_deltalake(
            uri,
            pa.table(
                {
                    "order_id": pa.array([order_id], pa.int64()),
                    "_cdc_deleted": [deleted],
                    "_cdc_updated_at": pa.array([updated], pa.timestamp("us", tz="UTC")),
                }
            ),
            mode="append",
            storage_options=settings.delta_storage_options,
        )
    return uri


def test_purge_compact_and_vacuum(isolated_settings: Callable[[], Settings]) -> None:
    settings = isolated_settings()
    uri = _silver(settings)
    assert purge_tombstones(settings, uri, older_than_hours=24) == {"tombstones_deleted": 1, "older_than_hours": 24}
    table = DeltaTable(uri, storage_options=settings.delta_storage_options)
    assert sorted(table.to_pyarrow_table().column("order_id").to_pylist()) == [1, 3]

    files_before = len(table.file_uris())
    result = compact(settings, uri)
    assert result["files_removed"] >= 2 and result["files_added"] == 1
    table.update_incremental()
    assert len(table.file_uris()) == 1 < files_before
    assert sorted(table.to_pyarrow_table().column("order_id").to_pylist()) == [1, 3]

    assert vacuum(settings, uri, retention_hours=0)["files_deleted"] >= files_before
    table = DeltaTable(uri, storage_options=settings.delta_storage_options)
    assert sorted(table.to_pyarrow_table().column("order_id").to_pylist()) == [1, 3]


def test_maintenance_of_missing_tables_is_a_clear_no_op(isolated_settings: Callable[[], Settings]) -> None:
    settings = isolated_settings()
    uri = settings.lake_uri("silver", "nothing_here")
    for result in (purge_tombstones(settings, uri, 1), compact(settings, uri), vacuum(settings, uri, 1)):
        assert result == {"skipped": "table does not exist yet"}
