"""`bronze/cdc/_dead_letters`: what could not be applied, with the raw key and value and the reason.

Inserted once (MERGE on topic, partition, offset), in fenced commits. The table's commits also
carry positions for tables that have no bronze row for them (see `progress.py`).
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pyarrow as pa

from ingestion.cdc.config import SinkConfig
from ingestion.cdc.decode import DeadLetter
from ingestion.cdc.lake import DeltaStore, commit_fenced

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


class DeadLetters:
    """Writes dead letters (and positions) of one sink; one writer at a time within the process
    (tables are applied in parallel, and there is one dead-letter table)."""

    def __init__(self, store: DeltaStore, config: SinkConfig) -> None:
        self.store = store
        self.uri = config.dead_letter_uri
        self._lock = threading.Lock()

    def write(self, dead: list[DeadLetter], txns: dict[str, int] | None = None) -> None:
        """Insert `dead` once (merge on topic/partition/offset) in one commit carrying `txns`."""
        if not dead and not txns:
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

        def attempt(_number: int) -> None:
            table = self.store.open(self.uri)
            if table is None:
                self.store.append(self.uri, None, rows, txns or {}, operation="dead-letters")
            elif not dead:
                self.store.append(self.uri, table, DEAD_LETTER_SCHEMA.empty_table(), txns or {}, operation="progress")
            else:
                (
                    table.merge(
                        rows,
                        "t.topic = s.topic and t.partition = s.partition and t.offset = s.offset",
                        source_alias="s",
                        target_alias="t",
                        commit_properties=self.store.commit_properties(txns or {}, operation="dead-letters"),
                    )
                    .when_not_matched_insert_all()
                    .execute()
                )

        with self._lock:
            commit_fenced("dead letters", attempt)
