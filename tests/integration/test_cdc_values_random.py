"""Random change histories through the real chain (PostgreSQL → Debezium → transport → sink), as an
adversarial user would write them, on tables added through `LAKEHOUSE_CDC_TABLES` (REPLICA IDENTITY
DEFAULT and FULL): TOASTed text/jsonb left unchanged by updates, key changes (also back to a deleted
key, and key swaps inside one transaction), delete + re-insert, several changes of one row in one
transaction, NaN/±Infinity, char(n), user text that looks like a marker, and a TRUNCATE. The sink
runs between rounds with random batch sizes, so a row's changes fall on every side of batch
boundaries.

Correct means what `test_cdc_values.py` asserts, for any history: silver equals PostgreSQL row by
row, no placeholder and no unknown value is stored (all were knowable), history is a valid chain.
The seed is in the test id; `LAKEHOUSE_TEST_CDC_SEEDS=1,2,3` runs others.
"""

from __future__ import annotations

import os
import random
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import psycopg
import pytest

from ingestion.cdc.decode import UNAVAILABLE
from lakehouse.settings import Settings
from tests.integration.cdc_support import TRANSPORTS, CdcEnv, cdc_environment

TABLES = ("adv_default", "adv_full")
ROWS = 40
ROUNDS = 6
SEEDS = [int(s) for s in os.environ.get("LAKEHOUSE_TEST_CDC_SEEDS", "20261203").split(",")]
#: values PostgreSQL stores and JSON/Debezium spell oddly, or that look like an internal marker
ODD_TEXT = ["\x01__null__", "null", "", " ", "NaN", "__null__", "\\N", "{}"]
FLOATS = ["NaN", "Infinity", "-Infinity", "0", "-0", "1.5e300", "-2.25"]
NUMERICS = ["NaN", "Infinity", "-Infinity", "0.00", "123456789.123456789", "-1"]


def _big(rng: random.Random) -> str:
    return secrets.token_urlsafe(rng.randint(3000, 7000))  # incompressible: stored out of line (TOAST)


def _create(settings: Settings) -> None:
    with psycopg.connect(settings.postgres_dsn, autocommit=True) as conn:
        for table in TABLES:
            conn.execute(
                f"create table shop.{table} (id int primary key, title text, body text, meta jsonb, "
                "x double precision, n numeric, c char(3), note text)"
            )
            rng = random.Random(table)
            for i in range(1, ROWS + 1):
                conn.execute(
                    f"insert into shop.{table} values (%s, %s, %s, %s, %s, %s, %s, %s)",
                    (i, f"title {i}", _big(rng), f'{{"k": "{_big(rng)}"}}', i / 3, f"{i}.5", "Z", None),
                )
        conn.execute("alter table shop.adv_full replica identity full")


@pytest.fixture(params=TRANSPORTS)
def cdc(isolated_settings: Callable[[], Settings], request: pytest.FixtureRequest) -> Iterator[CdcEnv]:
    with cdc_environment(
        isolated_settings,
        customers=2,
        products=2,
        orders=2,
        extra_tables=TABLES,
        prepare=_create,
        transport=request.param,
    ) as env:
        yield env


