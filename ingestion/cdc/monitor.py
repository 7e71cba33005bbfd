"""Which CDC tables need a sink run (for the Dagster sensor).

A table needs one when its stream holds changes the lake has not seen, or when its silver or
history is behind its bronze (a run killed between the bronze and the silver/history commits:
nothing new arrives, yet the table stays stale until a run repairs it from bronze).

The probe reads positions from the lake (`progress.py`) and asks the transport whether records
lie beyond them (`Transport.pending`); it builds no sink.
"""

from __future__ import annotations

from ingestion.cdc.config import SinkConfig
from ingestion.cdc.lake import DeltaStore
from ingestion.cdc.progress import Progress
from ingestion.cdc.transport import transport_for


def tables_with_new_data(config: SinkConfig, timeout: float = 10.0) -> dict[str, dict[int, int]]:
    """Tables that need a sink run: {table: {partition: first offset not yet in every layer}}.

    That is the next offset in the stream beyond bronze, or the first bronze offset that silver or
    history has not applied, whichever is smaller.
    """
    progress = Progress(DeltaStore(config.storage_options), config)

    def offset(source: str, partition: int) -> int | None:
        found = progress.position(source, partition)
        return found.offset if found is not None else None

    transport = transport_for(config, progress.position, offset)
    try:
        sources = transport.discover()
        pending: dict[str, dict[int, int]] = {}
        for table in transport.tables(sources):
            partitions = sources.get(transport.source(table)) or transport.partitions(table)
            for partition, first in progress.behind_bronze(table, transport.source(table), partitions).items():
                pending.setdefault(table, {})[partition] = first
        for table, offsets in transport.pending(progress.position, timeout).items():
            for partition, first in offsets.items():
                known = pending.setdefault(table, {})
                known[partition] = min(first, known.get(partition, first))
        return pending
    finally:
        transport.close()
