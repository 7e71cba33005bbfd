"""The exactly-once CDC sink: CDC records (Kafka or Kinesis) → bronze changelog → silver + history.

This module is the batch loop and the order of the commits; the other jobs have their own module:
where the lake is (`progress.py`: positions in Delta `txn`s), where records come from
(`transport.py`: Kafka topics or one Kinesis stream), decoding (`decode.py`), completing images
(`resolve.py`), silver and history (`apply.py`), dead letters (`dead_letters.py`), the run's report
(`report.py`) and the one fenced-commit helper (`lake.commit_fenced`).

Progress lives in Delta, not in the transport. On start each partition is read from bronze's
position + 1; silver/history lagging behind bronze (a crash between commits) are repaired from
bronze. A stored position the stream does not reach any more (topic recreated or truncated,
records expired) stops that table with `OffsetOutOfRange` instead of silently skipping records.
Commits are fenced, so a Dagster run and `lakehouse cdc sink --follow` can run at the same time and
still write everything once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

import orjson
import pyarrow as pa
import pyarrow.compute as pc
from confluent_kafka import KafkaException
from deltalake import DeltaTable

from ingestion.cdc.apply import Applier, TableShape
from ingestion.cdc.config import CdcTopic, SinkConfig
from ingestion.cdc.dead_letters import DeadLetters
from ingestion.cdc.decode import FLOAT_TOKENS, DeadLetter, DecodedBatch, Message, bronze_schema, decode
from ingestion.cdc.kafka_transport import KAFKA_WARNING_SECONDS, KafkaFatalError, fatal_exception
from ingestion.cdc.lake import CommitFailedError, DeltaStore, commit_fenced
from ingestion.cdc.progress import Position, Progress
from ingestion.cdc.report import SinkReport, TableReport
from ingestion.cdc.schema import IncompatibleSchemaChange, widened_columns
from ingestion.cdc.transport import OffsetOutOfRange, Transport, TransportUnavailable, transport_for

__all__ = ["CdcSink", "KafkaFatalError", "OffsetOutOfRange", "SinkReport", "TableReport", "TablesStopped"]

log = logging.getLogger(__name__)

#: tables applied at once (their work is S3/Delta I/O and DuckDB, which release the GIL)
APPLY_THREADS = 4
#: follow mode repeats which tables are stopped this often (the others keep flowing)
STOPPED_REMINDER_SECONDS = 300.0
#: positions reached on a shared stream without rows for a table are recorded at most this often
POSITION_RECORD_SECONDS = 30.0
#: transport errors that follow mode waits out (retried with backoff)
TRANSIENT_ERRORS: tuple[type[Exception], ...] = (KafkaException, TransportUnavailable)


class TablesStopped(RuntimeError):
    """Every table a follow-mode sink applies is stopped (e.g. incompatible schema changes)."""

    def __init__(self, reasons: dict[str, str]) -> None:
        self.reasons = reasons
        super().__init__("every CDC table is stopped: " + "; ".join(f"{t}: {r}" for t, r in sorted(reasons.items())))


@dataclass
class AppliedBatch:
    """Changelog rows just appended to bronze, with the per-partition offsets they span."""

    rows: pa.Table
    start: dict[int, int]  # progress before the batch (exclusive)
    end: dict[int, int]  # last offset of the batch

    def covers(self, ranges: dict[int, tuple[int, int]]) -> bool:
        """True if `ranges` are exactly this batch: same partitions, each (start, end]."""
        return set(ranges) == set(self.end) and all(ranges[p] == (self.start.get(p), self.end[p]) for p in ranges)


class CdcSink:
    """Reads the CDC records of one transport and applies them to the lake exactly once."""

    def __init__(self, config: SinkConfig, checkpoint: Callable[[str], None] | None = None) -> None:
        self.config = config
        #: called at named points of a batch ("bronze-commit:before", ...); tests inject crashes here
        self.checkpoint = checkpoint or (lambda _point: None)
        self.store = DeltaStore(config.storage_options)
        self.progress = Progress(self.store, config)
        self.dead_letters = DeadLetters(self.store, config)
        self.applier = Applier(self.store)
        self.blocked: dict[str, str] = {}
        self._transport: Transport | None = None
        self._out_of_range: list[OffsetOutOfRange] = []
        self._row_types: dict[str, pa.StructType] = {}
        self._keys: dict[str, list[str]] = {}
        self._partitions: dict[str, set[int]] = {}
        self._history_elsewhere = False  # follow mode: a second worker keeps history up to date
        self._delay_warned: dict[str, float] = {}
        self._stopped_reminder = 0.0
        self._positions_recorded = 0.0

    # ------------------------------------------------------------------ lifecycle
    @property
    def transport(self) -> Transport:
        if self._transport is None:
            self._transport = transport_for(
                self.config,
                positions=lambda source, partition: self.committed_position(source, partition),
                offsets=lambda source, partition: self.committed_offset(source, partition),
            )
        return self._transport

    def close(self) -> None:
        """Release the transport's clients and the applier's DuckDB connections (in that order)."""
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        self.applier.close()

    def __enter__(self) -> CdcSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ positions
    def discover(self, tables: Iterable[str] | None = None) -> dict[str, list[int]]:
        """Sources (with partitions) the transport can read; restricted to `tables` if given."""
        return self.transport.discover(tables)

    def committed_position(self, source: str, partition: int) -> Position | None:
        """The lake's position of a partition (bronze, or the dead letters); None: nothing yet."""
        return self.progress.position(source, partition)

    def committed_offset(self, source: str, partition: int) -> int | None:
        """Last offset of a partition that is in the lake (bronze or dead letters); None: nothing yet."""
        position = self.committed_position(source, partition)
        return position.offset if position is not None else None

    def _assign(self, sources: dict[str, list[int]]) -> None:
        self.transport.assign(sources)

    # ------------------------------------------------------------------ running
    def run_once(self, tables: Iterable[str] | None = None, timeout: float = 300.0) -> SinkReport:
        """Apply everything that was in the stream when it started, then return.

        Each partition must reach its end once since the start (latched): under steady load the
        partitions are rarely all at their end at the same moment, and the run would never finish.
        """
        started = time.monotonic()
        report = SinkReport()
        wanted = list(tables) if tables is not None else None
        self.catch_up(wanted, report)
        self._assign(self.discover(wanted))
        self.transport.start_run()
        while self.transport.assigned and not self.transport.all_reached():
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"CDC sink did not reach the end of its stream within {timeout:.0f} s")
            self._batch(report)
        self._record_positions(force=True)
        report.seconds = time.monotonic() - started
        return report

    def follow(
        self,
        stop: threading.Event,
        tables: Iterable[str] | None = None,
        on_batch: Callable[[SinkReport], None] | None = None,
        rediscover_seconds: float = 10.0,
    ) -> None:
        """Apply changes continuously (low latency) until `stop` is set.

        The transport being unreachable at any stage (start-up, catch-up, steady state) only
        delays: the step is retried with backoff (logged, rate-limited). A table that stops (an
        incompatible schema change, a position outside its log) is reported and the other tables
        keep flowing; when every followed table has stopped, the error is raised.

        History is kept up to date by a second worker that reads the new bronze rows (with its
        own Delta handles), so a batch's cycle is bronze + silver only and the current state
        becomes visible sooner. Its commits are fenced like every other.
        """
        wanted = list(tables) if tables is not None else None
        if not self._until_done(stop, "CDC catch-up", lambda: self.catch_up(wanted, SinkReport())):
            return
        self._out_of_range.clear()
        history = threading.Thread(
            target=self._follow_history_worker,
            args=(stop, wanted),
            name="cdc-history",
            daemon=True,
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
                    except TRANSIENT_ERRORS as exc:  # unreachable: keep the assignment, retry later
                        self._raise_if_fatal(exc)
                        self._delayed("CDC stream discovery", exc)
                    last_discovery = time.monotonic()
                report = SinkReport()
                started = time.monotonic()
                self._batch(report, self.config.follow_batch_seconds)
                self._record_positions()
                report.seconds = time.monotonic() - started
                self._raise_if_all_stopped()
                if report.messages and on_batch:
                    on_batch(report)
                if not report.messages:
                    stop.wait(0.05)
        finally:
            stop.set()
            if history.is_alive():
                history.join(60)

    def _follow_history_worker(self, stop: threading.Event, tables: list[str] | None) -> None:
        """The follow-mode history worker: its own sink (Delta handles, clients), closed in its thread."""
        with CdcSink(self.config, checkpoint=self.checkpoint) as history_sink:
            history_sink.follow_history(stop, tables)

    def follow_history(self, stop: threading.Event, tables: Iterable[str] | None = None) -> None:
        """Bring every table's history up to its bronze until `stop` is set.

        The transport being unreachable (partitions are looked up there) only delays a pass.
        """
        wanted = list(tables) if tables is not None else None
        while not stop.is_set():
            try:
                for table in self._table_names(wanted):
                    if not stop.is_set():
                        self._apply_downstream(table, None, ("history",))
            except TRANSIENT_ERRORS as exc:
                self._raise_if_fatal(exc)
                self._delayed("history catch-up", exc)
            stop.wait(self.config.follow_history_seconds)

    def _raise_if_all_stopped(self) -> None:
        """Follow mode ends only when none of its tables can flow any more (raising the first stop)."""
        if not self._out_of_range and not self.blocked:
            return
        followed = set(self.transport.tables_read())
        if followed and followed <= set(self.blocked):
            if self._out_of_range:
                raise self._out_of_range[0]
            raise TablesStopped(dict(self.blocked))
        now = time.monotonic()
        if now - self._stopped_reminder >= STOPPED_REMINDER_SECONDS:
            self._stopped_reminder = now
            for table, reason in sorted(self.blocked.items()):
                log.error("CDC table %s is stopped (the others keep flowing): %s", table, reason)

    @staticmethod
    def _raise_if_fatal(exc: Exception) -> None:
        if isinstance(exc, KafkaException) and fatal_exception(exc):
            raise KafkaFatalError(f"fatal Kafka error: {exc}") from exc

    def _until_done(self, stop: threading.Event, what: str, step: Callable[[], object]) -> bool:
        """Run `step` until it gets through the transport being unreachable (retried with backoff);
        False if `stop` was set first. Errors that waiting cannot cure are raised."""
        delay = 1.0
        while not stop.is_set():
            try:
                step()
                return True
            except TRANSIENT_ERRORS as exc:
                self._raise_if_fatal(exc)
                self._delayed(what, exc)
                stop.wait(delay)
                delay = min(delay * 2, 30.0)
        return False

    def _delayed(self, what: str, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._delay_warned.get(what, -KAFKA_WARNING_SECONDS) >= KAFKA_WARNING_SECONDS:
            self._delay_warned[what] = now
            transport = "Kinesis" if self.config.transport == "kinesis" else "Kafka"
            log.warning("%s delayed, %s unreachable (retrying): %s", what, transport, exc)

    def _table_names(self, tables: Iterable[str] | None) -> list[str]:
        """The tables given, or else every table the sink accepts that has a source."""
        if tables is not None:
            return list(tables)
        return self.transport.tables(self.discover())

    def _batch(self, report: SinkReport, window: float | None = None) -> None:
        """Poll one micro-batch (for at most `window` seconds) and apply it."""
        deadline = time.monotonic() + (window or self.config.max_batch_seconds)
        messages: list[Message] = []
        transport = self.transport
        while len(messages) < self.config.max_batch_messages and time.monotonic() < deadline:
            polled = transport.poll(0.2)
            for outside in transport.out_of_range():
                self._stop_out_of_range(outside, report)
            if not polled:
                if not transport.assigned or transport.all_reached() or messages:
                    break
                continue
            messages += polled
            if transport.all_reached():
                break
        if not messages:
            return
        report.batches += 1
        report.messages += len(messages)
        self.apply(messages, report)
        self.checkpoint("kafka-commit:before")
        transport.committed(messages, set(self.blocked))

    def _stop_out_of_range(self, error: OffsetOutOfRange, report: SinkReport) -> None:
        self.blocked[error.table] = str(error)
        self.transport.stop(error.table)
        self._out_of_range.append(error)
        report.table(error.table).error = str(error)
        log.error("%s", error)

    def _record_positions(self, force: bool = False) -> None:
        """On a stream shared by all tables, a table's position moves on even where it had no rows:
        record it (with the dead letters), so that a restart does not read those records again."""
        now = time.monotonic()
        if not force and now - self._positions_recorded < POSITION_RECORD_SECONDS:
            return
        self._positions_recorded = now
        positions = self.transport.positions_to_record()
        txns: dict[str, int] = {}
        for source, by_partition in positions.items():
            table = self.progress.topic_of(source).table
            if table in self.blocked:
                continue  # a stopped table keeps its position: its records must be read again
            txns.update(self.progress.txns(source, by_partition))
        if txns:
            self.dead_letters.write([], txns)

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
                source = self._source(parsed)
                self.dead_letters.write(dead, self.progress.txns(source, _last_positions(batch)))
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

    def _source(self, topic: CdcTopic) -> str:
        """The position source of a topic's records (for a topic naming no table: the topic itself)."""
        return self.transport.source(topic.table) if topic.table else topic.topic

    def _apply_current(self, work: tuple[CdcTopic, list[Message]]) -> tuple[TableReport, AppliedBatch | None]:
        """Bronze and silver of one table; an incompatible schema change stops only this table."""
        topic, batch = work
        try:
            return self._apply_table(topic, batch)
        except IncompatibleSchemaChange as exc:
            self.blocked[topic.table] = str(exc)
            self.transport.stop(topic.table)
            log.error("%s", exc)
            return TableReport(topic.table, error=str(exc)), None

    def _apply_table(self, topic: CdcTopic, batch: list[Message]) -> tuple[TableReport, AppliedBatch | None]:
        """Bronze, then silver; returns the report and what history needs (None: nothing to do)."""
        report = TableReport(topic.table)
        report.tombstones = sum(1 for m in batch if m.value is None)
        bronze_uri = self.config.uri("bronze", topic.table)
        source = self._source(topic)
        partitions = sorted({m.partition for m in batch})
        self._partitions.setdefault(topic.table, set()).update(partitions)

        def attempt(_number: int) -> AppliedBatch | None:
            bronze = self.store.open(bronze_uri)
            stored = {p: self.progress.stored(bronze, source, p) for p in partitions}
            before = {p: s.offset if s is not None else -1 for p, s in stored.items()}
            fresh = [m for m in batch if m.offset > before[m.partition]]
            if not fresh:
                return None  # another sink already wrote all of it
            known = self._row_type(topic.table, bronze)
            decoded = self._decode(topic, fresh, bronze, known, self._known_keys(topic.table, bronze))
            self.dead_letters.write(decoded.dead_letters)
            positions = _last_positions(fresh)
            txns = self.progress.txns(source, positions)
            if bronze is None and decoded.rows.num_rows == 0:
                # nothing valid yet: the dead-letter table records how far we got
                self.dead_letters.write([], txns)
            else:
                if bronze is not None and known is not None and widened_columns(known, decoded.row_type):
                    self.store.rewrite(bronze, bronze_schema(decoded.row_type), {})
                    bronze.update_incremental()
                self.checkpoint("bronze-commit:before")
                self.store.append(bronze_uri, bronze, decoded.rows, txns, operation="bronze-append")
                self.checkpoint("bronze-commit:after")
            self._row_types[topic.table] = decoded.row_type
            if decoded.key_columns:
                self._keys.setdefault(topic.table, decoded.key_columns)
            report.changes = decoded.rows.num_rows
            report.dead_letters = len(decoded.dead_letters)
            report.last_offsets = {p: pos.offset for p, pos in positions.items()}
            if decoded.rows.num_rows:
                report.latest_source_ts = pc.max(decoded.rows.column("source_ts")).as_py()
            return AppliedBatch(decoded.rows, before, report.last_offsets)

        fast = commit_fenced(f"bronze of {topic.table}", attempt)
        if not self.config.downstream:
            return report, None
        silver = self._apply_downstream(topic.table, fast, ("silver",)).get("silver", {})
        report.silver_inserted, report.silver_updated = silver.get("inserted", 0), silver.get("updated", 0)
        report.unavailable_values = silver.get("unavailable", 0)
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
        source = self.transport.source(table)
        partitions = sorted(self._partitions.get(table) or self.transport.partitions(table))
        results: dict[str, dict[str, int]] = {}
        appliers = {"silver": self.applier.apply_silver, "history": self.applier.apply_history}
        for layer in layers:
            apply = appliers[layer]
            uri = self.config.uri(layer, table)  # type: ignore[arg-type]

            def attempt(
                _number: int, layer: str = layer, apply: Callable[..., dict[str, int]] = apply, uri: str = uri
            ) -> dict[str, int]:
                target = self.store.open(uri)
                ranges = self.progress.pending_ranges(bronze, target, source, partitions)
                if not ranges:
                    return {}
                txns = {self.progress.app_id(source, p): hi for p, (_lo, hi) in ranges.items()}
                changes = fast.rows if fast is not None and fast.covers(ranges) else _read_bronze(bronze, topic, ranges)
                self.checkpoint(f"{layer}-merge:start")
                if changes.num_rows:
                    return apply(uri, shape, changes, txns, table=target)
                return self._record(uri, target, txns)

            result = commit_fenced(f"{layer} of {table}", attempt)
            compacted = self.store.open(uri)
            if compacted is not None:
                try:
                    self.store.compact_if_fragmented(compacted, self.config.compact_after_files)
                except CommitFailedError:
                    log.info("compaction of %s %s raced with another writer; next time", layer, table)
            if result.get("unavailable"):
                log.warning(
                    "%s %s: %s values of inserts/updates are unknown (Debezium sent its placeholder and no "
                    "earlier state holds them): stored as null and named in _cdc_unavailable",
                    layer,
                    table,
                    result["unavailable"],
                )
            results[layer] = result
        return results

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
            self.checkpoint("catch-up:table")
            applied = self._apply_downstream(table)
            silver, history = applied.get("silver", {}), applied.get("history", {})
            if silver or history:
                entry = report.table(table)
                entry.silver_inserted += silver.get("inserted", 0)
                entry.silver_updated += silver.get("updated", 0)
                entry.history_versions += history.get("versions", 0)
                entry.unavailable_values += silver.get("unavailable", 0)

    def behind_bronze(self, table: str, partitions: list[int]) -> dict[int, int]:
        """Per partition, the first bronze offset that silver or history has not applied yet."""
        return self.progress.behind_bronze(table, self.transport.source(table), partitions)

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
        """Drop a table's bronze, silver and history so the next run replays its stream from the start.

        The stream must still hold all of it (the embedded broker keeps everything; set unlimited
        retention on CDC topics elsewhere; a Kinesis stream keeps 24 h to 365 days), otherwise
        re-snapshot the table with Debezium instead.
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
        # positions the dead-letter table records for it must not skip the replay either
        partitions = self.transport.partitions(table)
        dead = self.store.open(self.config.dead_letter_uri)
        if dead is not None and partitions:
            beginning = {p: Position(-1) for p in partitions}
            self.dead_letters.write([], self.progress.txns(self.transport.source(table), beginning))
        self.blocked.pop(table, None)
        return dropped

    # ------------------------------------------------------------------ helpers
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


def _last_positions(messages: Iterable[Message]) -> dict[int, Position]:
    last: dict[int, Position] = {}
    for m in messages:
        current = last.get(m.partition)
        if current is None or m.offset > current.offset:
            last[m.partition] = Position(m.offset, m.sequence)
    return last


def _only_nulls(bronze: DeltaTable, column: str) -> bool:
    """True if no stored before/after image has a typed value for `column`: only nulls, or only the
    NaN/Infinity strings of a number column seen so far without a number (rare check: reads both images)."""
    images = bronze.to_pyarrow_dataset().to_table(columns=["before", "after"])
    for side in ("before", "after"):
        values = pc.drop_null(images.column(side).combine_chunks().field(column))
        if not len(values):
            continue
        tokens = pa.types.is_string(values.type) and pc.all(pc.is_in(values, pa.array(FLOAT_TOKENS))).as_py()
        if not tokens:
            return False
    return True


def _keys_from_bronze(bronze: DeltaTable) -> list[str]:
    """Primary key columns, from the Debezium key of a stored change."""
    sample = bronze.to_pyarrow_dataset().head(1, columns=["kafka_key"], filter=pc.field("kafka_key").is_valid())
    if sample.num_rows == 0:  # e.g. only TRUNCATEs so far (they have no key)
        return []
    return list(orjson.loads(sample.column("kafka_key")[0].as_py()))
