"""Values that used to come out wrong, with what Debezium really emits (PostgreSQL → Debezium →
broker → sink), on tables added through `LAKEHOUSE_CDC_TABLES`: one with REPLICA IDENTITY DEFAULT,
one with FULL. TOASTed text and jsonb left unchanged by updates, primary-key changes, delete and
re-insert, double precision and numeric NaN/Infinity, char(n), TRUNCATE; applied in batches of
three messages so that the changes of one row fall on both sides of batch boundaries.

"Correct" means: silver equals PostgreSQL row by row (`cdc verify`), no placeholder is stored in
silver or history, and history holds one current version per live key.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator

import psycopg
import pytest

from ingestion.cdc.decode import UNAVAILABLE
from ingestion.cdc.verify import compare_table
from lakehouse.settings import Settings
from tests.integration.cdc_support import TRANSPORTS, CdcEnv, cdc_environment

TABLES = ("docs_default", "docs_full")
SMALL_BATCHES = {"max_batch_messages": 3}


def _big() -> str:
    return secrets.token_urlsafe(6000)  # incompressible: stored out of line (TOAST)


def _create(settings: Settings) -> None:
    with psycopg.connect(settings.postgres_dsn, autocommit=True) as conn:
        for table in TABLES:
            conn.execute(
                f"create table shop.{table} (id int primary key, title text, body text, meta jsonb, "
                "x double precision, n numeric, c char(2))"
            )
            for i in range(1, 6):
                conn.execute(
                    f"insert into shop.{table} values (%s, %s, %s, %s, %s, %s, %s)",
                    (i, f"title {i}", _big(), f'{{"k": "{_big()}"}}', i + 0.5, f"{i}.25", "Z"),
                )
        conn.execute("alter table shop.docs_full replica identity full")


@pytest.fixture(params=TRANSPORTS)
def cdc(isolated_settings: Callable[[], Settings], request: pytest.FixtureRequest) -> Iterator[CdcEnv]:
    with cdc_environment(
        isolated_settings,
        customers=3,
        products=3,
        orders=3,
        extra_tables=TABLES,
        prepare=_create,
        transport=request.param,
    ) as env:
        yield env


def _assert_lake_is_right(cdc: CdcEnv) -> None:
    cdc.wait_consistent(TABLES, timeout=120, **SMALL_BATCHES)
    for table in TABLES:
        for layer in ("silver", "history"):
            placeholders = cdc.query(
                f"select count(*) from {cdc.delta(layer, table)} where title = '{UNAVAILABLE}' "
                f"or body = '{UNAVAILABLE}' or meta = '{UNAVAILABLE}'"
            )
            assert placeholders == [(0,)], f"{layer} {table} stores Debezium's placeholder"
        unknown = cdc.query(f"select count(*) from {cdc.delta('silver', table)} where _cdc_unavailable is not null")
        assert unknown == [(0,)], f"silver {table}: every value was knowable here"
    cdc.assert_history_consistent(TABLES)
    verified = cdc.cli("verify", *(arg for t in TABLES for arg in ("--table", t)))
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_values_debezium_leaves_out_or_spells_oddly(cdc: CdcEnv) -> None:
    _assert_lake_is_right(cdc)
    for table in TABLES:
        statements = [
            f"update shop.{table} set title = 'renamed' where id = 1",  # TOAST unchanged
            f"update shop.{table} set id = 20, title = 'moved' where id = 2",  # key change, TOAST unchanged
            f"update shop.{table} set title = 'moved again' where id = 20",
            f"delete from shop.{table} where id = 3",
            f"insert into shop.{table} values (3, 'back', 'short body', null, 0, 0, 'Q')",
            f"update shop.{table} set title = 'back again' where id = 3",
            f"update shop.{table} set x = 'NaN', n = 'NaN', c = 'AB' where id = 1",
            f"update shop.{table} set x = 'Infinity', n = 'Infinity' where id = 20",
            f"update shop.{table} set x = '-Infinity', n = '-Infinity' where id = 4",
            f"update shop.{table} set id = 21 where id = 4",  # a key change after it
        ]
        for statement in statements:
            cdc.execute(statement)
    _assert_lake_is_right(cdc)
    nan = cdc.query(f"select id from {cdc.delta('silver', 'docs_default')} where isnan(x) and not _cdc_deleted")
    assert nan == [(1,)], "NaN is a float64 NaN that queries find"
    infinite = cdc.query(
        f"select id, x > 0 from {cdc.delta('silver', 'docs_default')} where isinf(x) and not _cdc_deleted order by id"
    )
    assert infinite == [(20, True), (21, False)]
    moved = cdc.query(f"select title, length(body) > 5000 from {cdc.delta('silver', 'docs_default')} where id = 20")
    assert moved == [("moved again", True)]

    # TRUNCATE between changes: what came before is deleted (with history), what came after stays
    for table in TABLES:
        cdc.execute(f"update shop.{table} set title = 'just before' where id = 5")
        cdc.execute(f"truncate shop.{table}")
        cdc.execute(f"insert into shop.{table} values (7, 'after', %s, null, 1, 1, 'Q')", (_big(),))
        cdc.execute(f"update shop.{table} set title = 'after, renamed' where id = 7")
    _assert_lake_is_right(cdc)
    for table in TABLES:
        live = cdc.query(f"select id from {cdc.delta('silver', table)} where not _cdc_deleted")
        assert live == [(7,)]
        truncated = cdc.query(
            f"select id, _cdc_op, is_current from {cdc.delta('history', table)} where _cdc_op = 't' order by id"
        )
        assert [(i, op, current) for i, op, current in truncated] == [
            (1, "t", False),
            (3, "t", False),
            (5, "t", False),
            (20, "t", False),
            (21, "t", False),
        ]
    assert compare_table(cdc.settings, "docs_default").equal
