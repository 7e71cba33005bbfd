"""`lakehouse cdc ...`: run the Debezium publisher and the Delta sink from the command line."""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from typing import Annotated

import typer
from rich.console import Console

from lakehouse.settings import get_settings

cdc_app = typer.Typer(
    help="Change data capture: Debezium publisher (to Kafka or Kinesis) and the exactly-once Delta sink."
)
console = Console()

#: named points of a sink batch where tests inject a crash (`--crash-at`) or a pause (`--pause-at`)
CRASH_POINTS = (
    "bronze-commit:before",
    "bronze-commit:after",
    "silver-merge:start",
    "history-merge:start",
    "kafka-commit:before",
    "catch-up:table",
)
#: `lakehouse cdc sink` exit codes: 1 = the run failed (an error, nothing more was applied);
#: 3 = the run applied what it could but a table is stopped (see the message and docs/cdc.md)
EXIT_FAILED = 1
EXIT_TABLE_STOPPED = 3


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


@cdc_app.command()
def publish() -> None:
    """Run Debezium's PostgreSQL connector (embedded) and publish changes to Kafka until stopped."""
    from ingestion.cdc.publisher import CdcPublisher

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = _stop_on_signals()
    publisher = CdcPublisher(get_settings())
    failure: list[BaseException] = []

    def run() -> None:
        try:
            publisher.run(stop)
        except BaseException as exc:  # reported by the main thread
            failure.append(exc)
        finally:
            stop.set()

    # the engine blocks inside Java; the main thread stays in Python so signals are handled
    engine = threading.Thread(target=run, name="debezium-engine")
    engine.start()
    while not stop.wait(0.5):
        pass
    engine.join(30)
    stats = publisher.handler.stats
    console.print(f"published {stats.records} records ({stats.tombstones} tombstones) in {stats.batches} batches")
    if failure:
        console.print(f"[red]publisher failed:[/] {failure[0]}")
        raise typer.Exit(EXIT_FAILED)
    # `lakehouse.cli.main` ends the process without shutting the embedded JVM down (process_exit.py)


@cdc_app.command()
def sink(
    follow: Annotated[bool, typer.Option("--follow", help="Keep applying changes until stopped.")] = False,
    table: Annotated[list[str] | None, typer.Option("--table", "-t", help="Only these tables.")] = None,
    crash_at: Annotated[
        str | None, typer.Option(hidden=True, help="Testing: SIGKILL this process at a named point.")
    ] = None,
    crash_delay: Annotated[float, typer.Option(hidden=True)] = 0.0,
    pause_at: Annotated[
        str | None, typer.Option(hidden=True, help="Testing: pause once at a named point (see --pause-seconds).")
    ] = None,
    pause_seconds: Annotated[float, typer.Option(hidden=True)] = 5.0,
) -> None:
    """Apply the CDC topics to bronze, silver and history Delta tables (exactly once).

    Exit codes: 0 everything applied; 3 a table is stopped (the others were applied); 1 the run failed.
    """
    from ingestion.cdc.config import SinkConfig
    from ingestion.cdc.sink import CdcSink, KafkaFatalError, OffsetOutOfRange, SinkReport, TablesStopped
    from ingestion.cdc.transport import TransportUnavailable

    for option, value in (("--crash-at", crash_at), ("--pause-at", pause_at)):
        if value is not None and value not in CRASH_POINTS:
            raise typer.BadParameter(f"{option} must be one of {', '.join(CRASH_POINTS)}")
    paused: set[str] = set()

    def checkpoint(point: str) -> None:
        if point == pause_at and point not in paused:
            paused.add(point)
            print(f"paused at {point} ({threading.current_thread().name})", flush=True)
            time.sleep(pause_seconds)
        if point != crash_at:
            return
        print(f"crash at {point} ({threading.current_thread().name})", flush=True)
        if crash_delay:
            threading.Timer(crash_delay, os.kill, (os.getpid(), signal.SIGKILL)).start()
        else:
            os.kill(os.getpid(), signal.SIGKILL)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = get_settings()
    config = SinkConfig.from_settings(settings)
    with CdcSink(config, checkpoint=checkpoint) as cdc_sink:
        if follow:
            stop = _stop_on_signals()

            def show(report: SinkReport) -> None:
                changes = sum(t.changes for t in report.tables.values())
                console.print(f"{time.strftime('%H:%M:%S')} applied {changes} changes in {report.seconds:.2f} s")

            try:
                cdc_sink.follow(stop, tables=table, on_batch=show)
            except (OffsetOutOfRange, TablesStopped) as exc:
                console.print(f"[red]every table is stopped:[/] {exc}")
                raise typer.Exit(EXIT_TABLE_STOPPED) from None
            except KafkaFatalError as exc:
                console.print(f"[red]sink failed:[/] {exc}")
                raise typer.Exit(EXIT_FAILED) from None
            return
        try:
            report = cdc_sink.run_once(tables=table)
        except (KafkaFatalError, TransportUnavailable, TimeoutError) as exc:
            console.print(f"[red]sink failed:[/] {exc}")
            raise typer.Exit(EXIT_FAILED) from None
    summary = {
        name: {
            "changes": t.changes,
            "silver_inserted": t.silver_inserted,
            "silver_updated": t.silver_updated,
            "history_versions": t.history_versions,
            "dead_letters": t.dead_letters,
            "error": t.error,
        }
        for name, t in sorted(report.tables.items())
    }
    console.print_json(
        json.dumps(
            {
                "messages": report.messages,
                "seconds": round(report.seconds, 2),
                "dead_letters": report.dead_letters,
                "tables": summary,
            }
        )
    )
    if any(t.error for t in report.tables.values()):
        raise typer.Exit(EXIT_TABLE_STOPPED)


