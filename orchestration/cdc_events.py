"""The always-on CDC sink of production, reported to Dagster.

`python -m orchestration.cdc_events` runs what `lakehouse cdc sink --follow` runs (the exactly-once
`CdcSink.follow` of `ingestion/cdc`, which knows nothing of Dagster) and turns every applied batch
into runless materializations of the CDC assets, written to the Dagster instance
(`DAGSTER_HOME`): `bronze/cdc/<table>` and `silver/<table>` per batch, `silver/<table>_history` when
the sink's history worker has moved that table's Delta version. The UI then shows freshness and
lineage of the CDC assets without a Dagster run per batch (in ECS each run would be a new task).

Two production concerns live here, not in the sink:

* pacing: at most one batch per `--pace-seconds` (the sink's next batch takes everything that
  arrived meanwhile). Each batch costs S3 requests per touched table (Delta commits, MERGE), so the
  pace, not the change rate, bounds the bill (terraform/COSTS.md); it is also silver's freshness.
* reporting never stops the sink: if the Dagster database is unreachable the events are kept
  (merged per asset) and written with the next batch.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import dagster as dg
from deltalake import DeltaTable

from ingestion.cdc.config import SinkConfig
from ingestion.cdc.sink import CdcSink, SinkReport
from lakehouse.process_exit import run_and_exit
from lakehouse.settings import Settings, get_settings
from orchestration.defs.cdc import bronze_key, history_key, silver_key
from orchestration.defs.health import flowing_evaluation

log = logging.getLogger(__name__)

#: the `dagster/...` tag Dagster shows for who produced a runless event
REPORTER = "cdc-sink-service"


@dataclass
class _Pending:
    """Counts of one asset since its last written materialization."""

    changes: int = 0
    batches: int = 0
    metadata: dict[str, Any] = field(default_factory=dict)


class BatchReporter:
    """Turns applied sink batches into runless materializations (`report` is the instance's
    `report_runless_asset_event`; tests pass their own)."""

    def __init__(
        self,
        settings: Settings,
        config: SinkConfig,
        report: Callable[[dg.AssetMaterialization | dg.AssetCheckEvaluation], object],
        *,
        history_check_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.config = config
        self._report = report
        self._pending: dict[dg.AssetKey, _Pending] = {}
        self._history_versions: dict[str, int] = {}
        #: table -> when its last batch was applied; its history is looked at until it moved, or
        #: for a few history-worker intervals
        self._history_due: dict[str, float] = {}
        self._history_check_seconds = history_check_seconds
        self._last_history_check = float("-inf")
        self._clock = clock
        self._lock = threading.Lock()  # batches and the history timer report from two threads
        self.written = 0
        #: the `flowing` check per table: last state reported by this process, and those to write
        self._flowing: dict[str, bool] = {}
        self._checks: dict[str, dg.AssetCheckEvaluation] = {}

    # ---------------------------------------------------------------- batches
    def on_batch(self, report: SinkReport) -> None:
        """Record one applied batch and write what is pending (never raises)."""
        with self._lock:
            self._record(report)
            self._check_history()
            self._flush()

    def tick(self) -> None:
        """Between batches: the history worker commits after the batch that fed it."""
        with self._lock:
            self._check_history()
            self._flush()

    def flush(self) -> None:
        with self._lock:
            self._flush()

    def _record(self, report: SinkReport) -> None:
        now = datetime.now(UTC)
        for table, entry in report.tables.items():
            flowing = entry.error is None
            if (entry.error or entry.changes) and self._flowing.get(table) != flowing:
                # a stop (and the first applied batch of a table after a start) as the `flowing`
                # check: the alert sensor notifies once when it fails and once when it passes again
                self._flowing[table] = flowing
                self._checks[table] = flowing_evaluation(table, entry.error)
            if entry.error or not entry.changes:
                continue
            metadata: dict[str, Any] = {
                "changes_applied": entry.changes,
                "dead_letters": entry.dead_letters,
                "tombstones": entry.tombstones,
                "reported_by": REPORTER,
            }
            if entry.latest_source_ts is not None:
                metadata["latest_source_change"] = dg.MetadataValue.timestamp(entry.latest_source_ts)
                metadata["source_change_age_seconds"] = round((now - entry.latest_source_ts).total_seconds(), 1)
            if entry.last_offsets:
                metadata["positions"] = dg.MetadataValue.json({str(p): o for p, o in entry.last_offsets.items()})
            self._add(bronze_key(table), entry.changes, metadata, self.config.uri("bronze", table))
            silver = {**metadata, "rows_inserted": entry.silver_inserted, "rows_updated": entry.silver_updated}
            self._add(silver_key(table), entry.changes, silver, self.config.uri("silver", table))
            self._history_due[table] = self._clock()

    def _add(self, key: dg.AssetKey, changes: int, metadata: dict[str, Any], uri: str) -> None:
        pending = self._pending.setdefault(key, _Pending())
        pending.changes += changes
        pending.batches += 1
        pending.metadata = {**metadata, "table_uri": dg.MetadataValue.url(uri)}

    def _check_history(self) -> None:
        """The history worker commits on its own schedule, after the batch that fed it: report a
        table's history when its Delta version moved (checked at most every
        `history_check_seconds`, for up to 20 worker intervals after the table's last batch: a pass
        over every table can take long on a busy task)."""
        now = self._clock()
        if not self._history_due or now - self._last_history_check < self._history_check_seconds:
            return
        self._last_history_check = now
        patience = 20 * self.config.follow_history_seconds + 60
        for table, since in sorted(self._history_due.items()):
            uri = self.config.uri("history", table)
            version = _delta_version(uri, self.settings)
            if version is None or version == self._history_versions.get(table):
                if now - since > patience:
                    del self._history_due[table]  # the worker had nothing for it: stop looking
                continue
            del self._history_due[table]
            self._history_versions[table] = version
            pending = self._pending.setdefault(history_key(table), _Pending())
            pending.batches += 1
            pending.metadata = {
                "delta_version": version,
                "table_uri": dg.MetadataValue.url(uri),
                "reported_by": REPORTER,
            }

    def _flush(self) -> None:
        for table in list(self._checks):
            try:
                self._report(self._checks[table])
            except Exception as exc:  # the Dagster database is away: keep it for the next batch
                log.warning("could not report the flowing check of %s to Dagster (kept): %s", table, exc)
                return
            del self._checks[table]
        for key in list(self._pending):
            pending = self._pending[key]
            metadata = {**pending.metadata, "batches_since_last_event": pending.batches}
            if pending.changes:
                metadata["changes_applied"] = pending.changes
            try:
                self._report(dg.AssetMaterialization(asset_key=key, metadata=metadata))
            except Exception as exc:  # the Dagster database is away: keep it for the next batch
                log.warning("could not report %s to Dagster (kept for the next batch): %s", key.to_user_string(), exc)
                return
            del self._pending[key]
            self.written += 1

    @property
    def pending(self) -> dict[dg.AssetKey, int]:
        """Changes per asset not yet written to Dagster."""
        return {key: p.changes for key, p in self._pending.items()}


def _delta_version(uri: str, settings: Settings) -> int | None:
    try:
        return int(DeltaTable(uri, storage_options=settings.delta_storage_options).version())
    except Exception:  # not created yet
        return None


class Pacer:
    """At most one batch per `seconds`: waits out the rest of the interval after a batch."""

    def __init__(self, seconds: float, stop: threading.Event) -> None:
        self.seconds = seconds
        self.stop = stop

    def after_batch(self, report: SinkReport) -> float:
        wait = max(0.0, self.seconds - report.seconds)
        if wait:
            self.stop.wait(wait)
        return wait


def follow(
    settings: Settings,
    report: Callable[[dg.AssetMaterialization | dg.AssetCheckEvaluation], object],
    stop: threading.Event,
    *,
    pace_seconds: float,
    tables: Iterable[str] | None = None,
    history_check_seconds: float = 30.0,
) -> BatchReporter:
    """Run the sink until `stop` is set, reporting every batch; returns the reporter."""
    config = SinkConfig.from_settings(
        settings,
        # The history worker polls every table's Delta log even when nothing changed (S3 LIST
        # requests): SCD2 history may lag silver by a few paces, silver is what freshness is about.
        follow_history_seconds=max(5.0, 5 * pace_seconds),
    )
    reporter = BatchReporter(settings, config, report, history_check_seconds=history_check_seconds)
    pacer = Pacer(pace_seconds, stop)

    def on_batch(batch: SinkReport) -> None:
        reporter.on_batch(batch)
        pacer.after_batch(batch)

    def history_timer() -> None:
        while not stop.wait(max(1.0, history_check_seconds)):
            reporter.tick()

    timer = threading.Thread(target=history_timer, name="cdc-history-events", daemon=True)
    timer.start()
    with CdcSink(config) as sink:
        try:
            sink.follow(stop, tables=list(tables) if tables else None, on_batch=on_batch)
        finally:
            stop.set()
            timer.join(10)
            reporter.tick()
    return reporter


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pace-seconds", type=float, default=60.0, help="minimum seconds between two batches")
    parser.add_argument("--table", "-t", action="append", help="only these tables (default: all captured)")
    parser.add_argument("--history-check-seconds", type=float, default=30.0)
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    from ingestion.cdc.sink import KafkaFatalError, OffsetOutOfRange

    with dg.DagsterInstance.get() as instance:
        try:
            reporter = follow(
                get_settings(),
                instance.report_runless_asset_event,
                stop,
                pace_seconds=args.pace_seconds,
                tables=args.table,
                history_check_seconds=args.history_check_seconds,
            )
        except (OffsetOutOfRange, KafkaFatalError) as exc:
            log.error("CDC sink stopped: %s", exc)
            return 1
    log.info("CDC sink stopped; %d materializations reported", reporter.written)
    return 0


if __name__ == "__main__":
    run_and_exit(main)
