"""Silver MERGE on a partitioned table: pruning must never hide the stored row of a key (that
inserts the key a second time). Crafted envelopes decoded by the sink's own `decode`, applied to
local Delta tables with the sink's `Applier`."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
from deltalake import DeltaTable

from ingestion.cdc.apply import PARTITION_COLUMN, Applier, TableShape
from ingestion.cdc.config import PartitionSpec
from ingestion.cdc.decode import Message, decode
from ingestion.cdc.lake import DeltaStore

TOPIC = "ecom.shop.orders"


def _order(order_id: int, month: str, status: str = "new") -> dict:
    return {"order_id": order_id, "status": status, "ordered_at": f"{month}-15T10:00:00.000000Z"}


class Orders:
    """Batches of crafted changes to shop.orders, applied to a silver table partitioned by month."""

    def __init__(self, tmp_path: Path) -> None:
        self.uri = str(tmp_path / "silver_orders")
        self.applier = Applier(DeltaStore({}))
        self.offset = 0
        self.row_type: pa.StructType | None = None

    def apply(self, *changes: tuple[str, dict | None, dict | None, int]) -> dict[str, int]:
        messages = []
        for op, before, after, lsn in changes:
            key = json.dumps({"order_id": (after or before or {})["order_id"]}).encode()
            source = {"schema": "shop", "table": "orders", "lsn": lsn, "txId": lsn, "ts_ms": 1_795_456_446_000 + lsn}
            value = json.dumps({"before": before, "after": after, "source": source, "op": op}).encode()
            messages.append(Message(TOPIC, 0, self.offset, key, value))
            self.offset += 1
        decoded = decode(messages, "shop", "orders", self.row_type)
        assert not decoded.dead_letters, decoded.dead_letters
        self.row_type = decoded.row_type
        shape = TableShape("orders", decoded.row_type, ["order_id"], PartitionSpec("ordered_at", "month"))
        return self.applier.apply_silver(self.uri, shape, decoded.rows, {"cdc:orders:0": self.offset - 1})

    def rows(self) -> list[tuple]:
        data = DeltaTable(self.uri).to_pyarrow_table()
        return sorted(
            zip(
                *(data.column(c).to_pylist() for c in ("order_id", "_cdc_lsn", "_cdc_deleted", PARTITION_COLUMN)),
                strict=True,
            )
        )


def test_reinsert_into_another_partition_updates_the_stored_row(tmp_path: Path) -> None:
    orders = Orders(tmp_path)
    orders.apply(("c", None, _order(1, "2026-01"), 10), ("c", None, _order(2, "2026-01"), 11))
    orders.apply(("d", _order(1, "2026-01"), None, 20))
    # the key comes back with another partition value: the tombstone lives in 2026-01
    result = orders.apply(("c", None, _order(1, "2026-03"), 30))
    assert result == {"inserted": 0, "updated": 1}
    assert orders.rows() == [(1, 30, False, "2026-03"), (2, 11, False, "2026-01")]


def test_redelivered_older_change_from_another_partition_changes_nothing(tmp_path: Path) -> None:
    orders = Orders(tmp_path)
    orders.apply(("c", None, _order(1, "2026-01"), 10))
    orders.apply(("u", _order(1, "2026-01"), _order(1, "2026-03", "paid"), 20))
    assert orders.rows() == [(1, 20, False, "2026-03")]
    # the first change again (at-least-once delivery): its images only name 2026-01
    result = orders.apply(("c", None, _order(1, "2026-01"), 10))
    assert result == {"inserted": 0, "updated": 0}
    assert orders.rows() == [(1, 20, False, "2026-03")]
