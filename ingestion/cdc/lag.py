"""How far the lake is behind the CDC stream, per topic partition (Kafka) or per table and shard
(Kinesis): the console of `lakehouse cdc topics`, the `consumer_lag` asset checks and `lakehouse status`.

On Kinesis there are no offsets to subtract: the records beyond the lake's stored positions are
read (as the sensor's probe does, within the shard's read limits) and counted; a stream that cannot
be read to its end within the timeout is reported as an error, not as a small lag.

Lag is counted against the lake's stored positions (`progress.py`: the Delta `txn`s), the same
positions the sink reads on from; the sink's consumer-group offsets are shown next to them (they
only serve monitoring tools and never pass a stopped table's progress). Log ends are read, not
taken from watermarks: the embedded broker (tansu) answers watermark and ListOffsets requests
with the start of the partition's last batch + 1, so the last batch is read to its end.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaError, TopicPartition

from ingestion.cdc.config import SinkConfig
from ingestion.cdc.kafka_transport import KafkaTransport, client_settings
from ingestion.cdc.lake import DeltaStore
from ingestion.cdc.progress import Progress


@dataclass(frozen=True)
class PartitionLag:
    """One partition of one CDC topic, as the stream and the lake see it."""

    table: str
    topic: str
    partition: int
    #: first offset the stream still holds, and the offset the next record will get
    log_start: int
    log_end: int
    #: last offset the lake holds (None: nothing applied yet)
    stored: int | None
    #: the sink's consumer-group offset (next offset to read; None: never committed)
    group: int | None
    #: Kinesis: the stored position is outside the stream (expired or recreated), found by reading
    outside: bool = False

    @property
    def next_offset(self) -> int:
        """The offset the sink reads next."""
        return self.stored + 1 if self.stored is not None else self.log_start

    @property
    def out_of_range(self) -> bool:
        """The lake's position lies outside the log (the table stops: `OffsetOutOfRange`)."""
        if self.outside:
            return True
        return self.stored is not None and not (self.log_start <= self.next_offset <= self.log_end)

    @property
    def lag(self) -> int:
        """Records in the stream the lake does not hold yet."""
        return max(0, self.log_end - max(self.next_offset, self.log_start))

    def as_json(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "topic": self.topic,
            "partition": self.partition,
            "log_start": self.log_start,
            "log_end": self.log_end,
            "stored": self.stored,
            "group": self.group,
            "lag": self.lag,
            "out_of_range": self.out_of_range,
        }


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


def _consumer(config: SinkConfig, group_id: str | None = None) -> Consumer:
    """A consumer that never joins a group nor commits (reads by assignment only)."""
    return Consumer(
        client_settings(
            config.kafka,
            {
                "group.id": group_id or f"{config.group_id}-lag-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "enable.partition.eof": True,
                "auto.offset.reset": "earliest",
            },
        )
    )


def log_ends(
    consumer: Consumer, partitions: list[tuple[str, int]], timeout: float = 10.0
) -> dict[tuple[str, int], tuple[int, int]]:
    """(log start, log end) of each partition, the end confirmed by reading the last batch to its end."""
    bounds: dict[tuple[str, int], tuple[int, int]] = {}
    to_read: dict[tuple[str, int], int] = {}
    for topic, partition in partitions:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout)
        bounds[(topic, partition)] = (int(low), int(high))
        if high > low:
            to_read[(topic, partition)] = max(int(low), int(high) - 1)
    if not to_read:
        return bounds
    consumer.assign([TopicPartition(t, p, offset) for (t, p), offset in to_read.items()])
    deadline = time.monotonic() + timeout
    try:
        while to_read and time.monotonic() < deadline:
            for record in consumer.consume(num_messages=10_000, timeout=0.5):
                position = (str(record.topic()), int(record.partition() or 0))
                error = record.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        to_read.pop(position, None)
                    continue
                low, end = bounds[position]
                bounds[position] = (low, max(end, int(record.offset() or 0) + 1))
    finally:
        consumer.unassign()
    if to_read:
        raise TimeoutError(f"could not read the end of {sorted(to_read)} within {timeout:.0f} s")
    return bounds


