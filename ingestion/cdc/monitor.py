"""Which CDC tables need a sink run (for the Dagster sensor).

A table needs one when its topic has changes the lake has not seen, or when its silver or history
is behind its bronze (a run killed between the bronze and the silver/history commits: nothing new
arrives in Kafka, yet the table stays stale until a run repairs it from bronze).

The embedded broker reports wrong high watermarks, so "is there more?" is answered the robust way:
seek each partition to the lake's progress + 1 and see whether a record or end-of-partition
comes back.
"""

from __future__ import annotations

import time
import uuid

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from ingestion.cdc.config import SinkConfig
from ingestion.cdc.sink import CdcSink, beyond_log_end


def tables_with_new_data(config: SinkConfig, timeout: float = 10.0) -> dict[str, dict[int, int]]:
    """Tables that need a sink run: {table: {partition: first offset not yet in every layer}}.

    That is the next offset in Kafka beyond bronze, or the first bronze offset that silver or
    history has not applied, whichever is smaller.
    """
    probe = CdcSink(config)
    topics = probe.discover()
    pending: dict[str, dict[int, int]] = {}
    assignments = []
    for topic, partitions in topics.items():
        parsed = config.parse_topic(topic)
        if parsed is not None and config.accepts(parsed) is None:
            for partition, offset in probe.behind_bronze(parsed.table, partitions).items():
                pending.setdefault(parsed.table, {})[partition] = offset
        for partition in partitions:
            committed = probe.committed_offset(topic, partition)
            offset = committed + 1 if committed is not None else OFFSET_BEGINNING
            assignments.append(TopicPartition(topic, partition, offset))
    if not assignments:
        return pending
    consumer = Consumer(
        {
            **config.kafka,
            "group.id": f"{config.group_id}-probe-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            # a position outside the log: the run reports it (OffsetOutOfRange), the probe must not hide it
            "auto.offset.reset": "error",
            "log_level": 3,
        }
    )
    undecided = {(a.topic, a.partition): a.offset for a in assignments}
    try:
        consumer.assign(assignments)
        deadline = time.monotonic() + timeout
        while undecided and time.monotonic() < deadline:
            record = consumer.poll(0.5)
            if record is None:
                _beyond_log_end(consumer, undecided, pending, config)
                continue
            position = (str(record.topic()), int(record.partition() or 0))
            if position not in undecided:
                continue
            error = record.error()
            reset = error is not None and error.code() == KafkaError._AUTO_OFFSET_RESET
            if error is not None and error.code() != KafkaError._PARTITION_EOF and not reset:
                raise RuntimeError(f"Kafka error: {error}")
            sought = undecided.pop(position)
            if error is None or reset:
                table = config.table_of(position[0])
                offset = sought if reset else int(record.offset() or 0)
                offsets = pending.setdefault(table, {})
                offsets[position[1]] = min(offset, offsets.get(position[1], offset))
    finally:
        consumer.close()
    return pending


def _beyond_log_end(
    consumer: Consumer, undecided: dict[tuple[str, int], int], pending: dict[str, dict[int, int]], config: SinkConfig
) -> None:
    """A position beyond the log end (see `sink.beyond_log_end`) needs a run too: the run stops
    that table with `OffsetOutOfRange`."""
    for position, sought in list(undecided.items()):
        if sought >= 0 and beyond_log_end(consumer, position, sought) is not None:
            undecided.pop(position)
            pending.setdefault(config.table_of(position[0]), {})[position[1]] = sought
