"""The local tooling's commands: `lakehouse up | down | status | demo | api | stack ...`, plus the
synthetic-data commands (`generate`, `simulate`). They need the `local` extra (moto, the tansu broker,
FastAPI); `lakehouse.cli` adds them only when it is installed.
"""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from lakehouse.settings import Emulator, Settings, get_settings
from lakehouse.stack import LocalStack, ServiceStatus, StackError
from lakehouse.synthetic.commands import register as register_synthetic_commands

console = Console()
err_console = Console(stderr=True)

ServicesOption = Annotated[list[str] | None, typer.Option("--service", "-s", help="Only this service (repeatable).")]
EmulatorOption = Annotated[
    Emulator | None,
    typer.Option(
        "--emulator",
        help="S3/DynamoDB/Kinesis emulator to run: moto or localstack (default: LAKEHOUSE_EMULATOR, else moto). "
        "Ignored when LAKEHOUSE_S3_ENDPOINT_URL names an external endpoint.",
    ),
]


def _settings(emulator: Emulator | None = None) -> Settings:
    settings = get_settings()
    return settings.model_copy(update={"emulator": emulator}) if emulator else settings


def _fail(message: str, code: int = 1) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code)


def _print_status(statuses: list[ServiceStatus]) -> None:
    table = Table("service", "address", "state", "pid", "health", title="lakehouse local stack")
    for st in statuses:
        colour = "green" if st.healthy else ("yellow" if st.state == "stopped" else "red")
        name = f"{st.name} ({st.kind})" if st.kind else st.name
        table.add_row(name, st.address, f"[{colour}]{st.state}[/]", str(st.pid or "-"), st.health)
    console.print(table)


def up(services: ServicesOption = None, emulator: EmulatorOption = None) -> None:
    """Start the embedded stack (idempotent; restarts dead services) and wait until it answers."""
    try:
        statuses = LocalStack(_settings(emulator), services).up(log=console.print)
    except StackError as exc:
        raise _fail(str(exc)) from None
    _print_status(statuses)
    if not all(s.healthy for s in statuses):
        raise typer.Exit(1)


def down(
    services: ServicesOption = None,
    purge: Annotated[bool, typer.Option("--purge", help="Also delete all local state.")] = False,
) -> None:
    """Stop every process `up` started (and nothing else); `-s` stops only those services."""
    if services and purge:
        raise _fail("--purge deletes the whole local state: use it without --service", 2)
    try:
        LocalStack(get_settings(), services).down(purge=purge, log=console.print)
    except StackError as exc:
        raise _fail(str(exc)) from None


def restart(
    services: Annotated[list[str], typer.Argument(help="Services to restart, e.g. `cdc` or `kafka`.")],
) -> None:
    """Restart services on their own (and those that depend on them), then wait until they answer."""
    try:
        statuses = LocalStack(get_settings()).restart(services, log=console.print)
    except StackError as exc:
        raise _fail(str(exc)) from None
    _print_status(statuses)
    if not all(s.healthy for s in statuses):
        raise typer.Exit(1)


class StatusFormat(StrEnum):
    table = "table"
    json = "json"


def status(
    output: Annotated[
        StatusFormat, typer.Option("--format", "-f", help="table, or json for scripts.")
    ] = StatusFormat.table,
    lake: Annotated[bool, typer.Option("--lake/--no-lake", help="Also read the lake's health (live).")] = True,
) -> None:
    """Show each service and the lake's health (slot WAL, lag, dead letters, quarantine, stopped
    tables, last commits); exits 1 when a service is down or something in the lake is red."""
    from lakehouse.status_commands import print_lake, read_lake

    settings = get_settings()
    statuses = LocalStack(settings).status() if settings.is_local else []
    health = read_lake(settings) if lake else None
    red = not all(s.healthy for s in statuses) or (health is not None and health.red(settings))
    if output is StatusFormat.json:
        document: dict[str, object] = {
            "services": [
                {"name": s.name, "address": s.address, "state": s.state, "pid": s.pid, "health": s.health}
                for s in statuses
            ],
            "red": red,
        }
        if health is not None:
            document["lake"] = health.as_json(settings)
        sys.stdout.write(json.dumps(document, indent=2, default=str) + "\n")
    else:
        if statuses:
            _print_status(statuses)
        if health is not None:
            print_lake(console, health, settings)
    if red:
        raise typer.Exit(1)


def demo(
    no_ui: Annotated[bool, typer.Option("--no-ui", help="Build everything headless, then exit 0.")] = False,
    emulator: EmulatorOption = None,
) -> None:
    """Start the stack, generate data, materialize the whole asset graph, then serve the Dagster UI."""
    from lakehouse.demo import DemoError, run_demo

    try:
        run_demo(_settings(emulator), ui=not no_ui, log=console.print)
    except (DemoError, StackError) as exc:
        raise _fail(str(exc)) from None


def init_resources() -> None:
    """Create buckets, DynamoDB tables and the shop's PostgreSQL schema (used by docker-compose)."""
    from lakehouse.stack.resources import ensure_resources
    from lakehouse.synthetic.schema import ensure_schema

    settings = get_settings()
    created = ensure_resources(settings)
    console.print("created: " + (", ".join(created) if created else "nothing (all present)"))
    # Debezium's publication needs the captured tables to exist before the connector registers
    console.print("PostgreSQL schema: " + ("created" if ensure_schema(settings) else "already current"))


def install_localstack() -> None:
    """Install LocalStack into its own pinned environment (LAKEHOUSE_LOCALSTACK_HOME), if not current."""
    from lakehouse.stack.localstack_emulator import LocalStackInstall

    install = LocalStackInstall.of(get_settings())
    try:
        installed = install.install(log=console.print)
    except StackError as exc:
        raise _fail(str(exc)) from None
    if not installed:
        console.print(f"LocalStack: already installed in {install.home}")


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


def register(app: typer.Typer) -> None:
    """Add the local tooling's commands to the `lakehouse` CLI (see lakehouse.cli.LOCAL_COMMANDS)."""
    app.command()(up)
    app.command()(down)
    app.command()(restart)
    app.command()(status)
    app.command()(demo)
    app.command()(api)
    stack_app = typer.Typer(help="Lower-level stack commands.", no_args_is_help=True)
    stack_app.command("init-resources")(init_resources)
    stack_app.command("install-localstack")(install_localstack)
    app.add_typer(stack_app, name="stack")
    register_synthetic_commands(app)
