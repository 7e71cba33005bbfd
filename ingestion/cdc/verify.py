"""Reconcile a silver table with its PostgreSQL source, row by row.

Both sides are rendered as text in Debezium's JSON representation (numeric as plain decimal,
timestamptz as `YYYY-MM-DDTHH:MM:SS.ffffffZ`, booleans as true/false, jsonb as PostgreSQL's
text) and compared as a multiset of rows keyed by primary key. Used by the tests, by a Dagster
asset check and by `lakehouse cdc verify`.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field

import psycopg
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError
from psycopg import sql

from ingestion.cdc.config import SinkConfig
from lakehouse.settings import Settings


@dataclass
class TableDiff:
    table: str
    source_rows: int
    silver_rows: int
    missing: list[tuple[str, ...]] = field(default_factory=list)  # keys in source, not in silver
    extra: list[tuple[str, ...]] = field(default_factory=list)  # keys in silver, not in source
    different: list[tuple[str, ...]] = field(default_factory=list)  # same key, other values
    problem: str | None = None  # e.g. silver table or columns missing

    @property
    def equal(self) -> bool:
        return not (self.missing or self.extra or self.different or self.problem)

    @property
    def source_hash(self) -> str:
        return self._hash

    _hash: str = ""

    def summary(self) -> str:
        if self.equal:
            return f"{self.table}: {self.source_rows} rows, identical"
        if self.problem:
            return f"{self.table}: {self.problem}"
        return (
            f"{self.table}: source {self.source_rows} rows, silver {self.silver_rows}; "
            f"missing {len(self.missing)} {self.missing[:3]}, extra {len(self.extra)} {self.extra[:3]}, "
            f"different {len(self.different)} {self.different[:3]}"
        )


#: PostgreSQL types rendered as floats on both sides (text forms differ: 'NaN' vs 'nan', '1e+20'...)
FLOAT_TYPES = ("double precision", "real")


def _pg_expr(column: str, data_type: str) -> sql.Composable:
    ident = sql.Identifier(column)
    if data_type == "timestamp with time zone":
        return sql.SQL("""to_char({} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')""").format(ident)
    if data_type == "boolean":
        return sql.SQL("case when {0} then 'true' when not {0} then 'false' end").format(ident)
    if data_type == "character":
        # char(n) keeps its padding in Debezium and silver; `::text` would strip it
        return ident  # selected as is, psycopg returns the padded text
    if data_type == "numeric":
        # Debezium's spelling of numeric NaN and infinities (decimal.handling.mode=string)
        return sql.SQL(
            "case when {0} = 'NaN' then 'NAN' when {0} = 'Infinity' then 'POSITIVE_INFINITY' "
            "when {0} = '-Infinity' then 'NEGATIVE_INFINITY' else {0}::text end"
        ).format(ident)
    return sql.SQL("{}::text").format(ident)


def _float_text(value: object) -> str | None:
    """One text form of a float for both sides (PostgreSQL's text, or silver's float64)."""
    if value is None:
        return None
    number = float(value)  # type: ignore[arg-type]
    return "NaN" if math.isnan(number) else repr(number)


def source_rows(settings: Settings, table: str) -> tuple[list[str], list[str], dict[tuple[str, ...], tuple]]:
    """(columns, key columns, rows by key) of the PostgreSQL table, rendered as text."""
    with psycopg.connect(settings.postgres_dsn) as conn:
        columns = conn.execute(
            "select column_name, data_type from information_schema.columns "
            "where table_schema = %s and table_name = %s order by ordinal_position",
            (settings.oltp_schema, table),
        ).fetchall()
        if not columns:
            raise ValueError(f"unknown table {settings.oltp_schema}.{table}")
        keys = [
            r[0]
            for r in conn.execute(
                "select a.attname from pg_index i join pg_attribute a "
                "on a.attrelid = i.indrelid and a.attnum = any(i.indkey) "
                "where i.indrelid = %s::regclass and i.indisprimary order by array_position(i.indkey, a.attnum)",
                (f"{settings.oltp_schema}.{table}",),
            ).fetchall()
        ]
        query = sql.SQL("select {} from {}.{}").format(
            sql.SQL(", ").join(_pg_expr(name, kind) for name, kind in columns),
            sql.Identifier(settings.oltp_schema),
            sql.Identifier(table),
        )
        rows = conn.execute(query).fetchall()
    names = [c[0] for c in columns]
    floats = [i for i, (_name, kind) in enumerate(columns) if kind in FLOAT_TYPES]
    if floats:
        rows = [tuple(_float_text(v) if i in floats else v for i, v in enumerate(r)) for r in rows]
    positions = [names.index(k) for k in keys]
    return names, keys, {tuple(r[p] for p in positions): tuple(r) for r in rows}


class SilverUnavailable(Exception):
    """The silver table (or some of its columns) does not exist yet."""


def silver_rows(settings: Settings, table: str, columns: list[str], keys: list[str]) -> dict[tuple[str, ...], tuple]:
    uri = SinkConfig.from_settings(settings).uri("silver", table)
    try:
        delta = DeltaTable(uri, storage_options=settings.delta_storage_options)
    except TableNotFoundError:
        raise SilverUnavailable(f"silver table {uri} does not exist yet") from None
    available = set(pa.schema(delta.schema().to_arrow()).names)
    missing_columns = [c for c in columns if c not in available]
    if missing_columns:
        raise SilverUnavailable(f"silver {table} lacks columns {missing_columns}")
    data = delta.to_pyarrow_dataset().to_table(columns=[*columns, "_cdc_deleted"])
    data = data.filter(pc.invert(data.column("_cdc_deleted")))
    as_text = [
        [_float_text(v) for v in data.column(c).to_pylist()]
        if pa.types.is_floating(data.column(c).type)
        else pc.cast(data.column(c), pa.string()).to_pylist()
        for c in columns
    ]
    positions = [columns.index(k) for k in keys]
    result: dict[tuple[str, ...], tuple] = {}
    for row in zip(*as_text, strict=True):
        key = tuple(row[p] for p in positions)
        if key in result:
            raise AssertionError(f"silver {table} holds key {key} twice")
        result[key] = tuple(row)
    return result


def _dq(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def compare_table(settings: Settings, table: str) -> TableDiff:
    """Row-by-row comparison of `shop.<table>` with `silver/<table>` (current state)."""
    columns, keys, source = source_rows(settings, table)
    try:
        silver = silver_rows(settings, table, columns, keys)
    except SilverUnavailable as exc:
        return TableDiff(table, len(source), 0, problem=str(exc))
    diff = TableDiff(table, len(source), len(silver))
    diff.missing = sorted(k for k in source if k not in silver)
    diff.extra = sorted(k for k in silver if k not in source)
    diff.different = sorted(k for k in source if k in silver and source[k] != silver[k])
    digest = hashlib.sha256()
    for key in sorted(source):
        digest.update(repr(source[key]).encode())
    diff._hash = digest.hexdigest()
    return diff
