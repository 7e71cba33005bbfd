"""The exactly-once CDC sink: Kafka topics → bronze changelog → silver + history Delta tables.

Progress lives in Delta, not in Kafka: every bronze commit carries one `txn` per (sink, topic,
partition) whose version is the last offset written; silver and history commits carry their own.
On start the sink seeks each partition to bronze's version + 1; silver/history lagging behind
bronze (a crash between commits) are repaired from bronze. A stored position the topic does not
reach any more (topic recreated or truncated) stops that table with `OffsetOutOfRange` instead of
silently skipping offsets. Kafka group offsets are committed after the Delta commits and only
serve lag monitoring (never past a stopped table's progress, so its lag shows). Commits are
fenced (see `lake.py`), so a Dagster run and `lakehouse cdc sink --follow` can run at the same
time and still write everything once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

import orjson
import pyarrow as pa
import pyarrow.compute as pc
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient
from deltalake import DeltaTable

from ingestion.cdc.apply import Applier, TableShape
from ingestion.cdc.config import CdcTopic, SinkConfig
from ingestion.cdc.decode import DeadLetter, DecodedBatch, Message, bronze_schema, decode
from ingestion.cdc.lake import CommitFailedError, DeltaStore
from ingestion.cdc.schema import IncompatibleSchemaChange, widened_columns

log = logging.getLogger(__name__)

DEAD_LETTER_SCHEMA = pa.schema(
    [
        pa.field("topic", pa.string()),
        pa.field("partition", pa.int32()),
        pa.field("offset", pa.int64()),
        pa.field("key", pa.binary()),
        pa.field("value", pa.binary()),
        pa.field("error", pa.string()),
        pa.field("ingested_at", pa.timestamp("us", tz="UTC")),
    ]
)
MAX_COMMIT_ATTEMPTS = 20
#: Kafka errors that waiting does not cure (besides those librdkafka flags fatal): raised
FATAL_KAFKA_ERRORS = frozenset(
    {
        KafkaError._FATAL,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.GROUP_AUTHORIZATION_FAILED,
        KafkaError.CLUSTER_AUTHORIZATION_FAILED,
        KafkaError.SASL_AUTHENTICATION_FAILED,
    }
)
#: a repeated transient Kafka error is logged at most this often
KAFKA_WARNING_SECONDS = 30.0
#: tables applied at once (their work is S3/Delta I/O and DuckDB, which release the GIL)
APPLY_THREADS = 4


class KafkaFatalError(RuntimeError):
    """A Kafka error the client cannot recover from (fatal, or missing permissions)."""


class OffsetOutOfRange(RuntimeError):
    """The lake's position of a partition lies outside the topic's log (topic recreated or truncated).

    Resetting to the earliest offset would silently skip every new message up to the stored
    progress, so the table stops instead.
    """

    def __init__(self, table: str, topic: str, partition: int, position: int, detail: str) -> None:
        self.table, self.topic, self.partition, self.position = table, topic, partition, position
        super().__init__(
            f"offset out of range for {table}: the lake has applied {topic} [{partition}] up to offset "
            f"{position - 1}, but the topic does not hold offset {position} ({detail}). The topic was "
            "probably recreated or truncated; the table is stopped so that no offset is skipped silently. "
            f"Rebuild it from the topic with `lakehouse cdc rebuild {table}` (or re-snapshot it with Debezium)."
        )


@dataclass
class AppliedBatch:
    """Changelog rows just appended to bronze, with the per-partition offsets they span."""

    rows: pa.Table
    start: dict[int, int]  # progress before the batch (exclusive)
    end: dict[int, int]  # last offset of the batch

    def covers(self, ranges: dict[int, tuple[int, int]]) -> bool:
        """True if `ranges` are exactly this batch: same partitions, each (start, end]."""
        return set(ranges) == set(self.end) and all(ranges[p] == (self.start.get(p), self.end[p]) for p in ranges)


@dataclass
class TableReport:
    """What one sink pass did to one table (becomes Dagster materialization metadata)."""

    table: str
    changes: int = 0
    silver_inserted: int = 0
    silver_updated: int = 0
    history_versions: int = 0
    dead_letters: int = 0
    tombstones: int = 0
    last_offsets: dict[int, int] = field(default_factory=dict)
    latest_source_ts: datetime | None = None
    error: str | None = None

    def absorb(self, other: TableReport) -> None:
        self.changes += other.changes
        self.silver_inserted += other.silver_inserted
        self.silver_updated += other.silver_updated
        self.history_versions += other.history_versions
        self.dead_letters += other.dead_letters
        self.tombstones += other.tombstones
        self.last_offsets.update(other.last_offsets)
        if other.latest_source_ts and (not self.latest_source_ts or other.latest_source_ts > self.latest_source_ts):
            self.latest_source_ts = other.latest_source_ts
        self.error = other.error or self.error


@dataclass
class SinkReport:
    tables: dict[str, TableReport] = field(default_factory=dict)
    messages: int = 0
    dead_letters: int = 0
    batches: int = 0
    seconds: float = 0.0

    def table(self, name: str) -> TableReport:
        return self.tables.setdefault(name, TableReport(name))


class CdcSink:
    """Consumes the CDC topics and applies them to the lake exactly once."""

    def __init__(self, config: SinkConfig, checkpoint: Callable[[str], None] | None = None) -> None:
        self.config = config
        #: called at named points of a batch ("bronze-commit:before", ...); tests inject crashes here
        self.checkpoint = checkpoint or (lambda _point: None)
        self.store = DeltaStore(config.storage_options)
        self.applier = Applier(self.store)
        self.blocked: dict[str, str] = {}
        self._consumer: Consumer | None = None
        self._assigned: dict[tuple[str, int], bool] = {}  # (topic, partition) -> at EOF right now
        self._reached: set[tuple[str, int]] = set()  # reached EOF at least once in this run
        self._paused: set[tuple[str, int]] = set()
        #: positions sought but not yet confirmed by a message or EOF (checked against the log end)
        self._unconfirmed: dict[tuple[str, int], int] = {}
        self._fatal: KafkaError | None = None
        self._warned: dict[int, float] = {}
        self._out_of_range: list[OffsetOutOfRange] = []
        self._row_types: dict[str, pa.StructType] = {}
        self._keys: dict[str, list[str]] = {}
        self._partitions: dict[str, set[int]] = {}
        self._dead_letter_lock = threading.Lock()  # tables are applied in parallel; one DLQ table
        self._history_elsewhere = False  # follow mode: a second worker keeps history up to date

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None

    def __enter__(self) -> CdcSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def consumer(self) -> Consumer:
        if self._consumer is None:
            self._consumer = Consumer(
                {
                    **self.config.kafka,
                    "group.id": self.config.group_id,
                    "enable.auto.commit": False,
                    "enable.auto.offset.store": False,
                    "enable.partition.eof": True,
                    # a position outside the log is an error, never a silent jump (see OffsetOutOfRange)
                    "auto.offset.reset": "error",
                    "error_cb": self._on_kafka_error,
                    "session.timeout.ms": 6000,
                    "queued.max.messages.kbytes": 262144,
                    "fetch.max.bytes": 104857600,
                    "log_level": 3,
                }
            )
        return self._consumer

    def _on_kafka_error(self, error: KafkaError) -> None:
        """Client-level errors (broker down, transport...): librdkafka reconnects by itself, so
        they are logged (rate-limited); fatal ones are raised by the next poll."""
        if error.fatal() or error.code() in FATAL_KAFKA_ERRORS:
            self._fatal = error
            return
        now = time.monotonic()
        if now - self._warned.get(error.code(), -KAFKA_WARNING_SECONDS) >= KAFKA_WARNING_SECONDS:
            self._warned[error.code()] = now
            log.warning("Kafka: %s (retrying)", error)

    # ------------------------------------------------------------------ discovery
    def discover(self, tables: Iterable[str] | None = None) -> dict[str, list[int]]:
        """Topics (with partitions) under the prefix; restricted to `tables` if given."""
        admin = AdminClient(self.config.kafka)
        metadata = admin.list_topics(timeout=10)
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

    def committed_offset(self, topic: str, partition: int) -> int | None:
        """Last offset of a partition that is in the lake (bronze or dead letters); None: nothing yet."""
        parsed = self.config.parse_topic(topic)
        accepted = parsed is not None and self.config.accepts(parsed) is None
        bronze = self.store.open(self.config.uri("bronze", parsed.table)) if accepted and parsed else None
        offset = self._progress(bronze, topic, partition)
        return offset if offset >= 0 else None

    def _assign(self, topics: dict[str, list[int]]) -> None:
        new = [(t, p) for t, parts in topics.items() for p in parts if (t, p) not in self._assigned]
        if not new:
            return
        assignments = []
        for topic, partition in new:
            committed = self.committed_offset(topic, partition)
            offset = committed + 1 if committed is not None else OFFSET_BEGINNING
            assignments.append(TopicPartition(topic, partition, offset))
            self._assigned[(topic, partition)] = False
            if committed is not None:
                self._unconfirmed[(topic, partition)] = offset
        self.consumer.incremental_assign(assignments)

    # ------------------------------------------------------------------ running
    def run_once(self, tables: Iterable[str] | None = None, timeout: float = 300.0) -> SinkReport:
        """Apply everything that was in the topics when it started, then return.

        Each partition must reach its end once since the start (latched): under steady load the
        partitions are rarely all at their end at the same moment, and the run would never finish.
        """
        started = time.monotonic()
        report = SinkReport()
        wanted = list(tables) if tables is not None else None
        self.catch_up(wanted, report)
        self._assign(self.discover(wanted))
        self._reached = set(self._paused)  # a stopped table's partitions send nothing more
        while self._assigned and not self._all_reached():
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"CDC sink did not reach the end of its topics within {timeout:.0f} s")
            self._batch(report)
        report.seconds = time.monotonic() - started
        return report

    def _all_reached(self) -> bool:
        return self._reached.issuperset(self._assigned)

    def follow(
        self,
        stop: threading.Event,
        tables: Iterable[str] | None = None,
        on_batch: Callable[[SinkReport], None] | None = None,
        rediscover_seconds: float = 10.0,
    ) -> None:
        """Apply changes continuously (low latency) until `stop` is set.

        History is kept up to date by a second worker that reads the new bronze rows (with its
        own Delta handles), so a batch's cycle is bronze + silver only and the current state
        becomes visible sooner. Its commits are fenced like every other.
        """
        wanted = list(tables) if tables is not None else None
        self.catch_up(wanted, SinkReport())
        self._out_of_range.clear()
        history = threading.Thread(
            target=CdcSink(self.config).follow_history, args=(stop, wanted), name="cdc-history", daemon=True
        )
        self._history_elsewhere = self.config.downstream
        if self._history_elsewhere:
            history.start()
        last_discovery = 0.0
        try:
            while not stop.is_set():
                if time.monotonic() - last_discovery > rediscover_seconds:
                    try:
                        self._assign(self.discover(wanted))
                    except KafkaException as exc:  # broker unreachable: keep the assignment, retry later
                        log.warning("CDC topic discovery failed (retrying): %s", exc)
                    last_discovery = time.monotonic()
                report = SinkReport()
                started = time.monotonic()
                self._batch(report, self.config.follow_batch_seconds)
                report.seconds = time.monotonic() - started
                if self._out_of_range:
                    raise self._out_of_range[0]
                if report.messages and on_batch:
                    on_batch(report)
                if not report.messages:
                    stop.wait(0.05)
        finally:
            stop.set()
            if history.is_alive():
                history.join(60)

    def follow_history(self, stop: threading.Event, tables: Iterable[str] | None = None) -> None:
        """Bring every table's history up to its bronze until `stop` is set.

        Kafka being unreachable (partitions are looked up there) only delays a pass.
        """
        wanted = list(tables) if tables is not None else None
        names: list[str] = []
        while not stop.is_set():
            try:
                names = self._table_names(wanted)
                for table in names:
                    if not stop.is_set():
                        self._apply_downstream(table, None, ("history",))
            except KafkaException as exc:
                log.warning("history catch-up delayed, Kafka unreachable: %s", exc)
            stop.wait(self.config.follow_history_seconds)

    def _table_names(self, tables: Iterable[str] | None) -> list[str]:
        """The tables given, or else every table the sink accepts that has a topic."""
        if tables is not None:
            return list(tables)
        names = set()
        for topic in self.discover():
            parsed = self.config.parse_topic(topic)
            if parsed is not None and self.config.accepts(parsed) is None:
                names.add(parsed.table)
        return sorted(names)

    def _batch(self, report: SinkReport, window: float | None = None) -> None:
        """Poll one micro-batch (for at most `window` seconds) and apply it."""
        deadline = time.monotonic() + (window or self.config.max_batch_seconds)
        messages: list[Message] = []
        while len(messages) < self.config.max_batch_messages and time.monotonic() < deadline:
            polled = self.consumer.consume(num_messages=10_000, timeout=0.2)
            if self._fatal is not None:
                raise KafkaFatalError(f"fatal Kafka error: {self._fatal}")
            if self._unconfirmed:
                self._check_positions(report)
            if not polled:
                if not self._assigned or self._all_reached() or messages:
                    break
                continue
            for record in polled:
                error = record.error()
                position = (str(record.topic()), int(record.partition() or 0))
                if error is not None:
                    self._on_record_error(position, error, report)
                    continue
                self._assigned[position] = False
                self._unconfirmed.pop(position, None)
                messages.append(Message(*position, int(record.offset() or 0), record.key(), record.value()))
            if self._all_reached():
                break
        if not messages:
            return
        report.batches += 1
        report.messages += len(messages)
        self.apply(messages, report)
        self.checkpoint("kafka-commit:before")
        self._commit_kafka_offsets(messages)

    def _on_record_error(self, position: tuple[str, int], error: KafkaError, report: SinkReport) -> None:
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
                committed = self.committed_offset(*position)
                sought = committed + 1 if committed is not None else 0
            self._stop_out_of_range(position, sought, str(error), report)
        elif error.fatal() or code in FATAL_KAFKA_ERRORS:
            raise KafkaFatalError(f"fatal Kafka error on {position[0]} [{position[1]}]: {error}")
        else:
            self._on_kafka_error(error)

    def _check_positions(self, report: SinkReport) -> None:
        """Positions not yet confirmed by a message or end of partition, checked after every poll
        (see `beyond_log_end`)."""
        for position, sought in list(self._unconfirmed.items()):
            high = beyond_log_end(self.consumer, position, sought)
            if high is not None:
                self._stop_out_of_range(position, sought, f"its log ends at offset {high}", report)

    def _stop_out_of_range(self, position: tuple[str, int], sought: int, detail: str, report: SinkReport) -> None:
        topic, partition = position
        table = self.config.table_of(topic)
        error = OffsetOutOfRange(table, topic, partition, sought, detail)
        self._unconfirmed.pop(position, None)
        self.blocked[table] = str(error)
        self._pause(topic)
        self._out_of_range.append(error)
        report.table(table).error = str(error)
        log.error("%s", error)

    # ------------------------------------------------------------------ applying
    def apply(self, messages: list[Message], report: SinkReport) -> None:
        """Apply a batch of raw messages (public for tests that craft their own deliveries).

        Tables are independent, so they are applied in parallel threads (the work is Delta and S3
        I/O and DuckDB, which release the GIL): first bronze + silver of every table, so that the
        current state is visible as early as possible, then history.
        """
        by_topic: dict[str, list[Message]] = defaultdict(list)
        for message in messages:
            by_topic[message.topic].append(message)
        accepted: list[tuple[CdcTopic, list[Message]]] = []
        for topic_name, batch in by_topic.items():
            parsed = self.config.parse_topic(topic_name) or CdcTopic(topic_name, "", "")
            reason = self.config.accepts(parsed)
            if reason is not None:
                dead = [DeadLetter(m, reason) for m in batch if m.value is not None]
                self._write_dead_letters(dead, progress=_last_offsets(batch))
                report.dead_letters += len(dead)
            elif parsed.table in self.blocked:
                report.table(parsed.table).error = self.blocked[parsed.table]
            else:
                accepted.append((parsed, batch))
        if not accepted:
            return
        with ThreadPoolExecutor(max_workers=min(APPLY_THREADS, len(accepted))) as pool:
            outcomes = list(pool.map(self._apply_current, accepted))
            pending = [
                (topic, fast)
                for (topic, _), (table_report, fast) in zip(accepted, outcomes, strict=True)
                if self.config.downstream and not self._history_elsewhere and table_report.error is None
            ]
            histories = list(
                pool.map(lambda item: self._apply_downstream(item[0].table, item[1], ("history",)), pending)
            )
        versions = {
            topic.table: applied.get("history", {}).get("versions", 0)
            for (topic, _), applied in zip(pending, histories, strict=True)
        }
        for (cdc_topic, _batch), (table_report, _fast) in zip(accepted, outcomes, strict=True):
            table_report.history_versions = versions.get(cdc_topic.table, 0)
            report.table(cdc_topic.table).absorb(table_report)
            report.dead_letters += table_report.dead_letters

    def _apply_current(self, work: tuple[CdcTopic, list[Message]]) -> tuple[TableReport, AppliedBatch | None]:
        """Bronze and silver of one table; an incompatible schema change stops only this table."""
        topic, batch = work
        try:
            return self._apply_table(topic, batch)
        except IncompatibleSchemaChange as exc:
            self.blocked[topic.table] = str(exc)
            self._pause(topic.topic)
            log.error("%s", exc)
            return TableReport(topic.table, error=str(exc)), None

    def _apply_table(self, topic: CdcTopic, batch: list[Message]) -> tuple[TableReport, AppliedBatch | None]:
        """Bronze, then silver; returns the report and what history needs (None: nothing to do)."""
        report = TableReport(topic.table)
        report.tombstones = sum(1 for m in batch if m.value is None)
        bronze_uri = self.config.uri("bronze", topic.table)
        partitions = sorted({m.partition for m in batch})
        self._partitions.setdefault(topic.table, set()).update(partitions)
        for _attempt in range(MAX_COMMIT_ATTEMPTS):
            bronze = self.store.open(bronze_uri)
            before = {p: self._progress(bronze, topic.topic, p) for p in partitions}
            fresh = [m for m in batch if m.offset > before[m.partition]]
            if not fresh:
                decoded = None
                break  # another sink already wrote all of it
            known = self._row_type(topic.table, bronze)
            decoded = self._decode(topic, fresh, bronze, known, self._known_keys(topic.table, bronze))
            self._write_dead_letters(decoded.dead_letters)
            progress = _last_offsets(fresh)
            txns = {self.config.txn_app_id(topic.topic, p): o for p, o in progress.items()}
            try:
                if bronze is None and decoded.rows.num_rows == 0:
                    # nothing valid yet: the dead-letter table records how far we got
                    self._write_dead_letters([], progress=progress, topic=topic.topic)
                else:
                    if bronze is not None and known is not None and widened_columns(known, decoded.row_type):
                        self.store.rewrite(bronze, bronze_schema(decoded.row_type), {})
                        bronze.update_incremental()
                    self.checkpoint("bronze-commit:before")
                    self.store.append(bronze_uri, bronze, decoded.rows, txns, operation="bronze-append")
                    self.checkpoint("bronze-commit:after")
            except CommitFailedError:
                log.info("bronze commit of %s raced with another writer; retrying", topic.table)
                continue
            self._row_types[topic.table] = decoded.row_type
            if decoded.key_columns:
                self._keys.setdefault(topic.table, decoded.key_columns)
            report.changes = decoded.rows.num_rows
            report.dead_letters = len(decoded.dead_letters)
            report.last_offsets = progress
            if decoded.rows.num_rows:
                report.latest_source_ts = pc.max(decoded.rows.column("source_ts")).as_py()
            break
        else:
            raise RuntimeError(f"could not commit bronze for {topic.table} after {MAX_COMMIT_ATTEMPTS} attempts")
        if not self.config.downstream:
            return report, None
        fast = AppliedBatch(decoded.rows, before, progress) if decoded is not None else None
        silver = self._apply_downstream(topic.table, fast, ("silver",)).get("silver", {})
        report.silver_inserted, report.silver_updated = silver.get("inserted", 0), silver.get("updated", 0)
        return report, fast

    def _apply_downstream(
        self,
        table: str,
        fast: AppliedBatch | None = None,
        layers: tuple[str, ...] = ("silver", "history"),
    ) -> dict[str, dict[str, int]]:
        """Bring silver and/or history up to bronze's offsets.

        `fast` is the batch just appended to bronze: when the target's missing ranges are exactly
        that batch (same partitions, same first and last offsets), the rows are used from memory;
        otherwise (after a crash, or another sink appended to bronze meanwhile) the missing range
        is read back from bronze, so no change of the other sink is skipped.
        """
        bronze = self.store.open(self.config.uri("bronze", table))
        row_type = self._row_type(table, bronze)
        if bronze is None or row_type is None:
            return {}
        keys = self._keys.get(table) or _keys_from_bronze(bronze)
        if not keys:
            return {}
        self._keys[table] = keys
        shape = TableShape(table, row_type, keys, self.config.partition_by.get(table))
        topic = self.config.topic(table)
        partitions = sorted(self._partitions.get(table) or self._topic_partitions(topic))
        results: dict[str, dict[str, int]] = {}
        appliers = {"silver": self.applier.apply_silver, "history": self.applier.apply_history}
        for layer in layers:
            apply = appliers[layer]
            uri = self.config.uri(layer, table)  # type: ignore[arg-type]
            result: dict[str, int] = {}
            for _attempt in range(MAX_COMMIT_ATTEMPTS):
                target = self.store.open(uri)
                ranges = self._pending_ranges(bronze, target, topic, partitions)
                if not ranges:
                    break
                txns = {self.config.txn_app_id(topic, p): hi for p, (_lo, hi) in ranges.items()}
                if fast is not None and fast.covers(ranges):
                    changes = fast.rows
                else:
                    changes = self._read_bronze(bronze, topic, ranges)
                try:
                    self.checkpoint(f"{layer}-merge:start")
                    result = (
                        apply(uri, shape, changes, txns, table=target)
                        if changes.num_rows
                        else self._record(uri, target, txns)
                    )
                    break
                except CommitFailedError:
                    log.info("%s commit of %s raced with another writer; retrying", layer, table)
            else:
                raise RuntimeError(f"could not commit {layer} for {table} after {MAX_COMMIT_ATTEMPTS} attempts")
            compacted = self.store.open(uri)
            if compacted is not None:
                try:
                    self.store.compact_if_fragmented(compacted, self.config.compact_after_files)
                except CommitFailedError:
                    log.info("compaction of %s %s raced with another writer; next time", layer, table)
            results[layer] = result
        return results

    def _pending_ranges(
        self, bronze: DeltaTable, target: DeltaTable | None, topic: str, partitions: list[int]
    ) -> dict[int, tuple[int, int]]:
        """Per partition, the offsets (applied, in bronze] that `target` has not seen yet."""
        ranges = {}
        for partition in partitions:
            app_id = self.config.txn_app_id(topic, partition)
            in_bronze = self.store.txn_version(bronze, app_id)
            applied = self.store.txn_version(target, app_id)
            applied = -1 if applied is None else applied
            if in_bronze is not None and in_bronze > applied:
                ranges[partition] = (applied, in_bronze)
        return ranges

    @staticmethod
    def _read_bronze(bronze: DeltaTable, topic: str, ranges: dict[int, tuple[int, int]]) -> pa.Table:
        condition = None
        for partition, (lo, hi) in ranges.items():
            part = (
                (pc.field("kafka_partition") == partition)
                & (pc.field("kafka_offset") > lo)
                & (pc.field("kafka_offset") <= hi)
            )
            condition = part if condition is None else condition | part
        return bronze.to_pyarrow_dataset().to_table(filter=(pc.field("kafka_topic") == topic) & condition)

    def _record(self, uri: str, target: DeltaTable | None, txns: dict[str, int]) -> dict[str, int]:
        """Only tombstones/dead letters in the range: record the progress, change nothing."""
        if target is not None:
            schema = pa.schema(target.schema().to_arrow())
            self.store.append(uri, target, schema.empty_table(), txns, operation="progress")
        return {}

    def catch_up(self, tables: Iterable[str] | None, report: SinkReport) -> None:
        """Repair silver/history left behind bronze (e.g. after a crash between commits)."""
        if not self.config.downstream:
            return
        for table in self._table_names(tables):
            if table in self.blocked:
                continue
            applied = self._apply_downstream(table)
            silver, history = applied.get("silver", {}), applied.get("history", {})
            if silver or history:
                entry = report.table(table)
                entry.silver_inserted += silver.get("inserted", 0)
                entry.silver_updated += silver.get("updated", 0)
                entry.history_versions += history.get("versions", 0)

    def behind_bronze(self, table: str, partitions: list[int]) -> dict[int, int]:
        """Per partition, the first bronze offset that silver or history has not applied yet.

        Non-empty after a run was killed between the bronze and the silver/history commits: a
        quiet table then has nothing new in Kafka, yet needs a run to catch up.
        """
        bronze = self.store.open(self.config.uri("bronze", table))
        if bronze is None or not self.config.downstream:
            return {}
        topic = self.config.topic(table)
        behind: dict[int, int] = {}
        layers: tuple[Literal["silver", "history"], ...] = ("silver", "history")
        for layer in layers:
            target = self.store.open(self.config.uri(layer, table))
            for partition, (applied, _in_bronze) in self._pending_ranges(bronze, target, topic, partitions).items():
                behind[partition] = min(applied + 1, behind.get(partition, applied + 1))
        return behind

    def _topic_partitions(self, topic: str) -> list[int]:
        metadata = AdminClient(self.config.kafka).list_topics(topic, timeout=10)
        found = metadata.topics.get(topic)
        if found is None or found.error is not None:
            return []
        return sorted(found.partitions)

    def _decode(
        self,
        topic: CdcTopic,
        fresh: list[Message],
        bronze: DeltaTable | None,
        known: pa.StructType | None,
        known_keys: list[str] | None = None,
    ) -> DecodedBatch:
        """Decode; a column that so far held only nulls may take its first real type."""
        untyped: set[str] = set()
        while True:
            try:
                overrides = self.config.column_types.get(topic.table)
                return decode(fresh, topic.schema, topic.table, known, frozenset(untyped), overrides, known_keys)
            except IncompatibleSchemaChange as exc:
                column = exc.column
                if bronze is None or known is None or column in untyped or column not in known.names:
                    raise
                if not _only_nulls(bronze, column):
                    raise
                untyped.add(column)

    def rebuild(self, table: str) -> list[str]:
        """Drop a table's bronze, silver and history so the next run replays its topic from the start.

        Kafka must still hold the whole topic (the embedded broker keeps everything; set unlimited
        retention on CDC topics elsewhere), otherwise re-snapshot the table with Debezium instead.
        """
        parsed = self.config.parse_topic(self.config.topic(table))
        if parsed is None or self.config.accepts(parsed) is not None:
            raise ValueError(f"unknown CDC table {table!r}")
        dropped = []
        layers: tuple[Literal["history", "silver", "bronze"], ...] = ("history", "silver", "bronze")
        for layer in layers:
            uri = self.config.uri(layer, table)
            if self.store.delete_table(uri):
                dropped.append(uri)
        # dead-letter progress of this topic must not skip the replay either
        partitions = self._topic_partitions(self.config.topic(table))
        dead = self.store.open(self.config.dead_letter_uri)
        if dead is not None and partitions:
            txns = {self.config.txn_app_id(self.config.topic(table), p): -1 for p in partitions}
            self.store.append(self.config.dead_letter_uri, dead, DEAD_LETTER_SCHEMA.empty_table(), txns)
        self.blocked.pop(table, None)
        return dropped

    # ------------------------------------------------------------------ helpers
    def _progress(self, bronze: DeltaTable | None, topic: str, partition: int) -> int:
        """Last offset of a partition in the lake. Bronze records it on every batch once it exists
        (even an all-dead-letter batch commits an empty append); before that, the dead letters do."""
        app_id = self.config.txn_app_id(topic, partition)
        in_bronze = self.store.txn_version(bronze, app_id)
        if in_bronze is not None:
            return in_bronze
        in_dead_letters = self.store.txn_version(self.store.open(self.config.dead_letter_uri), app_id)
        return in_dead_letters if in_dead_letters is not None else -1

    def _known_keys(self, table: str, bronze: DeltaTable | None) -> list[str] | None:
        """The table's key columns as stored (cached), None for a table without bronze yet."""
        keys = self._keys.get(table)
        if keys is None and bronze is not None:
            keys = _keys_from_bronze(bronze) or None
            if keys:
                self._keys[table] = keys
        return keys

    def _row_type(self, table: str, bronze: DeltaTable | None) -> pa.StructType | None:
        if bronze is not None:
            schema = pa.schema(bronze.schema().to_arrow())
            row_type = schema.field("after").type
            self._row_types[table] = row_type
            return row_type
        return self._row_types.get(table)

    def _write_dead_letters(
        self, dead: list[DeadLetter], progress: dict[int, int] | None = None, topic: str | None = None
    ) -> None:
        """Insert dead letters once (merge on topic/partition/offset); optionally record progress."""
        if not dead and not progress:
            return
        now = datetime.now(UTC)
        rows = pa.Table.from_pylist(
            [
                {
                    "topic": d.message.topic,
                    "partition": d.message.partition,
                    "offset": d.message.offset,
                    "key": d.message.key,
                    "value": d.message.value,
                    "error": d.error,
                    "ingested_at": now,
                }
                for d in dead
            ],
            schema=DEAD_LETTER_SCHEMA,
        )
        progress_topic = topic or (dead[0].message.topic if dead else None)
        txns = (
            {self.config.txn_app_id(progress_topic, p): o for p, o in (progress or {}).items()}
            if progress_topic
            else {}
        )
        with self._dead_letter_lock:
            uri = self.config.dead_letter_uri
            for _attempt in range(MAX_COMMIT_ATTEMPTS):
                table = self.store.open(uri)
                try:
                    if table is None:
                        self.store.append(uri, None, rows, txns, operation="dead-letters")
                    else:
                        (
                            table.merge(
                                rows,
                                "t.topic = s.topic and t.partition = s.partition and t.offset = s.offset",
                                source_alias="s",
                                target_alias="t",
                                commit_properties=self.store.commit_properties(txns, operation="dead-letters"),
                            )
                            .when_not_matched_insert_all()
                            .execute()
                        )
                    return
                except CommitFailedError:
                    continue
        raise RuntimeError("could not commit dead letters")

    def _pause(self, topic: str) -> None:
        positions = [(t, p) for (t, p) in self._assigned if t == topic]
        if positions and self._consumer is not None:
            self._consumer.pause([TopicPartition(t, p) for t, p in positions])
            for position in positions:
                self._assigned[position] = True  # nothing more will come from a paused partition
                self._reached.add(position)
                self._paused.add(position)

    def _commit_kafka_offsets(self, messages: list[Message]) -> None:
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
            if (t, p) not in self._paused and self.config.table_of(t) not in self.blocked
        ]
        if not offsets:
            return
        try:
            self.consumer.commit(offsets=offsets, asynchronous=True)
        except Exception as exc:
            log.debug("could not commit Kafka offsets: %s", exc)


