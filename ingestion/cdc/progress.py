"""Where the lake is in each stream: positions stored in the Delta log, never in the transport.

Each bronze commit carries one Delta `txn` per (sink, source, partition) whose version is the last
offset written; silver and history commits carry the bronze offsets they applied, so a crash
between the commits is repaired from bronze. Before a table has bronze (its first messages were all
dead letters), and for positions reached without a row for that table (a stream shared by all
tables, see `kinesis_transport.py`), the dead-letter table's commits carry them; the newer of the two
counts.

A source is what positions are counted in: a Kafka topic (one per table), or `<stream>/<table>` on
Kinesis, where one stream carries every table and the offset is the table's own record count in a
shard. Kinesis also needs the record's sequence number to read on from it: a decimal string of up
to 129 digits (128-bit and more), which no Delta `txn` version (an int64) can hold. It is stored
in the same commit as digits split into 18-digit chunks, each its own `txn` (`<id>#seq.digits`,
`<id>#seq.0`, `<id>#seq.1`...): atomic with the offset, read back exactly, ordered as integers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from deltalake import DeltaTable

from ingestion.cdc.config import CdcTopic, SinkConfig
from ingestion.cdc.lake import DeltaStore

#: digits per `txn` chunk of a sequence number (10^18 < 2^63)
SEQUENCE_CHUNK_DIGITS = 18
#: Kinesis sequence numbers match `0|([1-9]\d{0,128})`
MAX_SEQUENCE_DIGITS = 129


@dataclass(frozen=True, order=True)
class Position:
    """The last record of a partition/shard that a table has (offset; Kinesis also its sequence number)."""

    offset: int
    sequence: str | None = None

    @property
    def beginning(self) -> bool:
        """Nothing applied yet (e.g. after `cdc rebuild`): read from the start."""
        return self.offset < 0


def sequence_txns(app_id: str, sequence: str) -> dict[str, int]:
    """A sequence number as `txn` versions (see the module doc)."""
    if not sequence.isdigit() or len(sequence) > MAX_SEQUENCE_DIGITS or (len(sequence) > 1 and sequence[0] == "0"):
        raise ValueError(f"not a Kinesis sequence number: {sequence!r}")
    chunks = [sequence[i : i + SEQUENCE_CHUNK_DIGITS] for i in range(0, len(sequence), SEQUENCE_CHUNK_DIGITS)]
    txns = {f"{app_id}#seq.digits": len(sequence)}
    txns.update({f"{app_id}#seq.{i}": int(chunk) for i, chunk in enumerate(chunks)})
    return txns


def read_sequence(table: DeltaTable, app_id: str) -> str | None:
    digits = table.transaction_version(f"{app_id}#seq.digits")
    if not digits:
        return None
    parts = []
    for i, start in enumerate(range(0, digits, SEQUENCE_CHUNK_DIGITS)):
        width = min(SEQUENCE_CHUNK_DIGITS, digits - start)
        value = table.transaction_version(f"{app_id}#seq.{i}")
        if value is None:
            return None
        parts.append(str(value).zfill(width))
    return "".join(parts)


class Progress:
    """Reads and writes the positions of one sink (`config.sink_id`)."""

    def __init__(self, store: DeltaStore, config: SinkConfig) -> None:
        self.store = store
        self.config = config

    def app_id(self, source: str, partition: int) -> str:
        return self.config.txn_app_id(source, partition)

    def txns(self, source: str, positions: Mapping[int, Position | int]) -> dict[str, int]:
        """The `txn` versions recording `positions` (per partition) of `source` in one commit."""
        txns: dict[str, int] = {}
        for partition, position in positions.items():
            if isinstance(position, int):
                position = Position(position)
            app_id = self.app_id(source, partition)
            txns[app_id] = position.offset
            if position.sequence is not None:
                txns.update(sequence_txns(app_id, position.sequence))
            elif position.beginning:
                txns[f"{app_id}#seq.digits"] = 0  # forget a sequence number stored before
        return txns

    def read(self, table: DeltaTable | None, source: str, partition: int) -> Position | None:
        """The position one Delta table records (None: nothing recorded)."""
        if table is None:
            return None
        app_id = self.app_id(source, partition)
        offset = table.transaction_version(app_id)
        if offset is None:
            return None
        return Position(offset, read_sequence(table, app_id) if offset >= 0 else None)

    def stored(self, bronze: DeltaTable | None, source: str, partition: int) -> Position | None:
        """The table's position: what its bronze or the dead-letter table records, the newer one.

        On Kafka the dead letters only hold a table's position while it has none in bronze (a topic
        per table), so they are not read then (one read less per batch).
        """
        in_bronze = self.read(bronze, source, partition)
        if in_bronze is not None and self.config.transport == "kafka":
            return None if in_bronze.beginning else in_bronze
        found = [
            p
            for p in (in_bronze, self.read(self.store.open(self.config.dead_letter_uri), source, partition))
            if p is not None
        ]
        if not found:
            return None
        newest = max(found, key=lambda p: p.offset)
        return None if newest.beginning else newest

    def stored_for(self, table: str, source: str, partition: int) -> Position | None:
        bronze = self.store.open(self.config.uri("bronze", table)) if table else None
        return self.stored(bronze, source, partition)

    def position(self, source: str, partition: int) -> Position | None:
        """The lake's position of a source's partition; None: nothing applied yet. A source of a
        table the sink does not accept has positions only in the dead-letter table."""
        topic = self.topic_of(source)
        accepted = bool(topic.table) and self.config.accepts(topic) is None
        return self.stored_for(topic.table if accepted else "", source, partition)

    def topic_of(self, source: str) -> CdcTopic:
        """The Debezium topic a source carries (`<stream>/<table>` on a stream shared by all tables)."""
        if "/" in source:
            table = source.split("/", 1)[1]
            return CdcTopic(self.config.topic(table), self.config.schema, table)
        return self.config.parse_topic(source) or CdcTopic(source, "", "")

    def offset(self, table: DeltaTable | None, source: str, partition: int) -> int | None:
        return self.store.txn_version(table, self.app_id(source, partition))

    def pending_ranges(
        self, bronze: DeltaTable, target: DeltaTable | None, source: str, partitions: list[int]
    ) -> dict[int, tuple[int, int]]:
        """Per partition, the offsets (applied, in bronze] that `target` has not seen yet."""
        ranges = {}
        for partition in partitions:
            in_bronze = self.offset(bronze, source, partition)
            applied = self.offset(target, source, partition)
            applied = -1 if applied is None else applied
            if in_bronze is not None and in_bronze > applied:
                ranges[partition] = (applied, in_bronze)
        return ranges

    def behind_bronze(self, table: str, source: str, partitions: list[int]) -> dict[int, int]:
        """Per partition, the first bronze offset that silver or history has not applied yet.

        Non-empty after a run was killed between the bronze and the silver/history commits: a
        quiet table then has nothing new in the stream, yet needs a run to catch up.
        """
        bronze = self.store.open(self.config.uri("bronze", table))
        if bronze is None or not self.config.downstream:
            return {}
        behind: dict[int, int] = {}
        layers: tuple[Literal["silver", "history"], ...] = ("silver", "history")
        for layer in layers:
            target = self.store.open(self.config.uri(layer, table))
            for partition, (applied, _in_bronze) in self.pending_ranges(bronze, target, source, partitions).items():
                behind[partition] = min(applied + 1, behind.get(partition, applied + 1))
        return behind
