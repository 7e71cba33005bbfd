"""From changelog rows to silver (current state) and history (SCD type 2).

Both are computed with DuckDB over the Arrow batch (window functions say it best) and applied
with a Delta MERGE whose commit also records, per topic partition, the last offset applied —
so a crash between bronze and silver is repaired from bronze, never from Kafka twice.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from deltalake import DeltaTable

from ingestion.cdc.config import PartitionSpec
from ingestion.cdc.lake import DeltaStore
from ingestion.cdc.resolve import (
    UNAVAILABLE_COLUMN,
    UNAVAILABLE_TYPE,
    Resolved,
    StoredRows,
    Truncation,
    resolve,
    with_unavailable,
)
from ingestion.cdc.schema import conform_table, widened_columns

CDC_COLUMNS: list[pa.Field] = [
    pa.field("_cdc_lsn", pa.int64()),
    pa.field("_cdc_op", pa.string()),
    pa.field("_cdc_source_ts", pa.timestamp("us", tz="UTC")),
    pa.field("_cdc_deleted", pa.bool_()),
    pa.field("_cdc_updated_at", pa.timestamp("us", tz="UTC")),
    #: columns whose value is unknown (Debezium sent none and no earlier state had it): null in the row
    pa.field("_cdc_unavailable", UNAVAILABLE_TYPE),
]
HISTORY_COLUMNS: list[pa.Field] = [
    pa.field("_cdc_lsn", pa.int64()),
    pa.field("_cdc_op", pa.string()),
    pa.field("valid_from", pa.timestamp("us", tz="UTC")),
    pa.field("valid_to", pa.timestamp("us", tz="UTC")),
    pa.field("is_current", pa.bool_()),
    pa.field("_cdc_unavailable", UNAVAILABLE_TYPE),
]
PARTITION_COLUMN = "_cdc_partition"
#: Delta `txn` ids of a silver/history table recording the newest TRUNCATE applied to it (LSN and
#: source time in microseconds): a change older than it that arrives later is truncated too.
TRUNCATED_LSN_APP_ID = "lakehouse.cdc.truncated.lsn"
TRUNCATED_TS_APP_ID = "lakehouse.cdc.truncated.ts_us"


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


@dataclass(frozen=True)
class TableShape:
    """What the apply steps need to know about one captured table."""

    name: str
    row_type: pa.StructType
    key_columns: list[str]
    partition: PartitionSpec | None = None

    @property
    def columns(self) -> list[pa.Field]:
        return list(self.row_type)

    def silver_schema(self) -> pa.Schema:
        fields = [*self.columns, *CDC_COLUMNS]
        if self.partition:
            fields.append(pa.field(PARTITION_COLUMN, pa.string()))
        return pa.schema(fields)

    def history_schema(self) -> pa.Schema:
        return pa.schema([*self.columns, *HISTORY_COLUMNS])

    def resolved(self, name: str) -> str:
        """Column value of a resolved change (`resolve.py`): the before-image for deletes."""
        col = _q(name)
        return f"case when op in ('d', 't') then before.{col} else after.{col} end"

    def key_exprs(self) -> str:
        return ", ".join(f"coalesce(after.{_q(k)}, before.{_q(k)})" for k in self.key_columns)


class Applier:
    """Applies batches of changelog rows of one table to silver and history."""

    def __init__(self, store: DeltaStore) -> None:
        self.store = store
        self._idle: list[duckdb.DuckDBPyConnection] = []  # connections no thread is using
        self._idle_lock = threading.Lock()

    def close(self) -> None:
        """Close the DuckDB connections, from the thread that ends the sink.

        A connection left to interpreter teardown is destroyed while CPython finalizes, which can
        abort the process (duckdb/duckdb#13904).
        """
        with self._idle_lock:
            idle, self._idle = self._idle, []
        for con in idle:
            con.close()

    def __enter__(self) -> Applier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A DuckDB connection for one query: tables apply in parallel, one connection per thread."""
        with self._idle_lock:
            con = self._idle.pop() if self._idle else None
        if con is None:
            con = duckdb.connect(config={"threads": 1})  # parallel across tables already
        try:
            yield con
        finally:
            with self._idle_lock:
                self._idle.append(con)

    def _query(self, sql: str, **tables: pa.Table) -> pa.Table:
        """Run `sql` over Arrow tables."""
        with self._connection() as con:
            return self._query_on(con, sql, tables)

    @staticmethod
    def _query_on(con: duckdb.DuckDBPyConnection, sql: str, tables: dict[str, pa.Table]) -> pa.Table:
        try:
            for name, table in tables.items():
                con.register(name, table)
            return con.sql(sql).to_arrow_table()
        finally:
            for name in tables:
                con.unregister(name)

    # ---------------------------------------------------------------- resolving
    def resolve(self, shape: TableShape, changes: pa.Table, table: DeltaTable | None, layer: Layer) -> Resolved:
        """Complete the batch's images against what `table` (silver or history) stores (`resolve.py`)."""
        truncated = _truncation(table)
        if table is None:
            return resolve(changes, shape.key_columns, truncated=truncated)
        return resolve(changes, shape.key_columns, _stored_rows(table, shape, layer), truncated)

    # ---------------------------------------------------------------- silver
    def silver_rows(self, shape: TableShape, changes: pa.Table) -> pa.Table:
        """Latest change per key (by LSN, then Kafka position), in silver's shape (`changes` resolved)."""
        changes = with_unavailable(changes)
        cols = ",\n  ".join(f"{shape.resolved(f.name)} as {_q(f.name)}" for f in shape.columns)
        partition = ""
        if shape.partition:
            image = shape.resolved(shape.partition.column)
            partition = f",\n  substr(cast({image} as varchar), 1, {shape.partition.width}) as {PARTITION_COLUMN}"
        now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
        sql = f"""
select
  {cols},
  lsn as _cdc_lsn, op as _cdc_op, source_ts as _cdc_source_ts, op in ('d', 't') as _cdc_deleted,
  timestamptz '{now}+00' as _cdc_updated_at, {UNAVAILABLE_COLUMN} as _cdc_unavailable{partition}
from changes
qualify row_number() over (
  partition by {shape.key_exprs()} order by lsn desc, kafka_partition desc, kafka_offset desc) = 1
"""
        return conform_table(self._query(sql, changes=changes), shape.silver_schema())

    def _prepare(
        self,
        uri: str,
        shape: TableShape,
        changes: pa.Table,
        txns: Mapping[str, int],
        table: DeltaTable | Literal["open"] | None,
        layer: Literal["silver", "history"],
    ) -> tuple[DeltaTable | None, pa.Table, dict[str, int], dict[str, int]]:
        """What silver and history do alike before applying: open and evolve the target, resolve
        the batch's missing values and TRUNCATEs; a batch left empty still commits its progress."""
        if table == "open":
            table = self.store.open(uri)
        schema = shape.silver_schema() if layer == "silver" else shape.history_schema()
        if table is not None:
            table = self._evolve(table, schema, txns)
        resolved = self.resolve(shape, changes, table, layer)
        txns = {**txns, **_truncation_txns(resolved.truncation, table)}
        outcome = {"unavailable": resolved.unknown_values} if resolved.unknown_values else {}
        if resolved.changes.num_rows == 0 and table is not None:
            self.store.append(
                uri, table, pa.schema(table.schema().to_arrow()).empty_table(), txns, operation="progress"
            )
        return table, resolved.changes, txns, outcome

    def apply_silver(
        self,
        uri: str,
        shape: TableShape,
        changes: pa.Table,
        txns: Mapping[str, int],
        table: DeltaTable | Literal["open"] | None = "open",
    ) -> dict[str, int]:
        """MERGE the batch into silver (`table`: the target as the caller just opened it)."""
        table, changes, txns, outcome = self._prepare(uri, shape, changes, txns, table, "silver")
        if changes.num_rows == 0:
            return outcome
        rows = self.silver_rows(shape, changes)
        if table is None:
            partition_by = [PARTITION_COLUMN] if shape.partition else None
            self.store.append(uri, None, rows, txns, partition_by=partition_by, operation="silver-create")
            return {**outcome, "inserted": rows.num_rows, "updated": 0}
        predicate = " and ".join(f"t.{_q(k)} = s.{_q(k)}" for k in shape.key_columns)
        pruning = self._partition_filter(shape, changes, table)
        if pruning:
            predicate += f" and t.{PARTITION_COLUMN} in ({pruning})"
        existing = set(pa.schema(table.schema().to_arrow()).names)
        updates = {}
        for f in rows.schema:
            name = _q(f.name)
            if f.name == PARTITION_COLUMN and f.name in existing:
                updates[name] = f"coalesce(s.{name}, t.{name})"
            else:
                updates[name] = f"s.{name}"
        metrics = (
            table.merge(
                rows,
                predicate,
                source_alias="s",
                target_alias="t",
                merge_schema=True,
                commit_properties=self.store.commit_properties(txns, operation="silver-merge"),
            )
            .when_matched_update(updates, predicate="s._cdc_lsn > t._cdc_lsn")
            .when_not_matched_insert({_q(f.name): f"s.{_q(f.name)}" for f in rows.schema})
            .execute()
        )
        return {
            **outcome,
            "inserted": int(metrics.get("num_target_rows_inserted", 0)),
            "updated": int(metrics.get("num_target_rows_updated", 0)),
        }

    def _partition_filter(self, shape: TableShape, changes: pa.Table, table: DeltaTable) -> str | None:
        """Partition values a batch can touch, or None if unknown (no pruning).

        The batch's images alone are not enough: the stored row of a key may sit in another
        partition (a redelivered older change, a delete and re-insert with another partition
        value), and a MERGE pruned away from it would insert the key a second time. So the
        partitions silver holds for the batch's keys are added (a key-filtered read of two
        columns, cheap thanks to the file statistics).
        """
        if not shape.partition:
            return None
        col = shape.partition.column
        values: set[str] = set()
        op = changes.column("op").to_pylist()
        after = changes.column("after").combine_chunks().field(col).to_pylist()
        before = changes.column("before").combine_chunks().field(col).to_pylist()
        for o, a, b in zip(op, after, before, strict=True):
            images = [b] if o in ("d", "t") else ([a, b] if o == "u" else [a])
            if any(v is None for v in images):
                return None  # e.g. a key-only before-image: cannot prune safely
            values.update(str(v)[: shape.partition.width] for v in images)
        if PARTITION_COLUMN not in pa.schema(table.schema().to_arrow()).names:
            return None
        stored = _rows_of_batch_keys(table, shape, changes, [shape.key_columns[0], PARTITION_COLUMN])
        partitions = stored.column(PARTITION_COLUMN)
        if partitions.null_count:
            return None  # a stored row without a partition value: only an unpruned MERGE finds it
        values.update(partitions.to_pylist())
        return ", ".join(_lit(v) for v in sorted(values))

    # ---------------------------------------------------------------- history
    def apply_history(
        self,
        uri: str,
        shape: TableShape,
        changes: pa.Table,
        txns: Mapping[str, int],
        table: DeltaTable | Literal["open"] | None = "open",
    ) -> dict[str, int]:
        """Add the batch's versions to history and re-link the chains of its keys."""
        table, changes, txns, outcome = self._prepare(uri, shape, changes, txns, table, "history")
        if changes.num_rows == 0:
            return {**outcome, "versions": 0}
        existing = self._existing_history(table, shape, changes)
        rows = self.history_rows(shape, changes, existing)
        if table is None:
            self.store.append(uri, None, rows, txns, operation="history-create")
            return {**outcome, "versions": rows.num_rows}
        keys = " and ".join(f"t.{_q(k)} = s.{_q(k)}" for k in shape.key_columns)
        metrics = (
            table.merge(
                rows,
                f"{keys} and t._cdc_lsn = s._cdc_lsn",
                source_alias="s",
                target_alias="t",
                merge_schema=True,
                commit_properties=self.store.commit_properties(txns, operation="history-merge"),
            )
            .when_matched_update(
                {"valid_to": "s.valid_to", "is_current": "s.is_current"},
                predicate="(t.valid_to is distinct from s.valid_to) or (t.is_current <> s.is_current)",
            )
            .when_not_matched_insert({_q(f.name): f"s.{_q(f.name)}" for f in rows.schema})
            .execute()
        )
        return {**outcome, "versions": int(metrics.get("num_target_rows_inserted", 0))}

    def _existing_history(self, table: DeltaTable | None, shape: TableShape, changes: pa.Table) -> pa.Table:
        schema = shape.history_schema()
        if table is None:
            return schema.empty_table()
        return conform_table(_rows_of_batch_keys(table, shape, changes), schema)

    def history_rows(self, shape: TableShape, changes: pa.Table, existing: pa.Table) -> pa.Table:
        """Version chain of every key in the batch: existing versions + new ones, re-linked
        (`changes` resolved)."""
        changes = with_unavailable(changes)
        key_list = ", ".join(_q(k) for k in shape.key_columns)
        new_cols = ",\n    ".join(f"{shape.resolved(f.name)} as {_q(f.name)}" for f in shape.columns)
        sql = f"""
with new_versions as (
  select
    {new_cols},
    lsn as _cdc_lsn, op as _cdc_op, source_ts as valid_from, {UNAVAILABLE_COLUMN} as _cdc_unavailable
  from changes
  qualify row_number() over (partition by {shape.key_exprs()}, lsn order by kafka_offset desc) = 1
),
combined as (
  select * exclude (valid_to, is_current) from existing
  union all by name
  select n.* from new_versions n anti join existing e using ({key_list}, _cdc_lsn)
)
select *,
  lead(valid_from) over w as valid_to,
  lead(_cdc_lsn) over w is null and _cdc_op not in ('d', 't') as is_current
from combined
window w as (partition by {key_list} order by _cdc_lsn)
"""
        return conform_table(self._query(sql, changes=changes, existing=existing), shape.history_schema())

    # ---------------------------------------------------------------- schema
    def _evolve(self, table: DeltaTable, schema: pa.Schema, txns: Mapping[str, int]) -> DeltaTable:
        """Rewrite the table first if a column widened; new columns are added by the MERGE."""
        current = pa.schema(table.schema().to_arrow())
        as_struct = pa.struct(list(current))
        target = pa.struct(list(schema))
        if widened_columns(as_struct, target):
            merged = pa.schema([*schema, *(f for f in current if f.name not in schema.names)])
            self.store.rewrite(table, merged, {})
            table.update_incremental()
        return table


Layer = Literal["silver", "history"]


def _truncation(table: DeltaTable | None) -> Truncation | None:
    if table is None:
        return None
    lsn = table.transaction_version(TRUNCATED_LSN_APP_ID)
    if lsn is None:
        return None
    return Truncation(lsn, table.transaction_version(TRUNCATED_TS_APP_ID) or 0)


def _truncation_txns(truncation: Truncation | None, table: DeltaTable | None) -> dict[str, int]:
    """The TRUNCATE watermark to record with this commit (only when it moved)."""
    if truncation is None or truncation == _truncation(table):
        return {}
    return {TRUNCATED_LSN_APP_ID: truncation.lsn, TRUNCATED_TS_APP_ID: truncation.ts_us}


def _stored_rows(table: DeltaTable, shape: TableShape, layer: Layer) -> StoredRows:
    """What silver or history stores, as `resolve.StoredRows` (a `deleted` column added)."""
    names = set(pa.schema(table.schema().to_arrow()).names)
    columns = [c for c in [*shape.row_type.names, "_cdc_lsn", "_cdc_unavailable"] if c in names]
    marker = "_cdc_deleted" if layer == "silver" else "_cdc_op"
    read = [*columns, marker] if layer == "silver" else [*columns, marker, "is_current"]
    first_key = shape.key_columns[0]

    def scan(column: str, values: object) -> pa.Table:
        dataset = table.to_pyarrow_dataset()
        wanted = pa.array(values, dataset.schema.field(column).type)
        data = dataset.to_table(columns=read, filter=pc.field(column).isin(wanted))
        flag = data.column(marker)
        deleted = flag if layer == "silver" else pc.is_in(flag, value_set=pa.array(["d", "t"]))
        return data.append_column("deleted", pc.fill_null(deleted, False))

    def of_keys(values: list[object]) -> pa.Table:
        return scan(first_key, values)

    def deleted_at(lsns: list[int]) -> pa.Table:
        found = scan("_cdc_lsn", lsns)
        return found.filter(found.column("deleted"))

    def truncation_candidates(lsn: int) -> pa.Table:
        dataset = table.to_pyarrow_dataset()
        if layer == "silver":
            live = dataset.to_table(columns=[first_key, "_cdc_deleted"])
            keys = pc.unique(live.filter(pc.invert(live.column("_cdc_deleted"))).column(first_key))
        else:  # history: whole chains of the keys live now or changed after the TRUNCATE
            recent = dataset.to_table(columns=[first_key, "_cdc_lsn", "is_current"])
            mask = pc.or_(recent.column("is_current"), pc.greater(recent.column("_cdc_lsn"), lsn))
            keys = pc.unique(recent.filter(pc.fill_null(mask, False)).column(first_key))
        return scan(first_key, keys) if len(keys) else scan(first_key, [])

    return StoredRows(of_keys, deleted_at, truncation_candidates)


def _rows_of_batch_keys(
    table: DeltaTable, shape: TableShape, changes: pa.Table, columns: list[str] | None = None
) -> pa.Table:
    """Stored rows whose first key column takes a value of the batch (a superset for composite keys)."""
    first_key = shape.key_columns[0]
    after = changes.column("after").combine_chunks().field(first_key)
    before = changes.column("before").combine_chunks().field(first_key)
    keys = pc.unique(pc.drop_null(pa.concat_arrays([after, before])))
    dataset: ds.Dataset = table.to_pyarrow_dataset()
    return dataset.to_table(columns=columns, filter=pc.field(first_key).isin(keys))
