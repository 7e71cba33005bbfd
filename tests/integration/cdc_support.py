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
from dataclasses import dataclass, field, replace
from typing import TypeVar

import boto3
import duckdb
import psycopg
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition

from ingestion.cdc.config import SinkConfig
from ingestion.cdc.kinesis_transport import decode_record
from ingestion.cdc.publisher import CdcPublisher, KinesisPublishingHandler, drop_slot, slot_health
from ingestion.cdc.sink import CdcSink, SinkReport
from ingestion.cdc.verify import compare_table, source_rows
from lakehouse import duck
from lakehouse.settings import OLTP_TABLES, Settings
from lakehouse.synthetic.entities import generate
from lakehouse.synthetic.schema import ensure_schema

#: every CDC integration and crash test runs on both (docs/cdc.md)
TRANSPORTS = ("kafka", "kinesis")


@dataclass
class CdcEnv:
    settings: Settings
    stop: threading.Event = field(default_factory=threading.Event)
    publisher: CdcPublisher | None = None
    thread: threading.Thread | None = None
    _duck: duckdb.DuckDBPyConnection | None = None
    _duck_settings: Settings | None = None

    # ---------------------------------------------------------------- publisher
    def start_publisher(self) -> None:
        self.stop = threading.Event()
        self.publisher = CdcPublisher(self.settings)
        self.thread = threading.Thread(target=self.publisher.run, args=(self.stop,), daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 90
        reason: object = "not checked"
        while time.monotonic() < deadline:
            try:
                reason = slot_health(self.settings)
            except psycopg.OperationalError as exc:  # a connect timeout on a machine under heavy load
                reason = exc
            if reason is None:
                return
            time.sleep(0.3)
        raise AssertionError(f"Debezium did not open its replication slot within 90 s: {reason}")

    def stop_publisher(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(60)
            assert not self.thread.is_alive(), "publisher did not stop"

    # ---------------------------------------------------------------- sink
    @property
    def config(self) -> SinkConfig:
        return SinkConfig.from_settings(self.settings)

    def sink_once(self, tables: list[str] | None = None, **config: object) -> SinkReport:
        """One sink run; `config` overrides SinkConfig fields (e.g. max_batch_messages)."""
        with CdcSink(replace(self.config, **config)) as sink:  # type: ignore[arg-type]
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

    def wait_consistent(
        self, tables: tuple[str, ...] = OLTP_TABLES, timeout: float = 90, **config: object
    ) -> SinkReport:
        """Run the sink until silver equals PostgreSQL for `tables` (Debezium is asynchronous)."""
        deadline = time.monotonic() + timeout
        last = ""
        while True:
            report = self.sink_once(**config)
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
        """SQL over the lake (one DuckDB connection per environment: opening one takes a second or two)."""
        if self._duck is None or self._duck_settings is not self.settings:
            self.close_duck()
            self._duck, self._duck_settings = duck.connect(self.settings), self.settings
        return self._duck.sql(sql).fetchall()

    def close_duck(self) -> None:
        if self._duck is not None:
            self._duck.close()
            self._duck = None

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

    def assert_bronze_matches_stream(self, tables: tuple[str, ...]) -> None:
        """Bronze holds every record of the table's topic (Kinesis: of the table in the stream)
        exactly once: as many rows as records with a value, none missing and none twice (the
        publisher's own re-sends are records of their own and counted as such)."""
        for table in tables:
            records = self.topic_messages(self.settings.cdc_topic(table))
            in_stream = sum(value is not None for _position, value in records)
            in_bronze = self.query(f"select count(*) from {self.delta('bronze', table)}")[0][0]
            assert in_bronze == in_stream, f"bronze {table}: {in_bronze} rows for {in_stream} records in the stream"

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

    @property
    def kinesis(self) -> bool:
        return self.settings.cdc_transport == "kinesis"

    def produce(self, topic: str, messages: list[tuple[bytes | None, bytes | None]]) -> None:
        """Crafted records on the transport, as the publisher would write them."""
        if self.kinesis:
            KinesisPublishingHandler(self.settings).publish([(topic, key, value) for key, value in messages])
            return
        producer = Producer({"bootstrap.servers": self.settings.kafka_bootstrap})
        for key, value in messages:
            producer.produce(topic, key=key, value=value)
        assert producer.flush(10) == 0

    def topic_messages(self, topic: str) -> list[tuple[int, bytes | None]]:
        """(position, value) of every record of `topic` (on Kinesis: of that table in the stream)."""
        if self.kinesis:
            return self._stream_messages(topic)
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

    def _stream_messages(self, topic: str) -> list[tuple[int, bytes | None]]:
        client = boto3.client("kinesis", **self.settings.boto3_kwargs())
        stream = self.settings.kinesis_stream
        seen: list[tuple[int, bytes | None]] = []
        for shard in client.list_shards(StreamName=stream)["Shards"]:
            iterator = client.get_shard_iterator(
                StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
            )["ShardIterator"]
            while iterator:
                response = client.get_records(ShardIterator=iterator)
                for record in response["Records"]:
                    decoded = decode_record(record["Data"])
                    if decoded is not None and decoded[0] == topic:
                        seen.append((len(seen), decoded[2]))
                if not response["Records"] and not response.get("MillisBehindLatest"):
                    break
                iterator = response.get("NextShardIterator")
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
    extra_tables: tuple[str, ...] = (),
    prepare: Callable[[Settings], None] | None = None,
    transport: str = "kafka",
) -> Iterator[Env]:
    """Seeded source tables, a running publisher; the slot is dropped afterwards.

    `prepare` runs before Debezium starts (e.g. creates `extra_tables`, which are captured too).
    `transport` is "kafka" (a topic per table) or "kinesis" (one stream, on the S3 emulator's port).
    """
    settings = isolated_settings()
    settings = settings.model_copy(
        update={
            "cdc_slot_name": f"slot_{settings.postgres_db}",
            "state_dir": settings.state_path / settings.postgres_db,
            "cdc_tables": [*settings.cdc_tables, *extra_tables],
            "cdc_transport": transport,
        }
    )
    ensure_schema(settings)
    if prepare is not None:
        prepare(settings)
    generate(settings, "customers", customers, seed=seed)
    generate(settings, "products", products, seed=seed)
    generate(settings, "orders", orders, seed=seed)
    env = env_class(settings)
    env.start_publisher()
    try:
        yield env
    finally:
        env.close_duck()
        env.stop_publisher()
        drop_slot(settings)