class Workload:
    """Random statements on one table, grouped into transactions; tracks which keys exist."""

    def __init__(self, table: str, rng: random.Random) -> None:
        self.table, self.rng = table, rng
        self.live = set(range(1, ROWS + 1))
        self.gone: set[int] = set()
        self.next_id = 1000

    def _move(self, old: int | None, new: int | None) -> None:
        if old is not None:
            self.live.discard(old)
            self.gone.add(old)
        if new is not None:
            self.gone.discard(new)
            self.live.add(new)

    def _pick(self) -> int:
        return self.rng.choice(sorted(self.live))

    def statements(self) -> list[tuple[str, tuple]]:
        """One random change (a key swap takes three statements)."""
        chosen = self._statement()
        return chosen if isinstance(chosen, list) else [chosen]

    def _statement(self) -> tuple[str, tuple] | list[tuple[str, tuple]]:
        t, rng = f"shop.{self.table}", self.rng
        kind = rng.choice(
            ["title", "title", "key", "key_to_gone", "swap", "body", "meta", "same_body", "delete", "reinsert",
             "float", "numeric", "char", "odd_text"]
        )  # fmt: skip
        if len(self.live) < 4:
            kind = "reinsert" if self.gone else "insert"
        row = self._pick() if self.live else 0
        if kind == "title":
            return f"update {t} set title = %s where id = %s", (f"t{rng.randint(0, 999)}", row)
        if kind in ("key", "key_to_gone"):
            target = rng.choice(sorted(self.gone)) if kind == "key_to_gone" and self.gone else self.next_id
            self.next_id += 1
            self._move(row, target)
            return f"update {t} set id = %s where id = %s", (target, row)
        if kind == "swap":  # two keys trade places (PostgreSQL checks a primary key row by row: via a third)
            other = self._pick()
            return [
                (f"update {t} set id = -id where id = %s", (row,)),
                (f"update {t} set id = %s where id = %s", (row, other)),
                (f"update {t} set id = %s where id = %s", (other, -row)),
            ]
        if kind == "body":
            return f"update {t} set body = %s where id = %s", (_big(rng), row)
        if kind == "meta":
            return f"update {t} set meta = %s, title = title || '+' where id = %s", (f'{{"m": "{_big(rng)}"}}', row)
        if kind == "same_body":
            return f"update {t} set body = body, note = %s where id = %s", (f"n{rng.randint(0, 9)}", row)
        if kind == "delete":
            self._move(row, None)
            return f"delete from {t} where id = %s", (row,)
        if kind in ("reinsert", "insert"):
            return self.insert(reuse=kind == "reinsert")
        if kind == "float":
            return f"update {t} set x = %s::float8 where id = %s", (rng.choice(FLOATS), row)
        if kind == "numeric":
            return f"update {t} set n = %s::numeric where id = %s", (rng.choice(NUMERICS), row)
        if kind == "char":
            return f"update {t} set c = %s where id = %s", (rng.choice(["", "A", "AB", "ABC", " B"]), row)
        return f"update {t} set note = %s, title = %s where id = %s", (rng.choice(ODD_TEXT), rng.choice(ODD_TEXT), row)

    def insert(self, reuse: bool) -> tuple[str, tuple]:
        """A new row, under a key that existed before (`reuse`, when there is one) or a new one."""
        target = self.rng.choice(sorted(self.gone)) if reuse and self.gone else self.next_id
        self.next_id += 1
        self._move(None, target)
        body = _big(self.rng) if self.rng.random() < 0.7 else "short"
        statement = f"insert into shop.{self.table} (id, title, body, meta, c) values (%s, 'back', %s, null, 'Q')"
        return statement, (target, body)

    def round(self, conn: psycopg.Connection, statements: int) -> None:
        done = 0
        while done < statements:
            with conn.transaction():
                for _ in range(self.rng.randint(1, 4)):
                    for statement in self.statements():
                        conn.execute(*statement)
                    done += 1


def _assert_lake_is_right(cdc: CdcEnv, batch: int) -> None:
    cdc.wait_consistent(TABLES, timeout=180, max_batch_messages=batch)
    for table in TABLES:
        for layer in ("silver", "history"):
            placeholders = cdc.query(
                f"select count(*) from {cdc.delta(layer, table)} where title = '{UNAVAILABLE}' "
                f"or body = '{UNAVAILABLE}' or meta = '{UNAVAILABLE}' or note = '{UNAVAILABLE}'"
            )
            assert placeholders == [(0,)], f"{layer} {table} stores Debezium's placeholder"
            unknown = cdc.query(f"select count(*) from {cdc.delta(layer, table)} where _cdc_unavailable is not null")
            assert unknown == [(0,)], f"{layer} {table}: every value was knowable here"
    cdc.assert_history_consistent(TABLES)
    verified = cdc.cli("verify", *(arg for t in TABLES for arg in ("--table", t)))
    assert verified.returncode == 0, verified.stdout + verified.stderr


def _follow(cdc: CdcEnv) -> subprocess.Popen[bytes]:
    """`lakehouse cdc sink --follow` (its own history worker applies history from bronze)."""
    env = {**os.environ, **cdc.settings.to_env()}
    command = [sys.executable, "-m", "lakehouse.cli", "cdc", "sink", "--follow"]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.mark.parametrize("seed", SEEDS)
def test_random_histories_come_out_as_postgres_has_them(cdc: CdcEnv, seed: int) -> None:
    """Half the rounds applied by one-shot runs with random batch sizes, half by a follow-mode sink
    that is killed (-9) once and restarted; a TRUNCATE in between."""
    rng = random.Random(seed)
    workloads = [Workload(table, rng) for table in TABLES]
    follower: subprocess.Popen[bytes] | None = None
    try:
        with psycopg.connect(cdc.settings.postgres_dsn, autocommit=True) as conn:
            for number in range(ROUNDS):
                for workload in workloads:
                    workload.round(conn, rng.randint(10, 30))
                if number == ROUNDS // 2:
                    for workload in workloads:  # a TRUNCATE between changes, then the table fills again
                        conn.execute(f"truncate shop.{workload.table}")
                        workload.gone |= workload.live
                        workload.live = set()
                        for _ in range(ROWS // 2):
                            conn.execute(*workload.insert(reuse=rng.random() < 0.5))
                if number < ROUNDS // 2:
                    cdc.sink_once(max_batch_messages=rng.choice([1, 2, 3, 5, 8, 50]))
                    continue
                if follower is None:
                    follower = _follow(cdc)
                time.sleep(rng.uniform(0.5, 4))
                if number == ROUNDS - 2:  # a crash at a random moment, then a restart
                    follower.send_signal(signal.SIGKILL)
                    follower.wait(30)
                    follower = _follow(cdc)
            time.sleep(5)
    finally:
        if follower is not None:
            follower.terminate()
            assert follower.wait(60) == 0, "the follow-mode sink did not exit 0 on SIGTERM"
    _assert_lake_is_right(cdc, batch=rng.choice([2, 3, 7]))
