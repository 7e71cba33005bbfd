"""CLI commands of the synthetic data service (`lakehouse generate`, `lakehouse simulate`).

Exit codes: 0 done, 1 a service could not be reached, 2 invalid input (nothing was changed).
"""

from __future__ import annotations

import json
import signal
import threading
from typing import Annotated, Any

import psycopg
import typer
from botocore.exceptions import BotoCoreError, ClientError
from rich.console import Console
from rich.table import Table

from lakehouse.settings import OLTP_TABLES, get_settings
from lakehouse.synthetic.common import GenerationResult, SyntheticDataError
from lakehouse.synthetic.entities import entity_names, generate
from lakehouse.synthetic.simulate import SimulationSummary, simulate

console = Console()
err_console = Console(stderr=True)


def _fail(message: str, code: int) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code)


def _unreachable(exc: Exception) -> typer.Exit:
    reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
    return _fail(f"a data source could not be reached ({reason}); is the stack up? (`lakehouse up`)", 1)


def _print_result(result: GenerationResult) -> None:
    table = Table("target", "written", title=f"generated {result.entity} (seed {result.seed})")
    for key, value in result.counts.items():
        table.add_row(key, f"{value:,}")
    console.print(table)
    window = f"{result.window.start_date} + {result.window.days} days"
    line = f"window {window}; {result.elapsed_seconds:.2f} s"
    if "orders" in result.counts and result.entity == "orders" and result.elapsed_seconds:
        line += f"; {result.counts['orders'] / result.elapsed_seconds:,.0f} orders/s"
    console.print(line)
    for step in result.steps:
        console.print(f"  {step['entity']}: {step['elapsed_seconds']:.2f} s", highlight=False)


def _print_summary(summary: SimulationSummary) -> None:
    table = Table("table", "inserts", "updates", "deletes", title="simulated changes (committed)")
    for name in OLTP_TABLES:
        ops = summary.changes[name]
        table.add_row(name, f"{ops['insert']:,}", f"{ops['update']:,}", f"{ops['delete']:,}")
    table.add_row(
        "total",
        f"{summary.totals('insert'):,}",
        f"{summary.totals('update'):,}",
        f"{summary.totals('delete'):,}",
        style="bold",
    )
    console.print(table)
    state = "interrupted" if summary.interrupted else "finished"
    console.print(
        f"{state}: {summary.total:,} changes in {summary.transactions:,} transactions over "
        f"{summary.elapsed_seconds:.1f} s = {summary.rate:,.0f} changes/s (seed {summary.seed})"
    )


def register(app: typer.Typer) -> None:
    """Add the synthetic-data commands to the `lakehouse` CLI."""

    @app.command("generate")
    def generate_command(
        entity: Annotated[str, typer.Argument(help="One of: " + ", ".join(entity_names()) + ".")],
        count: Annotated[
            int | None,
            typer.Option("--count", "-n", help="How many (default per entity); `starter`: a scale factor."),
        ] = None,
        seed: Annotated[int | None, typer.Option(help="RNG seed (random and printed if absent).")] = None,
        start_date: Annotated[
            str | None, typer.Option("--start-date", help="First day of the window, YYYY-MM-DD.")
        ] = None,
        days: Annotated[int | None, typer.Option(help="Days in the window (default 30, up to today).")] = None,
        malformed_rate: Annotated[
            float, typer.Option("--malformed-rate", help="clickstream/partner_feeds: broken record share.")
        ] = 0.0,
        as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    ) -> None:
        """Generate deterministic synthetic data into PostgreSQL, DynamoDB or the S3 landing bucket."""
        try:
            result = generate(get_settings(), entity, count, seed, start_date, days, malformed_rate)
        except SyntheticDataError as exc:
            raise _fail(str(exc), 2) from None
        except (psycopg.OperationalError, BotoCoreError, ClientError) as exc:
            raise _unreachable(exc) from None
        if as_json:
            typer.echo(json.dumps(result.to_dict()))
        else:
            _print_result(result)

    @app.command("simulate")
    def simulate_command(
        rate: Annotated[float, typer.Option(help="Target row changes per second.")] = 100.0,
        duration: Annotated[float, typer.Option(help="Seconds to run; 0 = until Ctrl-C.")] = 60.0,
        seed: Annotated[int | None, typer.Option(help="RNG seed.")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    ) -> None:
        """Stream live OLTP changes (orders, status moves, stock, prices, emails, deletes) for CDC."""
        stop = threading.Event()

        def on_sigint(_signum: int, _frame: Any) -> None:
            stop.set()

        def progress(summary: SimulationSummary) -> None:
            if not as_json:
                line = f"{summary.elapsed_seconds:6.1f} s: {summary.total:,} changes"
                err_console.print(line, highlight=False)

        previous = signal.signal(signal.SIGINT, on_sigint)
        try:
            summary = simulate(get_settings(), rate, duration, seed, stop=stop, progress=progress)
        except SyntheticDataError as exc:
            raise _fail(str(exc), 2) from None
        except psycopg.OperationalError as exc:
            raise _unreachable(exc) from None
        finally:
            signal.signal(signal.SIGINT, previous)
        if as_json:
            typer.echo(json.dumps(summary.to_dict()))
        else:
            _print_summary(summary)
