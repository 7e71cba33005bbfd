"""From changelog rows to silver (current state) and history (SCD type 2).

Both are computed with DuckDB over the Arrow batch (window functions say it best) and applied
with a Delta MERGE whose commit also records, per topic partition, the last offset applied —
so a crash between bronze and silver is repaired from bronze, never from Kafka twice.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from deltalake import DeltaTable

from ingestion.cdc.config import PartitionSpec
from ingestion.cdc.decode import UNAVAILABLE
from ingestion.cdc.lake import DeltaStore
from ingestion.cdc.schema import conform_table, widened_columns

CDC_COLUMNS: list[pa.Field] = [
    pa.field("_cdc_lsn", pa.int64()),
    pa.field("_cdc_op", pa.string()),
    pa.field("_cdc_source_ts", pa.timestamp("us", tz="UTC")),
    pa.field("_cdc_deleted", pa.bool_()),
    pa.field("_cdc_updated_at", pa.timestamp("us", tz="UTC")),
]
HISTORY_COLUMNS: list[pa.Field] = [
    pa.field("_cdc_lsn", pa.int64()),
    pa.field("_cdc_op", pa.string()),
    pa.field("valid_from", pa.timestamp("us", tz="UTC")),
    pa.field("valid_to", pa.timestamp("us", tz="UTC")),
    pa.field("is_current", pa.bool_()),
]
PARTITION_COLUMN = "_cdc_partition"
_NULL = "\x01__null__"


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

    def resolved(self, name: str, type_: pa.DataType) -> str:
        """Column value of a change: the before-image for deletes; for an unchanged TOAST
        placeholder the before-image value (REPLICA IDENTITY FULL carries it) when present."""
        col = _q(name)
        if pa.types.is_string(type_) or pa.types.is_large_string(type_):
            return (
                f"case when op = 'd' then before.{col} "
                f"when after.{col} = {_lit(UNAVAILABLE)} and before.{col} is not null "
                f"and before.{col} <> {_lit(UNAVAILABLE)} then before.{col} else after.{col} end"
            )
        return f"case when op = 'd' then before.{col} else after.{col} end"

    def key_exprs(self) -> str:
        return ", ".join(f"coalesce(after.{_q(k)}, before.{_q(k)})" for k in self.key_columns)


def _columns_with_placeholders(changes: pa.Table) -> set[str]:
    """String columns whose `after` image carries an unchanged-TOAST placeholder in this batch."""
    after = changes.column("after").combine_chunks()
    found = set()
    for index, field in enumerate(after.type):
        if pa.types.is_string(field.type) and pc.any(pc.equal(after.field(index), UNAVAILABLE)).as_py():
            found.add(field.name)
    return found


class Applier:
    """Applies batches of changelog rows of one table to silver and history."""

    def __init__(self, store: DeltaStore) -> None:
        self.store = store
        self._local = threading.local()

    def _query(self, sql: str, **tables: pa.Table) -> pa.Table:
        """Run `sql` over Arrow tables (one DuckDB connection per thread: tables apply in parallel)."""
        con = getattr(self._local, "con", None)
        if con is None:
            con = self._local.con = duckdb.connect(config={"threads": 1})  # parallel across tables already
        try:
            for name, table in tables.items():
                con.register(name, table)
            return con.sql(sql).to_arrow_table()
        finally:
            for name in tables:
                con.unregister(name)

    # ---------------------------------------------------------------- silver
    def silver_rows(self, shape: TableShape, changes: pa.Table) -> pa.Table:
        """Latest change per key (by LSN, then Kafka position), in silver's shape.

        An unchanged-TOAST placeholder in the latest change takes the value of an earlier change of
        the same key in this batch; if none carried one, the placeholder stays and the MERGE keeps
        the stored value.
        """
        columns = []
        with_placeholders = _columns_with_placeholders(changes)
        for f in shape.columns:
            value = shape.resolved(f.name, f.type)
            if f.name in with_placeholders:
                known = (
                    f"last_value(case when ({value}) = {_lit(UNAVAILABLE)} then null "
                    f"else coalesce({value}, {_lit(_NULL)}) end ignore nulls) over in_batch"
                )
                value = f"case when ({known}) is null then {_lit(UNAVAILABLE)} else nullif({known}, {_lit(_NULL)}) end"
            columns.append(f"{value} as {_q(f.name)}")
        cols = ",\n  ".join(columns)
        partition = ""
        if shape.partition:
            source = _q(shape.partition.column)
            image = f"case when op = 'd' then before.{source} else after.{source} end"
            partition = f",\n  substr(cast({image} as varchar), 1, {shape.partition.width}) as {PARTITION_COLUMN}"
        now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
        order = "lsn, kafka_partition, kafka_offset"
        sql = f"""
