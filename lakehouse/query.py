"""`lakehouse query`: SQL over the local lakehouse (dbt marts, silver and bronze Delta tables).

The dbt warehouse file is attached read-only and its schemas go on the search path, so mart
names work unqualified (`select * from fct_orders`). Silver tables are views named
`silver.<table>` (current state: tombstones filtered out) and `silver.<table>_history`; bronze
tables are `bronze.<source>_<table>`. All Delta tables are read with `delta_scan`.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from lakehouse import duck
from lakehouse.lake import discover
from lakehouse.settings import Settings


class QueryError(RuntimeError):
    """A query could not run; the message says why and what is available."""


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    rows: list[tuple]


def lake_views(settings: Settings) -> dict[str, str]:
    """`schema.view` → Delta table URI for every silver and bronze table in the lake."""
    views: dict[str, str] = {}
    for path, uri in discover(settings).items():
        parts = path.split("/")
        if parts[0] == "silver" and len(parts) == 2:
            views[f"silver.{parts[1]}"] = uri
        elif parts[0] == "bronze" and len(parts) == 3:
            views[f"bronze.{parts[1]}_{parts[2].lstrip('_')}"] = uri
    return views


def connect(settings: Settings) -> duckdb.DuckDBPyConnection:
    """In-memory DuckDB with the warehouse attached read-only and lake views defined."""
    con = duck.connect(settings)
    schemas: list[str] = []
    if settings.duckdb_path.exists():
        try:
            con.execute(f"attach '{settings.duckdb_path}' as warehouse (read_only)")
        except duckdb.IOException as exc:
            raise QueryError(
                f"cannot open the warehouse {settings.duckdb_path}: {exc}. A dbt run may be writing it; "
                "retry when it has finished."
            ) from exc
        schemas = [
            f"warehouse.{row[0]}"
            for row in con.execute(
                "select schema_name from information_schema.schemata where catalog_name = 'warehouse' "
                "and schema_name not in ('information_schema', 'pg_catalog') order by schema_name = 'main' desc"
            ).fetchall()
        ]
    con.execute("create schema if not exists silver")
    con.execute("create schema if not exists bronze")
    for view, uri in lake_views(settings).items():
        source = f"delta_scan('{uri}')"
        if view.startswith("silver.") and not view.endswith("_history"):
            con.execute(f"create or replace view {view} as select * from {source} where not _cdc_deleted")
        else:
            con.execute(f"create or replace view {view} as select * from {source}")
    search_path = ",".join([*schemas, "memory.silver", "memory.bronze", "memory.main"])
    con.execute(f"set search_path = '{search_path}'")
    return con


def available_tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    rows = con.execute(
        "select table_catalog, table_schema, table_name from information_schema.tables "
        "where table_schema not in ('information_schema', 'pg_catalog') order by all"
    ).fetchall()
    return [f"{schema}.{name}" if catalog == "memory" else f"{name}" for catalog, schema, name in rows]


def run_query(settings: Settings, sql: str) -> QueryResult:
    con = connect(settings)
    try:
        try:
            relation = con.sql(sql)
        except duckdb.CatalogException as exc:
            raise QueryError(f"{exc}\nAvailable tables: {', '.join(available_tables(con))}") from exc
        except duckdb.Error as exc:
            raise QueryError(str(exc)) from exc
        if relation is None:
            return QueryResult([], [])
        return QueryResult(list(relation.columns), relation.fetchall())
    finally:
        con.close()