@cdc_app.command()
def rebuild(table: Annotated[str, typer.Argument(help="Captured table, e.g. inventory.")]) -> None:
    """Drop a table's bronze/silver/history so the next sink run rebuilds it from its topic."""
    from ingestion.cdc.config import SinkConfig
    from ingestion.cdc.sink import CdcSink

    try:
        with CdcSink(SinkConfig.from_settings(get_settings())) as cdc_sink:
            dropped = cdc_sink.rebuild(table)
    except ValueError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    console.print("dropped: " + (", ".join(dropped) if dropped else "nothing (no lake tables yet)"))
    console.print("run `lakehouse cdc sink` to replay the topic")


@cdc_app.command()
def verify(
    table: Annotated[list[str] | None, typer.Option("--table", "-t", help="Only these tables.")] = None,
) -> None:
    """Compare silver with the PostgreSQL tables row by row; exit 1 if any differs."""
    from ingestion.cdc.verify import compare_table

    settings = get_settings()
    diffs = [compare_table(settings, name) for name in (table or settings.cdc_tables)]
    for diff in diffs:
        console.print(("[green]ok[/] " if diff.equal else "[red]differs[/] ") + diff.summary(), highlight=False)
    if not all(diff.equal for diff in diffs):
        raise typer.Exit(1)


@cdc_app.command("drop-slot")
def drop_slot() -> None:
    """Drop the replication slot and publication (they retain WAL while nothing consumes them)."""
    from ingestion.cdc.publisher import drop_slot as drop

    console.print("dropped" if drop(get_settings()) else "no slot to drop")


@cdc_app.command()
def topics(
    tail: Annotated[str | None, typer.Option("--tail", help="Print the last records of this topic.")] = None,
    count: Annotated[
        int, typer.Option("--count", "-n", min=1, max=10_000, help="Records per partition for --tail.")
    ] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="JSON output for scripts.")] = False,
) -> None:
    """The CDC topics: partitions, log start and end, the lake's stored positions, the sink's group
    offsets and lag; `--tail TOPIC` prints a topic's last records (the embedded stack's console)."""
    from lakehouse.status_commands import print_tail, print_topics, topics_rows

    settings = get_settings()
    try:
        if tail is not None:
            print_tail(console, settings, tail, count, as_json)
            return
        rows = topics_rows(settings)
    except (ValueError, NotImplementedError, TimeoutError) as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    if as_json:
        print(json.dumps(rows, indent=2))
    else:
        print_topics(console, rows)