def beyond_log_end(consumer: Consumer, position: tuple[str, int], sought: int) -> int | None:
    """The log end of a partition if `sought` lies past it, else None.

    Brokers that answer a fetch beyond the log end with an empty response (the local tansu broker
    does) give no reset error; the high watermark of the last fetch response (cached by the client,
    and correct even on tansu) below the sought offset says it.
    """
    _low, high = consumer.get_watermark_offsets(TopicPartition(*position), cached=True)
    return high if high is not None and 0 <= high < sought else None


def _last_offsets(messages: Iterable[Message]) -> dict[int, int]:
    last: dict[int, int] = {}
    for m in messages:
        last[m.partition] = max(m.offset, last.get(m.partition, -1))
    return last


def _only_nulls(bronze: DeltaTable, column: str) -> bool:
    """True if no stored before/after image has a value for `column` (rare check: reads both images)."""
    images = bronze.to_pyarrow_dataset().to_table(columns=["before", "after"])
    for side in ("before", "after"):
        values = images.column(side).combine_chunks().field(column)
        if values.null_count != len(values):
            return False
    return True


def _keys_from_bronze(bronze: DeltaTable) -> list[str]:
    """Primary key columns, from the Debezium key of a stored change."""
    sample = bronze.to_pyarrow_dataset().head(1, columns=["kafka_key"])
    if sample.num_rows == 0 or sample.column("kafka_key")[0].as_py() is None:
        return []
    return list(orjson.loads(sample.column("kafka_key")[0].as_py()))
