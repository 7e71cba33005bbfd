"""Which CDC tables have changes waiting in Kafka (for the Dagster sensor).

The embedded broker reports wrong high watermarks, so "is there more?" is answered the robust way:
seek each partition to the lake's progress + 1 and see whether a record or end-of-partition
comes back.
"""

from __future__ import annotations

import time
import uuid

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from ingestion.cdc.config import SinkConfig
from ingestion.cdc.sink import CdcSink


def tables_with_new_data(config: SinkConfig, timeout: float = 10.0) -> dict[str, dict[int, int]]:
    """Tables whose topic has records beyond what the lake holds: {table: {partition: next offset}}."""
    probe = CdcSink(config)
    topics = probe.discover()
    assignments = []
    for topic, partitions in topics.items():
        for partition in partitions:
            committed = probe.committed_offset(topic, partition)
            offset = committed + 1 if committed is not None else OFFSET_BEGINNING
            assignments.append(TopicPartition(topic, partition, offset))
    if not assignments:
        return {}
    consumer = Consumer(
        {
            **config.kafka,
            "group.id": f"{config.group_id}-probe-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "log_level": 3,
        }
    )
    undecided = {(a.topic, a.partition): a.offset for a in assignments}
    pending: dict[str, dict[int, int]] = {}
    try:
        consumer.assign(assignments)
        deadline = time.monotonic() + timeout
        while undecided and time.monotonic() < deadline:
            record = consumer.poll(0.5)
            if record is None:
                continue
            position = (str(record.topic()), int(record.partition() or 0))
            if position not in undecided:
                continue
            error = record.error()
            if error is not None and error.code() != KafkaError._PARTITION_EOF:
                raise RuntimeError(f"Kafka error: {error}")
            undecided.pop(position)
            if error is None:
                parsed = config.parse_topic(position[0])
                table = parsed.table if parsed and parsed.table else position[0]
                pending.setdefault(table, {})[position[1]] = int(record.offset() or 0)
    finally:
        consumer.close()
    return pending
