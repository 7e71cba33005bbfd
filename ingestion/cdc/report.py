"""What a sink pass did, per table (Dagster materialization metadata, `lakehouse cdc sink`'s summary)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass
class TableReport:
    """What one sink pass did to one table."""

    table: str
    changes: int = 0
    silver_inserted: int = 0
    silver_updated: int = 0
    history_versions: int = 0
    dead_letters: int = 0
    tombstones: int = 0
    #: values of this run's changes stored as unknown (null, named in `_cdc_unavailable`)
    unavailable_values: int = 0
    #: last position per partition (Kafka) or shard (Kinesis) written to bronze
    last_offsets: dict[int, int] = field(default_factory=dict)
    latest_source_ts: datetime | None = None
    #: why the table is stopped (None: it flows)
    error: str | None = None

    def absorb(self, other: TableReport) -> None:
        self.changes += other.changes
        self.silver_inserted += other.silver_inserted
        self.silver_updated += other.silver_updated
        self.history_versions += other.history_versions
        self.dead_letters += other.dead_letters
        self.tombstones += other.tombstones
        self.unavailable_values += other.unavailable_values
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

    @property
    def stopped(self) -> dict[str, str]:
        """Tables that are stopped, with the reason."""
        return {name: t.error for name, t in self.tables.items() if t.error}
