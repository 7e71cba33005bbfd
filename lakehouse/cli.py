"""`lakehouse`: the one command people use (stack, synthetic data, demo, queries, CDC)."""

from __future__ import annotations

import csv
import json
import sys
from enum import StrEnum
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from lakehouse.settings import get_settings
from lakehouse.stack import LocalStack, ServiceStatus, StackError

app = typer.Typer(help=__doc__, no_args_is_help=True, add_completion=False)
stack_app = typer.Typer(help="Lower-level stack commands.", no_args_is_help=True)
app.add_typer(stack_app, name="stack")

console = Console()
err_console = Console(stderr=True)


def _fail(message: str, code: int = 1) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code)


def _print_status(statuses: list[ServiceStatus]) -> None:
    table = Table("service", "address", "state", "pid", "health", title="lakehouse local stack")
    for st in statuses:
        colour = "green" if st.healthy else ("yellow" if st.state == "stopped" else "red")
        table.add_row(st.name, st.address, f"[{colour}]{st.state}[/]", str(st.pid or "-"), st.health)
    console.print(table)


ServicesOption = Annotated[list[str] | None, typer.Option("--service", "-s", help="Only this service (repeatable).")]


@app.command()
def up(services: ServicesOption = None) -> None:
    """Start the embedded stack (idempotent; restarts dead services) and wait until it answers."""
    try:
        statuses = LocalStack(get_settings(), services).up(log=console.print)
    except StackError as exc:
        raise _fail(str(exc)) from None
    _print_status(statuses)
    if not all(s.healthy for s in statuses):
        raise typer.Exit(1)


@app.command()
def down(
    purge: Annotated[bool, typer.Option("--purge", help="Also delete all local state.")] = False,
) -> None:
    """Stop every process `up` started (and nothing else)."""
    LocalStack(get_settings()).down(purge=purge, log=console.print)


@app.command()
def status() -> None:
    """Show each service, its address and health; exits 1 unless all are healthy."""
    statuses = LocalStack(get_settings()).status()
    _print_status(statuses)
    if not all(s.healthy for s in statuses):
        raise typer.Exit(1)


@app.command()
def demo(
    no_ui: Annotated[bool, typer.Option("--no-ui", help="Build everything headless, then exit 0.")] = False,
) -> None:
    """Start the stack, generate data, materialize the whole asset graph, then serve the Dagster UI."""
    from lakehouse.demo import DemoError, run_demo

    try:
        run_demo(get_settings(), ui=not no_ui, log=console.print)
    except (DemoError, StackError) as exc:
        raise _fail(str(exc)) from None


@stack_app.command("init-resources")
def init_resources() -> None:
    """Create buckets, DynamoDB tables and the shop's PostgreSQL schema (used by docker-compose)."""
    from lakehouse.stack.resources import ensure_resources
    from lakehouse.synthetic.schema import ensure_schema

    settings = get_settings()
    created = ensure_resources(settings)
    console.print("created: " + (", ".join(created) if created else "nothing (all present)"))
    # Debezium's publication needs the captured tables to exist before the connector registers
    console.print("PostgreSQL schema: " + ("created" if ensure_schema(settings) else "already current"))


@app.command()
def api(
    host: Annotated[str | None, typer.Option(help="Bind address (default: LAKEHOUSE_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: LAKEHOUSE_API_PORT).")] = None,
) -> None:
    """Serve the synthetic data API (OpenAPI docs at /docs)."""
    import uvicorn

    from lakehouse.synthetic.api import create_app

    settings = get_settings()
    uvicorn.run(
        create_app(settings),
        host=host or settings.host,
        port=port or settings.api_port,
        log_level="info",
    )


from lakehouse.cdc_commands import cdc_app  # noqa: E402
from lakehouse.synthetic.commands import register as _register_synthetic_commands  # noqa: E402

app.add_typer(cdc_app, name="cdc")
_register_synthetic_commands(app)


class OutputFormat(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


@app.command()
def query(
    sql: Annotated[
        str, typer.Argument(help="SQL over marts (e.g. fct_orders), silver.<table>, bronze.<source>_<table>.")
    ],
    output: Annotated[OutputFormat, typer.Option("--format", "-f", help="Output format.")] = OutputFormat.table,
) -> None:
    """Run SQL on the local lakehouse and print the result."""
    from lakehouse.query import QueryError, run_query

    try:
        result = run_query(get_settings(), sql)
    except QueryError as exc:
        raise _fail(str(exc)) from None
    if output is OutputFormat.csv:
        writer = csv.writer(sys.stdout)
        writer.writerow(result.columns)
        writer.writerows(result.rows)
    elif output is OutputFormat.json:
        records = [dict(zip(result.columns, row, strict=True)) for row in result.rows]
        sys.stdout.write(json.dumps(records, default=str, indent=2) + "\n")
    else:
        table = Table(*result.columns)
        for row in result.rows:
            table.add_row(*("" if v is None else str(v) for v in row))
        console.print(table)
        console.print(f"{len(result.rows)} row(s)", style="dim")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
