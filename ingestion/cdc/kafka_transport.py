"""Kafka as the CDC transport (`KafkaTransport`), and every Kafka client of the pipeline.

One place for their logging: librdkafka writes its own log lines to stderr (about 20 a second while
a broker is down, from every client); here each client routes them through Python logging, and a
filter lets each distinct line through at most once per `KAFKA_WARNING_SECONDS`. Client-level errors
(`error_cb`) are rate-limited the same way; fatal ones are kept for the caller to raise.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from ingestion.cdc.config import SinkConfig
from ingestion.cdc.decode import Message
from ingestion.cdc.progress import Position
from ingestion.cdc.transport import OffsetOutOfRange, PositionLookup

log = logging.getLogger(__name__)
#: librdkafka's own log lines (connection failures, retries...), rate-limited
LIBRDKAFKA_LOG = logging.getLogger("ingestion.cdc.librdkafka")

#: a repeated transient Kafka error or log line is logged at most this often
KAFKA_WARNING_SECONDS = 30.0
#: Kafka errors that waiting does not cure (besides those librdkafka flags fatal)
FATAL_KAFKA_ERRORS = frozenset(
    {
        KafkaError._FATAL,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.GROUP_AUTHORIZATION_FAILED,
        KafkaError.CLUSTER_AUTHORIZATION_FAILED,
        KafkaError.SASL_AUTHENTICATION_FAILED,
    }
)


class KafkaFatalError(RuntimeError):
    """A Kafka error the client cannot recover from (fatal, or missing permissions)."""


class RateLimited(logging.Filter):
    """Passes each distinct message (digits ignored) at most once per `seconds`; says how many were held back."""

    def __init__(self, seconds: float = KAFKA_WARNING_SECONDS) -> None:
        super().__init__()
        self.seconds = seconds
        self._last: dict[str, tuple[float, int]] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        key = re.sub(r"\d+", "#", record.getMessage())[:200]
        now = time.monotonic()
        with self._lock:
            last, held = self._last.get(key, (-self.seconds, 0))
            if now - last < self.seconds:
                self._last[key] = (last, held + 1)
                return False
            self._last[key] = (now, 0)
            if len(self._last) > 1000:  # unbounded distinct messages: forget the oldest
                self._last.pop(next(iter(self._last)))
        if held:
            record.msg = f"{record.getMessage()} ({held} similar lines held back)"
            record.args = None
        return True


LIBRDKAFKA_LOG.addFilter(RateLimited())


def is_fatal(error: KafkaError) -> bool:
    return bool(error.fatal()) or error.code() in FATAL_KAFKA_ERRORS


def fatal_exception(exc: KafkaException) -> bool:
    """True for a KafkaException that retrying cannot cure."""
    error = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
    return error is not None and is_fatal(error)


class ErrorHandler:
    """`error_cb` of a client: fatal errors are kept (raised by the caller's next step), the rest is
    logged, rate-limited: librdkafka reconnects by itself."""

    def __init__(self, logger: logging.Logger = log) -> None:
        self.fatal: KafkaError | None = None
        self.logger = logger
        self._warned: dict[int, float] = {}

    def __call__(self, error: KafkaError) -> None:
        if is_fatal(error):
            self.fatal = error
            return
        now = time.monotonic()
        if now - self._warned.get(error.code(), -KAFKA_WARNING_SECONDS) >= KAFKA_WARNING_SECONDS:
            self._warned[error.code()] = now
            self.logger.warning("Kafka: %s (retrying)", error)


def client_settings(
    base: Mapping[str, Any], extra: Mapping[str, Any] | None = None, errors: ErrorHandler | None = None
) -> dict[str, Any]:
    """librdkafka configuration for any client of the pipeline: `base` (see `lakehouse.kafka`) and
    `extra` plus the logging settings, so that no client writes raw lines to stderr."""
    config: dict[str, Any] = {
        **base,
        "logger": LIBRDKAFKA_LOG,
        "log_level": 4,  # warnings and errors
        "log.connection.close": False,
        "error_cb": errors or ErrorHandler(),
    }
    config.update(extra or {})
    return config


# ---------------------------------------------------------------------------- the transport
def beyond_log_end(consumer: Consumer, position: tuple[str, int], sought: int) -> int | None:
    """The log end of a partition if `sought` lies past it, else None.

    Brokers that answer a fetch beyond the log end with an empty response (the local tansu broker
    does) give no reset error; the high watermark of the last fetch response (cached by the client,
    and correct even on tansu) below the sought offset says it.
    """
    _low, high = consumer.get_watermark_offsets(TopicPartition(*position), cached=True)
    return high if high is not None and 0 <= high < sought else None


class KafkaTransport:
    """One topic per table (`<prefix>.<schema>.<table>`), read by one consumer of the sink's group.

    Positions come from the lake (`offsets`), never from the group: each partition is sought to
    the stored offset + 1. `auto.offset.reset=error` makes a position outside the log an error
    (`OffsetOutOfRange`); brokers that answer such a fetch with an empty response instead (tansu)
    are caught by comparing the sought offset with the high watermark until a record or
    end-of-partition confirms it. Group offsets are committed after the Delta commits and only
    serve lag monitoring (never past a stopped table's progress, so its lag shows).
    """

    kind = "kafka"

    def __init__(self, config: SinkConfig, offsets: Callable[[str, int], int | None]) -> None:
        self.config = config
        self.offsets = offsets
        self.errors = ErrorHandler(log)
        self._consumer: Consumer | None = None
        self._assigned: dict[tuple[str, int], bool] = {}  # (topic, partition) -> at EOF right now
        self._reached: set[tuple[str, int]] = set()  # reached EOF at least once in this run
        self._paused: set[tuple[str, int]] = set()
        #: positions sought but not yet confirmed by a message or EOF (checked against the log end)
        self._unconfirmed: dict[tuple[str, int], int] = {}
        self._out_of_range: list[OffsetOutOfRange] = []

    # ------------------------------------------------------------------ clients
    @property
    def consumer(self) -> Consumer:
        if self._consumer is None:
            self._consumer = Consumer(
                client_settings(
                    self.config.kafka,
                    errors=self.errors,
                    extra={
                        "group.id": self.config.group_id,
                        "enable.auto.commit": False,
                        "enable.auto.offset.store": False,
                        "enable.partition.eof": True,
                        # a position outside the log is an error, never a silent jump (see OffsetOutOfRange)
                        "auto.offset.reset": "error",
                        "session.timeout.ms": 6000,
                        "queued.max.messages.kbytes": 262144,
                        "fetch.max.bytes": 104857600,
                    },
                )
            )
        return self._consumer

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None

    # ------------------------------------------------------------------ discovery
    def source(self, table: str) -> str:
        return self.config.source(table)

    def discover(self, tables: Iterable[str] | None = None) -> dict[str, list[int]]:
        """Topics (with partitions) under the prefix; restricted to `tables` if given."""
        metadata = AdminClient(client_settings(self.config.kafka)).list_topics(timeout=10)
        wanted = set(tables) if tables is not None else None
        found: dict[str, list[int]] = {}
        for name, topic in metadata.topics.items():
            parsed = self.config.parse_topic(name)
            if parsed is None or topic.error is not None:
                continue
            if wanted is not None and parsed.table not in wanted:
                continue
            found[name] = sorted(topic.partitions)
        return found

    def tables(self, sources: dict[str, list[int]]) -> list[str]:
        names = set()
        for topic in sources:
            parsed = self.config.parse_topic(topic)
            if parsed is not None and self.config.accepts(parsed) is None:
                names.add(parsed.table)
        return sorted(names)

    def tables_read(self) -> list[str]:
        return sorted({self.config.table_of(topic) for topic, _partition in self._assigned})

    def partitions(self, table: str) -> list[int]:
        topic = self.source(table)
        metadata = AdminClient(client_settings(self.config.kafka)).list_topics(topic, timeout=10)
        found = metadata.topics.get(topic)
        if found is None or found.error is not None:
            return []
        return sorted(found.partitions)

    # ------------------------------------------------------------------ reading
    def assign(self, sources: dict[str, list[int]]) -> None:
        new = [(t, p) for t, parts in sources.items() for p in parts if (t, p) not in self._assigned]
        if not new:
            return
        assignments = []
        for topic, partition in new:
            committed = self.offsets(topic, partition)
            offset = committed + 1 if committed is not None else OFFSET_BEGINNING
            assignments.append(TopicPartition(topic, partition, offset))
            self._assigned[(topic, partition)] = False
            if committed is not None:
                self._unconfirmed[(topic, partition)] = offset
        self.consumer.incremental_assign(assignments)

    def start_run(self) -> None:
        self._reached = set(self._paused)  # a stopped table's partitions send nothing more

    @property
    def assigned(self) -> bool:
        return bool(self._assigned)

    def all_reached(self) -> bool:
        return self._reached.issuperset(self._assigned)

    def poll(self, timeout: float) -> list[Message]:
        polled = self.consumer.consume(num_messages=10_000, timeout=timeout)
        if self.errors.fatal is not None:
            raise KafkaFatalError(f"fatal Kafka error: {self.errors.fatal}")
        if self._unconfirmed:
            self._check_positions()
        messages = []
        for record in polled:
            error = record.error()
            position = (str(record.topic()), int(record.partition() or 0))
            if error is not None:
                self._on_record_error(position, error)
                continue
            self._assigned[position] = False
            self._unconfirmed.pop(position, None)
            messages.append(Message(*position, int(record.offset() or 0), record.key(), record.value()))
        return messages

    def _on_record_error(self, position: tuple[str, int], error: KafkaError) -> None:
        """End of partition is latched; a reset stops the table; fatal errors raise; the rest
        (a broker restarting, a partition leader moving) heals by itself and is logged."""
        code = error.code()
        if code == KafkaError._PARTITION_EOF:
            self._assigned[position] = True
            self._reached.add(position)
            self._unconfirmed.pop(position, None)
        elif code in (KafkaError._AUTO_OFFSET_RESET, KafkaError.OFFSET_OUT_OF_RANGE):
            sought = self._unconfirmed.get(position)
            if sought is None:  # e.g. retention removed offsets the sink had not read yet
                committed = self.offsets(*position)
                sought = committed + 1 if committed is not None else 0
            self._outside(position, sought, str(error))
        elif is_fatal(error):
            raise KafkaFatalError(f"fatal Kafka error on {position[0]} [{position[1]}]: {error}")
        else:
            self.errors(error)

    def _check_positions(self) -> None:
        """Positions not yet confirmed by a message or end of partition, checked after every poll
        (see `beyond_log_end`)."""
        for position, sought in list(self._unconfirmed.items()):
            high = beyond_log_end(self.consumer, position, sought)
            if high is not None:
                self._outside(position, sought, f"its log ends at offset {high}")

    def _outside(self, position: tuple[str, int], sought: int, detail: str) -> None:
        topic, partition = position
        self._unconfirmed.pop(position, None)
        self._out_of_range.append(OffsetOutOfRange(self.config.table_of(topic), topic, partition, sought, detail))

    def out_of_range(self) -> list[OffsetOutOfRange]:
        found, self._out_of_range = self._out_of_range, []
        return found

    def stop(self, table: str) -> None:
        topic = self.source(table)
        positions = [(t, p) for (t, p) in self._assigned if t == topic]
        if positions and self._consumer is not None:
            self._consumer.pause([TopicPartition(t, p) for t, p in positions])
            for position in positions:
                self._assigned[position] = True  # nothing more will come from a paused partition
                self._reached.add(position)
                self._paused.add(position)
                self._unconfirmed.pop(position, None)

    def committed(self, messages: list[Message], stopped: set[str]) -> None:
        """Group offsets are for lag monitoring only: failures here lose nothing.

        A stopped table's messages are not in the lake: its group offsets stay at its stored
        progress, so consumer lag shows the stuck table.
        """
        last: dict[tuple[str, int], int] = {}
        for m in messages:
            last[(m.topic, m.partition)] = max(m.offset, last.get((m.topic, m.partition), -1))
        offsets = [
            TopicPartition(t, p, o + 1)
            for (t, p), o in last.items()
            if (t, p) not in self._paused and self.config.table_of(t) not in stopped
        ]
        if not offsets:
            return
        try:
            self.consumer.commit(offsets=offsets, asynchronous=True)
        except Exception as exc:
            log.debug("could not commit Kafka offsets: %s", exc)

    def positions_to_record(self) -> dict[str, dict[int, Position]]:
        return {}  # one topic per table: a table's position only moves with its own rows

    # ------------------------------------------------------------------ the sensor's probe
    def pending(self, positions: PositionLookup, timeout: float = 10.0) -> dict[str, dict[int, int]]:
        """Tables whose topics hold records beyond the lake's position: {table: {partition: offset}}.

        The embedded broker reports wrong high watermarks, so "is there more?" is answered the
        robust way: seek each partition to the lake's progress + 1 and see whether a record or
        end-of-partition comes back. A position beyond the log end needs a run too (the run stops
        that table with `OffsetOutOfRange`).
        """
        assignments = []
        for topic, partitions in self.discover().items():
            for partition in partitions:
                stored = positions(topic, partition)
                offset = stored.offset + 1 if stored is not None else OFFSET_BEGINNING
                assignments.append(TopicPartition(topic, partition, offset))
        pending: dict[str, dict[int, int]] = {}
        if not assignments:
            return pending
        consumer = probe_consumer(self.config)
        undecided = {(a.topic, a.partition): a.offset for a in assignments}
        try:
            consumer.assign(assignments)
            deadline = time.monotonic() + timeout
            while undecided and time.monotonic() < deadline:
                record = consumer.poll(0.5)
                if record is None:
                    for position, sought in list(undecided.items()):
                        if sought >= 0 and beyond_log_end(consumer, position, sought) is not None:
                            undecided.pop(position)
                            pending.setdefault(self.config.table_of(position[0]), {})[position[1]] = sought
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
                    offset = sought if reset else int(record.offset() or 0)
                    offsets = pending.setdefault(self.config.table_of(position[0]), {})
                    offsets[position[1]] = min(offset, offsets.get(position[1], offset))
        finally:
            consumer.close()
        return pending


def probe_consumer(config: SinkConfig) -> Consumer:
    """A consumer of its own group that reads without committing (the sink's log settings)."""
    return Consumer(
        client_settings(
            config.kafka,
            {
                "group.id": f"{config.group_id}-probe-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "enable.partition.eof": True,
                # a position outside the log: the run reports it (OffsetOutOfRange), the probe must not hide it
                "auto.offset.reset": "error",
            },
        )
    )
