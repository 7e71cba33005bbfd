"""DDL of the OLTP and marketing schemas, applied idempotently, and the connection helper."""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

import psycopg
from psycopg import sql

from lakehouse.settings import Settings
from lakehouse.synthetic.db import connect

SCHEMA_FILE = Path(__file__).with_name("schema.sql")
#: Serialises concurrent `ensure_schema` calls (`create ... if not exists` races otherwise).
_LOCK_KEY = 0x5EED_5C4E_3A00


@cache
def _ddl_text() -> str:
    return SCHEMA_FILE.read_text(encoding="utf-8")


def schema_version() -> str:
    """Hash of schema.sql: recorded as a comment on the OLTP schema to skip re-applying the DDL."""
    return "lakehouse-synthetic:" + hashlib.sha256(_ddl_text().encode()).hexdigest()[:16]


def ddl(settings: Settings) -> sql.Composed:
    """schema.sql with the configured schema names composed in as identifiers."""
    return sql.SQL(_ddl_text()).format(
        oltp=sql.Identifier(settings.oltp_schema), marketing=sql.Identifier(settings.marketing_schema)
    )


def ensure_schema(settings: Settings) -> bool:
    """Create schemas, tables, triggers (idempotent). Returns True if the DDL was (re)applied.

    The DDL takes ACCESS EXCLUSIVE locks (`replica identity`), so it is skipped when the schema
    already carries the current version marker: generators call this on every request.
    """
    version = schema_version()
    with connect(settings) as conn:
        if _current_version(conn, settings) == version:
            return False
        conn.execute("select pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        if _current_version(conn, settings) == version:
            return False
        conn.execute(ddl(settings))
        conn.execute(
            sql.SQL("comment on schema {} is {}").format(sql.Identifier(settings.oltp_schema), sql.Literal(version))
        )
    return True


def _current_version(conn: psycopg.Connection, settings: Settings) -> str | None:
    """Version marker of the OLTP schema, None if absent or the marketing tables are missing."""
    row = conn.execute(
        "select obj_description(n.oid, 'pg_namespace'), to_regclass(format('%%I.ad_spend', %s::text))"
        " from pg_namespace n where n.nspname = %s",
        (settings.marketing_schema, settings.oltp_schema),
    ).fetchone()
    return row[0] if row and row[1] is not None else None
