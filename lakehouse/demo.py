"""`lakehouse demo`: the whole lakehouse on this machine, from nothing to a green asset graph.

1. start the embedded stack (S3/DynamoDB emulator, Kafka, PostgreSQL, synthetic API, Debezium); with
   LAKEHOUSE_S3_ENDPOINT_URL set, the emulator is that external endpoint, checked but not started;
2. generate a starter data set in every source (only if PostgreSQL is still empty);
3. materialize the ingestion assets (CDC sink, dlt loaders), then every daily partition of the dbt
   models over the generated window as ONE run (single-run backfill), then Delta maintenance —
   all recorded in the local Dagster instance, so the UI shows them;
4. with the UI: keep a live stream of OLTP changes going (`simulate`) and serve `dagster dev` on
   127.0.0.1:<dagster_port> until Ctrl-C, then stop everything it started.
"""

from __future__ import annotations

import datetime as dt
import json
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from lakehouse.aws import s3_client
from lakehouse.dagster_instance import REPO_ROOT, dagster_env
from lakehouse.settings import Settings, child_env
from lakehouse.stack import LocalStack

Log = Callable[[str], None]
DEFINITIONS_MODULE = "orchestration.definitions"
DEMO_SEED = 42
DEMO_DAYS = 30


class DemoError(RuntimeError):
    """A demo step failed; the message names the step and where its log is."""


@dataclass(frozen=True)
class DemoWindow:
    start: dt.date
    days: int

    @property
    def partition_range(self) -> tuple[str, str]:
        last = self.start + dt.timedelta(days=self.days - 1)
        return self.start.isoformat(), last.isoformat()


def default_window(today: dt.date | None = None) -> DemoWindow:
    """The 30 days ending yesterday (UTC): complete days only, so every partition is final."""
    today = today or dt.datetime.now(dt.UTC).date()
    return DemoWindow(today - dt.timedelta(days=DEMO_DAYS), DEMO_DAYS)


def _window_file(settings: Settings) -> Path:
    return settings.state_path / "demo_window.json"


def record_window(settings: Settings, window: DemoWindow) -> None:
    path = _window_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"start": window.start.isoformat(), "days": window.days}))


def recorded_window(settings: Settings) -> DemoWindow:
    """The window the last `lakehouse demo` built; checks read it rather than recomputing
    default_window(), which moves at midnight UTC while the lake stays as built."""
    path = _window_file(settings)
    if not path.exists():
        return default_window()
    recorded = json.loads(path.read_text())
    return DemoWindow(dt.date.fromisoformat(recorded["start"]), int(recorded["days"]))


def _orders_exist(settings: Settings) -> bool:
    with psycopg.connect(settings.postgres_dsn) as conn:
        row = conn.execute(
            sql.SQL("select exists (select 1 from {}.orders)").format(sql.Identifier(settings.oltp_schema))
        ).fetchone()
    return bool(row and row[0])


#: sources the S3/DynamoDB emulator holds in memory (gone after `lakehouse down`, unlike PostgreSQL)
EMULATOR_SOURCES = ("carts", "sessions", "reviews", "clickstream", "partner_feeds")


def _landing_is_empty(settings: Settings) -> bool:
    listing = s3_client(settings).list_objects_v2(Bucket=settings.landing_bucket, MaxKeys=1)
    return not listing.get("Contents")


def generate_starter_data(settings: Settings, window: DemoWindow, log: Log) -> None:
    """A starter data set in every source; after a restart of the in-memory emulator, only the
    sources it held are generated again (PostgreSQL kept its data)."""
    from lakehouse.synthetic.entities import generate_starter

    if not _orders_exist(settings):
        result = generate_starter(settings, seed=DEMO_SEED, start_date=window.start, days=window.days)
        log(f"starter data: generated in {result.elapsed_seconds:.1f} s")
    elif _landing_is_empty(settings):
        generate_starter(settings, seed=DEMO_SEED, start_date=window.start, days=window.days, only=EMULATOR_SOURCES)
        log("starter data: PostgreSQL kept its data; DynamoDB and landing files generated again")
    else:
        log("starter data: already present, keeping it")


def _dagster(settings: Settings, *args: str, log: Log, step: str) -> None:
    log(f"dagster: {step}")
    command = [sys.executable, "-m", "dagster", *args]
    logfile = settings.state_path / "logs" / "demo-dagster.log"
    logfile.parent.mkdir(parents=True, exist_ok=True)
    with open(logfile, "ab") as out:
        out.write(f"\n--- {step}: {' '.join(command)}\n".encode())
        out.flush()
        result = subprocess.run(
            command, env=dagster_env(settings), cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT, check=False
        )
    if result.returncode != 0:
        raise DemoError(f"dagster step '{step}' failed (exit {result.returncode}); see {logfile}")


def materialize_everything(settings: Settings, window: DemoWindow, log: Log) -> None:
    """Ingestion, then all dbt partitions as one run, then maintenance: all in the Dagster instance."""
    from orchestration.selection import ingestion_selection, partitioned_selection

    start, end = window.partition_range
    _dagster(
        settings, "asset", "materialize", "-m", DEFINITIONS_MODULE, "--select", ingestion_selection(),
        log=log, step="ingest every source (CDC + dlt)",
    )  # fmt: skip
    _dagster(
        settings, "asset", "materialize", "-m", DEFINITIONS_MODULE, "--select", partitioned_selection(),
        "--partition-range", f"{start}...{end}",
        log=log, step=f"dbt models for {start}..{end} as one backfill run",
    )  # fmt: skip
    _dagster(
        settings, "asset", "materialize", "-m", DEFINITIONS_MODULE, "--select", "group:maintenance",
        log=log, step="Delta maintenance (OPTIMIZE + VACUUM)",
    )  # fmt: skip


def run_demo(settings: Settings, ui: bool, log: Log = print) -> None:
    window = default_window()
    record_window(settings, window)
    stack = LocalStack(settings)
    stack.up(log=log)
    generate_starter_data(settings, window, log)
    materialize_everything(settings, window, log)
    log('lakehouse built: try `lakehouse query "select * from fct_daily_revenue order by 1"`')
    if ui:
        serve_ui(settings, stack, log)


def serve_ui(settings: Settings, stack: LocalStack, log: Log) -> None:
    """Live changes + `dagster dev` in the foreground; Ctrl-C stops everything the demo started."""
    env = child_env(settings)
    simulator = subprocess.Popen(
        [sys.executable, "-m", "lakehouse.cli", "simulate", "--rate", "20", "--duration", "0"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://{settings.host}:{settings.dagster_port}"
    log(f"Dagster UI: {url}  (Ctrl-C stops the demo and the local stack)")
    webserver = subprocess.Popen(
        [
            sys.executable, "-m", "dagster", "dev", "-m", DEFINITIONS_MODULE,
            "-h", settings.host, "-p", str(settings.dagster_port),
        ],
        env=dagster_env(settings),
        cwd=REPO_ROOT,
        preexec_fn=_default_signals,
    )  # fmt: skip
    try:
        webserver.wait()
    except KeyboardInterrupt:
        log("stopping the demo...")
    finally:
        for proc in (webserver, simulator):
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
        stack.down(log=log)


def _default_signals() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
