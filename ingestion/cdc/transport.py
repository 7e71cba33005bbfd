"""The seam between the sink and where CDC records come from: Kafka topics or a Kinesis stream.

A transport reads records from the lake's stored positions on (`progress.py`), reports when each
partition (Kafka) or shard (Kinesis) has reached its end once (so a run can end), reports
positions that lie outside the stream (the table stops: `OffsetOutOfRange`), skips stopped
tables, and learns when the lake has committed a batch (Kafka commits group offsets for lag
monitoring). Everything that is applying (decode, bronze, silver, history, dead letters, fenced
commits) is the sink's and is the same for every transport.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

from ingestion.cdc.config import SinkConfig
from ingestion.cdc.decode import Message
from ingestion.cdc.progress import Position

#: `(source, partition) -> the lake's position` (None: nothing applied yet)
PositionLookup = Callable[[str, int], Position | None]


class TransportUnavailable(RuntimeError):
    """The broker or stream cannot be reached right now (follow mode waits and retries)."""


class OffsetOutOfRange(RuntimeError):
    """The lake's position of a partition lies outside the stream's log (topic recreated or
    truncated, records expired from a Kinesis stream).

    Reading on from the earliest record would silently skip every record up to the stored
    progress (or re-apply others), so the table stops instead.
    """

    def __init__(self, table: str, topic: str, partition: int, position: int, detail: str) -> None:
        self.table, self.topic, self.partition, self.position = table, topic, partition, position
        super().__init__(
            f"offset out of range for {table}: the lake has applied {topic} [{partition}] up to offset "
            f"{position - 1}, but the {'stream' if '/' in topic else 'topic'} does not hold offset {position} "
            f"({detail}). The topic was probably recreated or truncated (or the records expired); the table "
            "is stopped so that no offset is skipped silently. Rebuild it from the stream with "
            f"`lakehouse cdc rebuild {table}` (or re-snapshot it with Debezium)."
        )


class Transport(Protocol):
    """What the sink needs from Kafka or Kinesis (see the module doc)."""

    #: "kafka" or "kinesis"
    kind: str

    def source(self, table: str) -> str:
        """The name positions of `table` are stored under (with the partition: the `txn` id)."""
        ...

    def discover(self, tables: Iterable[str] | None = None) -> dict[str, list[int]]:
        """What can be read: source → partitions/shards (restricted to `tables` if given)."""
        ...

    def tables(self, sources: dict[str, list[int]]) -> list[str]:
        """The accepted tables among discovered `sources`."""
        ...

    def tables_read(self) -> list[str]:
        """The tables whose records are being read (assigned)."""
        ...

    def partitions(self, table: str) -> list[int]:
        """The partitions/shards positions of `table` may be stored for."""
        ...

    def assign(self, sources: dict[str, list[int]]) -> None:
        """Start reading the partitions not read yet, each just after the lake's position."""
        ...

    def start_run(self) -> None:
        """A run starts: every partition must reach its end once from now on (stopped ones count as reached)."""
        ...

    def poll(self, timeout: float) -> list[Message]:
        """The next records (possibly none); raises `KafkaFatalError`-like errors that waiting cannot cure."""
        ...

    def out_of_range(self) -> list[OffsetOutOfRange]:
        """Positions found outside the stream since the last call (each stops its table)."""
        ...

    @property
    def assigned(self) -> bool:
        """Something is being read."""
        ...

    def all_reached(self) -> bool:
        """Every partition has reached its end at least once since `start_run`."""
        ...

    def stop(self, table: str) -> None:
        """Read nothing more for `table` (it is stopped); the partitions count as reached."""
        ...

    def committed(self, messages: list[Message], stopped: set[str]) -> None:
        """The lake holds `messages` (called after the Delta commits; failures lose nothing)."""
        ...

    def positions_to_record(self) -> dict[str, dict[int, Position]]:
        """Positions reached for sources that got no row in the lake (shared streams): source →
        partition → position; recorded with the dead letters. Empty for Kafka."""
        ...

    def pending(self, positions: PositionLookup, timeout: float = 10.0) -> dict[str, dict[int, int]]:
        """The sensor's question: table → partition → first offset the lake has not seen."""
        ...

    def close(self) -> None: ...


def transport_for(
    config: SinkConfig, positions: PositionLookup, offsets: Callable[[str, int], int | None]
) -> Transport:
    """The transport `config` names (`LAKEHOUSE_CDC_TRANSPORT`)."""
    if config.transport == "kinesis":
        from ingestion.cdc.kinesis_transport import KinesisTransport

        return KinesisTransport(config, positions)
    from ingestion.cdc.kafka_transport import KafkaTransport

    return KafkaTransport(config, offsets)
