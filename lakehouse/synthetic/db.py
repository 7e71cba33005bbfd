"""PostgreSQL helpers: connections, COPY loading and identity reservation."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import psycopg
from psycopg import sql

from lakehouse.settings import Settings


def connect(settings: Settings, autocommit: bool = False) -> psycopg.Connection:
    """Connection to the OLTP database (the caller closes it, e.g. `with connect(s) as conn`).

    The session runs in UTC so dates compare as UTC midnights and timestamps render the same everywhere.
    """
    return psycopg.connect(
        settings.postgres_conninfo(), connect_timeout=5, autocommit=autocommit, options="-c TimeZone=UTC"
    )


def table(schema: str, name: str) -> sql.Composed:
    return sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(name))


def copy_rows(
    conn: psycopg.Connection, schema: str, name: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]
) -> int:
    """COPY rows into a table (text format: str values are parsed by the server for any column type)."""
    stmt = sql.SQL("copy {} ({}) from stdin").format(
        table(schema, name), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    n = 0
    with conn.cursor() as cur, cur.copy(stmt) as copy:
        for row in rows:
            copy.write_row(row)
            n += 1
    return n


def reserve_ids(conn: psycopg.Connection, settings: Settings, name: str, column: str, n: int) -> np.ndarray:
    """Reserve `n` identity values of an OLTP table in one round trip (safe with concurrent writers)."""
    seq = conn.execute(
        "select pg_get_serial_sequence(format('%%I.%%I', %s::text, %s::text), %s)",
        (settings.oltp_schema, name, column),
    ).fetchone()
    if seq is None or seq[0] is None:
        raise RuntimeError(f"{name}.{column} has no identity sequence")
    cur = conn.execute("select nextval(%s::regclass) from generate_series(1, %s)", (seq[0], n))
    return np.fromiter((r[0] for r in cur), dtype=np.int64, count=n)
