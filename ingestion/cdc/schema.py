"""Schema evolution rules for CDC rows (Arrow struct types of Debezium's JSON values).

New columns are added; `null` becomes any type; int64 widens to float64. Anything else (say a
number column that starts carrying strings after `ALTER TYPE ... text`) is incompatible: the
table stops with `IncompatibleSchemaChange` and its messages stay in the stream.
"""

from __future__ import annotations

import re

import pyarrow as pa
import pyarrow.compute as pc

WIDENINGS: set[tuple[pa.DataType, pa.DataType]] = {(pa.int64(), pa.float64())}


class IncompatibleSchemaChange(Exception):
    """A column changed type in a way the lake cannot follow without losing data."""

    def __init__(self, table: str, column: str, old: object, new: object) -> None:
        self.table, self.column, self.old, self.new = table, column, old, new
        super().__init__(
            f"incompatible schema change in {table or 'table'}.{column}: {old} -> {new}. "
            "The table is stopped and its messages stay in the stream (nothing is lost within its retention); "
            "other tables keep flowing. Decide how to represent the column: set LAKEHOUSE_CDC_COLUMN_TYPES "
            f'(e.g. {{"{table or "<table>"}.{column}": "string"}}) and run '
            f"`lakehouse cdc rebuild {table or '<table>'}` to rebuild it from the topic."
        )

    @classmethod
    def within_batch(cls, table: str, detail: str) -> IncompatibleSchemaChange:
        """Values of one column disagree on their JSON type inside one batch (Arrow's reader says
        e.g. `Column(/after/reorder_level) changed from number to string`)."""
        found = re.search(r"Column\(/(?:after|before)/([^)/]+)\) changed from (\w+) to (\w+)", detail)
        if found:
            return cls(table, found.group(1), found.group(2), found.group(3))
        return cls(table, "<column>", "one JSON type", f"another ({detail.strip()})")


#: Type of a column seen only with null values so far (JSON null says nothing about the type).
UNTYPED = pa.string()


def merge_type(
    table: str, column: str, old: pa.DataType, new: pa.DataType, untyped: frozenset[str] = frozenset()
) -> pa.DataType:
    if old == new or pa.types.is_null(new):
        return old
    if pa.types.is_null(old) or column in untyped:
        return new
    if (old, new) in WIDENINGS:
        return new
    if (new, old) in WIDENINGS:
        return old
    if pa.types.is_struct(old) and pa.types.is_struct(new):
        return merge_row_types(table, old, new, untyped)
    raise IncompatibleSchemaChange(table, column, old, new)


def merge_row_types(
    table: str, known: pa.StructType | None, new: pa.DataType, untyped: frozenset[str] = frozenset()
) -> pa.StructType:
    """Union of two row types under the evolution rules (known columns keep their order).

    `untyped` names known columns that hold only nulls so far: they take any type that shows up.
    """
    if known is None or pa.types.is_null(known):
        return new if pa.types.is_struct(new) else pa.struct([])
    if pa.types.is_null(new):
        return known
    fields = {f.name: f.type for f in known}
    for f in new:
        fields[f.name] = merge_type(table, f.name, fields[f.name], f.type, untyped) if f.name in fields else f.type
    return pa.struct(list(fields.items()))


def widened_columns(old: pa.StructType, new: pa.StructType) -> list[str]:
    """Existing columns whose type changed (a rewrite of the stored data is needed)."""
    old_types = {f.name: f.type for f in old}
    return [
        f.name
        for f in new
        if f.name in old_types and old_types[f.name] != f.type and not pa.types.is_null(old_types[f.name])
    ]


def conform_struct(array: pa.Array, target: pa.StructType) -> pa.StructArray:
    """Reshape a struct array to `target`: missing fields become nulls, types are cast."""
    if pa.types.is_null(array.type):
        return pa.nulls(len(array), target)
    children = []
    present = {f.name for f in array.type}
    for f in target:
        if f.name in present:
            child = array.field(f.name)
            children.append(child if child.type == f.type else pc.cast(child, f.type))
        else:
            children.append(pa.nulls(len(array), f.type))
    return pa.StructArray.from_arrays(children, fields=list(target), mask=array.is_null())


def conform_table(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Reshape a table to `schema` (same rules as `conform_struct`, applied per column)."""
    columns = []
    for f in schema:
        if f.name not in table.column_names:
            columns.append(pa.nulls(table.num_rows, f.type))
            continue
        column = table.column(f.name).combine_chunks()
        if pa.types.is_struct(f.type):
            columns.append(conform_struct(column, f.type))
        else:
            columns.append(column if column.type == f.type else pc.cast(column, f.type))
    return pa.Table.from_arrays(columns, schema=schema)