select
  {cols},
  lsn as _cdc_lsn, op as _cdc_op, source_ts as _cdc_source_ts, op = 'd' as _cdc_deleted,
  timestamptz '{now}+00' as _cdc_updated_at{partition}
from changes
window in_batch as (
  partition by {shape.key_exprs()} order by {order} rows between unbounded preceding and current row)
qualify row_number() over (
  partition by {shape.key_exprs()} order by lsn desc, kafka_partition desc, kafka_offset desc) = 1
"""
        return conform_table(self._query(sql, changes=changes), shape.silver_schema())

    def apply_silver(
        self,
        uri: str,
        shape: TableShape,
        changes: pa.Table,
        txns: Mapping[str, int],
        table: DeltaTable | Literal["open"] | None = "open",
    ) -> dict[str, int]:
        """MERGE the batch into silver (`table`: the target as the caller just opened it)."""
        rows = self.silver_rows(shape, changes)
        if table == "open":
            table = self.store.open(uri)
        if table is None:
            partition_by = [PARTITION_COLUMN] if shape.partition else None
            self.store.append(uri, None, rows, txns, partition_by=partition_by, operation="silver-create")
            return {"inserted": rows.num_rows, "updated": 0}
        table = self._evolve(table, shape.silver_schema(), txns)
        predicate = " and ".join(f"t.{_q(k)} = s.{_q(k)}" for k in shape.key_columns)
        pruning = self._partition_filter(shape, changes, table)
        if pruning:
            predicate += f" and t.{PARTITION_COLUMN} in ({pruning})"
        existing = set(pa.schema(table.schema().to_arrow()).names)
        updates = {}
        for f in rows.schema:
            name = _q(f.name)
            if f.name not in existing:  # a new column: nothing stored to keep
                updates[name] = f"s.{name}"
            elif f.name == PARTITION_COLUMN:
                updates[name] = f"coalesce(s.{name}, t.{name})"
            elif pa.types.is_string(f.type) and not f.name.startswith("_cdc_"):
                updates[name] = f"case when s.{name} = {_lit(UNAVAILABLE)} then t.{name} else s.{name} end"
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
            images = [b] if o == "d" else ([a, b] if o == "u" else [a])
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
        if table == "open":
            table = self.store.open(uri)
        if table is not None:
            table = self._evolve(table, shape.history_schema(), txns)
        existing = self._existing_history(table, shape, changes)
        rows = self.history_rows(shape, changes, existing)
        if table is None:
            self.store.append(uri, None, rows, txns, operation="history-create")
            return {"versions": rows.num_rows}
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
        return {"versions": int(metrics.get("num_target_rows_inserted", 0))}

    def _existing_history(self, table: DeltaTable | None, shape: TableShape, changes: pa.Table) -> pa.Table:
        schema = shape.history_schema()
        if table is None:
            return schema.empty_table()
        return conform_table(_rows_of_batch_keys(table, shape, changes), schema)

    def history_rows(self, shape: TableShape, changes: pa.Table, existing: pa.Table) -> pa.Table:
        """Version chain of every key in the batch: existing versions + new ones, re-linked."""
        keys = [_q(k) for k in shape.key_columns]
        key_list = ", ".join(keys)
        new_cols = ",\n    ".join(f"{shape.resolved(f.name, f.type)} as {_q(f.name)}" for f in shape.columns)
        filled = []
        with_placeholders = _columns_with_placeholders(changes)
        for f in shape.columns:
            col = _q(f.name)
            if f.name in with_placeholders:
                # an unresolved TOAST placeholder inherits the previous version's value
                filled.append(
                    f"nullif(last_value(case when {col} = {_lit(UNAVAILABLE)} then null "
                    f"else coalesce({col}, {_lit(_NULL)}) end ignore nulls) over w_fill, {_lit(_NULL)}) as {col}"
                )
            else:
                filled.append(col)
        sql = f"""
with new_versions as (
  select
    {new_cols},
    lsn as _cdc_lsn, op as _cdc_op, source_ts as valid_from
  from changes
  qualify row_number() over (partition by {shape.key_exprs()}, lsn order by kafka_offset desc) = 1
),
combined as (
  select * exclude (valid_to, is_current) from existing
  union all by name
  select n.* from new_versions n anti join existing e using ({key_list}, _cdc_lsn)
),
filled as (
  select {", ".join(filled)}, _cdc_lsn, _cdc_op, valid_from
  from combined
  window w_fill as (partition by {key_list} order by _cdc_lsn rows between unbounded preceding and current row)
)
select *,
  lead(valid_from) over w as valid_to,
  lead(_cdc_lsn) over w is null and _cdc_op <> 'd' as is_current
from filled
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