def topic_lag(config: SinkConfig, tables: list[str] | None = None, timeout: float = 10.0) -> list[PartitionLag]:
    """Lag of every CDC topic partition (of `tables`, if given), sorted by table and partition."""
    progress = Progress(DeltaStore(config.storage_options), config)
    if config.transport == "kinesis":
        return _kinesis_lag(config, progress, tables, timeout)
    transport = KafkaTransport(config, lambda _s, _p: None)
    try:
        sources = transport.discover(tables)
    finally:
        transport.close()
    partitions = [(topic, p) for topic, parts in sorted(sources.items()) for p in parts]
    if not partitions:
        return []
    consumer = _consumer(config, config.group_id)
    try:
        bounds = log_ends(consumer, partitions, timeout)
        committed = {
            (tp.topic, tp.partition): tp.offset
            for tp in consumer.committed([TopicPartition(t, p) for t, p in partitions], timeout=timeout)
        }
    finally:
        consumer.close()
    found = []
    for topic, partition in partitions:
        position = progress.position(topic, partition)
        group = committed.get((topic, partition))
        found.append(
            PartitionLag(
                table=config.table_of(topic),
                topic=topic,
                partition=partition,
                log_start=bounds[(topic, partition)][0],
                log_end=bounds[(topic, partition)][1],
                stored=position.offset if position is not None else None,
                group=group if group is not None and group >= 0 else None,
            )
        )
    return sorted(found, key=lambda lag: (lag.table, lag.topic, lag.partition))


def _kinesis_lag(
    config: SinkConfig, progress: Progress, tables: list[str] | None, timeout: float
) -> list[PartitionLag]:
    """Per table and shard: the records after the lake's stored position, counted by reading them."""
    from ingestion.cdc.kinesis_transport import KinesisTransport

    probe = KinesisTransport(config, progress.position)
    try:
        sources = probe.discover(tables)
        probe.assign(sources)
        probe.start_run()
        waiting: dict[tuple[str, int], int] = {}
        first: dict[tuple[str, int], int] = {}
        deadline = time.monotonic() + timeout
        while probe.assigned and not probe.all_reached():
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"the Kinesis stream {config.kinesis_stream} was not read to its end within {timeout:.0f} s "
                    f"(at least {sum(waiting.values())} records are not in the lake yet)"
                )
            for message in probe.poll(0.5):
                key = (config.table_of(message.topic), message.partition)
                waiting[key] = waiting.get(key, 0) + 1
                first.setdefault(key, message.offset)
        outside = {(o.table, o.partition) for o in probe.out_of_range()}
    finally:
        probe.close()
    found = []
    for table in probe.tables(sources):
        source = probe.source(table)
        for shard in sources[source]:
            position = progress.position(source, shard)
            stored = position.offset if position is not None else None
            start = stored + 1 if stored is not None else first.get((table, shard), 0)
            found.append(
                PartitionLag(
                    table=table,
                    topic=source,
                    partition=shard,
                    log_start=start,
                    log_end=start + waiting.get((table, shard), 0),
                    stored=stored,
                    group=None,  # the Kinesis sink keeps its positions in the lake only
                    outside=(table, shard) in outside,
                )
            )
    return sorted(found, key=lambda lag: (lag.table, lag.topic, lag.partition))


def tail(config: SinkConfig, topic: str, count: int = 10, timeout: float = 10.0) -> list[Record]:
    """The last `count` records of each partition of `topic` (oldest first)."""
    if config.transport != "kafka":
        raise NotImplementedError(
            f"tailing the {config.transport} transport is not supported (a shard cannot be read backwards); "
            "`lakehouse cdc topics` shows each table's shards and lag"
        )
    if config.parse_topic(topic) is None:
        raise ValueError(f"{topic!r} is not a CDC topic of this pipeline (prefix {config.topic_prefix!r})")
    transport = KafkaTransport(config, lambda _s, _p: None)
    try:
        partitions = transport.discover().get(topic)
    finally:
        transport.close()
    if partitions is None:
        raise ValueError(f"no topic {topic!r}")
    consumer = _consumer(config)
    try:
        bounds = log_ends(consumer, [(topic, p) for p in partitions], timeout)
        starts = {p: max(bounds[(topic, p)][0], bounds[(topic, p)][1] - count) for p in partitions}
        waiting = {p for p in partitions if bounds[(topic, p)][1] > starts[p]}
        if not waiting:
            return []
        consumer.assign([TopicPartition(topic, p, starts[p]) for p in sorted(waiting)])
        records: list[Record] = []
        deadline = time.monotonic() + timeout
        while waiting and time.monotonic() < deadline:
            for message in consumer.consume(num_messages=1000, timeout=0.5):
                partition = int(message.partition() or 0)
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        waiting.discard(partition)
                    continue
                records.append(Record(topic, partition, int(message.offset() or 0), message.key(), message.value()))
    finally:
        consumer.close()
    return sorted(records, key=lambda r: (r.partition, r.offset))
