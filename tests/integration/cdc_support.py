"""A CDC test environment: an isolated database, topic prefix, replication slot and lake on the
session's stack, with Debezium (embedded) publishing to Kafka in a thread of the test process."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TypeVar

import psycopg
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition

from ingestion.cdc.config import SinkConfig
from ingestion.cdc.publisher import CdcPublisher, drop_slot, slot_status
from ingestion.cdc.sink import CdcSink, SinkReport
from ingestion.cdc.verify import compare_table, source_rows
from lakehouse import duck
from lakehouse.settings import OLTP_TABLES, Settings
from lakehouse.synthetic.entities import generate
from lakehouse.synthetic.schema import ensure_schema


@dataclass
class CdcEnv:
    settings: Settings
    stop: threading.Event = field(default_factory=threading.Event)
    publisher: CdcPublisher | None = None
    thread: threading.Thread | None = None

    # ---------------------------------------------------------------- publisher
    def start_publisher(self) -> None:
        self.stop = threading.Event()
        self.publisher = CdcPublisher(self.settings)
        self.thread = threading.Thread(target=self.publisher.run, args=(self.stop,), daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            slot = slot_status(self.settings)
            if slot and slot["active"]:
                return
            time.sleep(0.3)
        raise AssertionError("Debezium did not open its replication slot within 90 s")

    def stop_publisher(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(60)
            assert not self.thread.is_alive(), "publisher did not stop"

    # ---------------------------------------------------------------- sink
    @property
    def config(self) -> SinkConfig:
        return SinkConfig.from_settings(self.settings)

    def sink_once(self, tables: list[str] | None = None) -> SinkReport:
        with CdcSink(self.config) as sink:
            return sink.run_once(tables=tables)

    def sink_subprocess(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return self.cli("sink", *args, timeout=timeout)

    def cli(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        """`lakehouse cdc <args>` in a subprocess, with this environment's settings."""
        env = {**os.environ, **self.settings.to_env()}
        return subprocess.run(
            [sys.executable, "-m", "lakehouse.cli", "cdc", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def wait_consistent(self, tables: tuple[str, ...] = OLTP_TABLES, timeout: float = 90) -> SinkReport:
        """Run the sink until silver equals PostgreSQL for `tables` (Debezium is asynchronous)."""
        deadline = time.monotonic() + timeout
        last = ""
        while True:
            report = self.sink_once()
            diffs = [compare_table(self.settings, t) for t in tables]
            if all(d.equal for d in diffs):
                self.assert_bronze_unique()
                return report
            last = "; ".join(d.summary() for d in diffs if not d.equal)
            if time.monotonic() > deadline:
                raise AssertionError(f"silver never matched PostgreSQL: {last}")
            time.sleep(1)

    # ---------------------------------------------------------------- lake
    def query(self, sql: str) -> list[tuple]:
        con = duck.connect(self.settings)
        try:
            return con.sql(sql).fetchall()
        finally:
            con.close()

    def delta(self, layer: str, table: str) -> str:
        return f"delta_scan('{self.config.uri(layer, table)}')"  # type: ignore[arg-type]

    def assert_bronze_unique(self) -> None:
        for table in OLTP_TABLES:
            try:
                dupes = self.query(
                    f"select kafka_partition, kafka_offset, count(*) from {self.delta('bronze', table)} "
                    "group by 1, 2 having count(*) > 1"
                )
            except Exception as exc:  # table not created yet
                if "does not exist" in str(exc) or "No files" in str(exc) or "not found" in str(exc).lower():
                    continue
                raise
            assert dupes == [], f"bronze {table} holds (partition, offset) twice: {dupes[:5]}"

    def assert_history_consistent(self, tables: tuple[str, ...] = OLTP_TABLES) -> None:
        """History holds each (key, LSN) version once, and exactly one current version per live
        key of silver (none for a deleted one)."""
        for table in tables:
            _columns, keys, _rows = source_rows(self.settings, table)
            k = ", ".join(f'"{key}"' for key in keys)
            history, silver = self.delta("history", table), self.delta("silver", table)
            dupes = self.query(f"select {k}, _cdc_lsn, count(*) from {history} group by all having count(*) > 1")
            assert dupes == [], f"history {table} holds a (key, lsn) version twice: {dupes[:5]}"
            wrong = self.query(
                f"select {k}, s._cdc_deleted, coalesce(h.current, 0) from {silver} s "
                f"left join (select {k}, count(*) filter (where is_current) as current from {history} group by all) h "
                f"using ({k}) where coalesce(h.current, 0) <> case when s._cdc_deleted then 0 else 1 end"
            )
            assert wrong == [], f"history {table}: live keys need one current version, deleted none: {wrong[:5]}"
            orphans = self.query(f"select {k} from {history} h anti join {silver} s using ({k}) where h.is_current")
            assert orphans == [], f"history {table} has current versions of keys silver lacks: {orphans[:5]}"

    # ---------------------------------------------------------------- source
    def execute(self, statement: str, params: tuple = ()) -> None:
        with psycopg.connect(self.settings.postgres_dsn, autocommit=True) as conn:
            conn.execute(statement, params)  # type: ignore[arg-type]

    def fetch(self, statement: str, params: tuple = ()) -> list[tuple]:
        with psycopg.connect(self.settings.postgres_dsn) as conn:
            return conn.execute(statement, params).fetchall()  # type: ignore[arg-type]

    def produce(self, topic: str, messages: list[tuple[bytes | None, bytes | None]]) -> None:
        producer = Producer({"bootstrap.servers": self.settings.kafka_bootstrap})
        for key, value in messages:
            producer.produce(topic, key=key, value=value)
        assert producer.flush(10) == 0

    def topic_messages(self, topic: str) -> list[tuple[int, bytes | None]]:
        consumer = Consumer(
            {
                "bootstrap.servers": self.settings.kafka_bootstrap,
                "group.id": f"inspect-{uuid.uuid4().hex}",
                "enable.partition.eof": True,
            }
        )
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        seen = []
        at_end: set[int] = set()
        try:
            while len(at_end) < len(partitions):
                msg = consumer.poll(15)
                assert msg is not None, "no message or end of partition within 15 s"
                if msg.error():
                    assert msg.error().code() == KafkaError._PARTITION_EOF
                    at_end.add(msg.partition())
                    continue
                seen.append((msg.offset(), msg.value()))
        finally:
            consumer.close()
        return seen


Env = TypeVar("Env", bound="CdcEnv")


@contextmanager
def cdc_environment(
    isolated_settings: Callable[[], Settings],
    customers: int = 50,
    products: int = 20,
    orders: int = 100,
    seed: int = 7,
    env_class: type[Env] = CdcEnv,  # type: ignore[assignment]
) -> Iterator[Env]:
    """Seeded source tables, a running publisher; the slot is dropped afterwards."""
    settings = isolated_settings()
    settings = settings.model_copy(
        update={
            "cdc_slot_name": f"slot_{settings.postgres_db}",
            "state_dir": settings.state_path / settings.postgres_db,
        }
    )
    ensure_schema(settings)
    generate(settings, "customers", customers, seed=seed)
    generate(settings, "products", products, seed=seed)
    generate(settings, "orders", orders, seed=seed)
    env = env_class(settings)
    env.start_publisher()
    try:
        yield env
    finally:
        env.stop_publisher()
        drop_slot(settings)
