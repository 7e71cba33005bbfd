"""`lakehouse`: the one command people use (stack, synthetic data, demo, queries, CDC).

Core commands (`cdc ...`, `query`, `docs`) run wherever the package is installed, including the production
image. The local tooling's commands (`up`, `down`, `status`, `demo`, `api`, `generate`, `simulate`,
`stack ...`) come from `lakehouse.stack.commands` and need the optional `local` extra; without it
they are still listed and say how to get them.
"""

from __future__ import annotations

import csv
import importlib.metadata
import json
import sys
from enum import StrEnum
from typing import Annotated

import typer
from packaging.requirements import Requirement
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from lakehouse.cdc_commands import cdc_app
from lakehouse.process_exit import run_and_exit
from lakehouse.settings import get_settings

DISTRIBUTION = "ecommerce-lakehouse"
LOCAL_EXTRA = "local"
#: Top-level commands `lakehouse.stack.commands.register` adds (a unit test keeps the two in step).
LOCAL_COMMANDS = ("up", "down", "restart", "status", "demo", "api", "stack", "generate", "simulate")
LOCAL_EXTRA_HINT = (
    "install the `local` extra: `pip install 'ecommerce-lakehouse[local]'` or `uv sync --extra local` "
    "(`make install` does); the production image ships the core commands only (cdc, query, docs)"
)

console = Console()
err_console = Console(stderr=True)


def _fail(message: str, code: int = 1) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def missing_local_extra() -> list[str]:
    """Requirements of the `local` extra that are not installed (empty: the tooling can run)."""
    try:
        requirements = importlib.metadata.requires(DISTRIBUTION) or []
    except importlib.metadata.PackageNotFoundError:
        return [DISTRIBUTION]
    missing = []
    for line in requirements:
        requirement = Requirement(line)
        if requirement.marker is None or not requirement.marker.evaluate({"extra": LOCAL_EXTRA}):
            continue
        if requirement.marker.evaluate({"extra": ""}):
            continue  # a core requirement that merely carries a marker
        try:
            importlib.metadata.distribution(requirement.name)
        except importlib.metadata.PackageNotFoundError:
            missing.append(requirement.name)
    return missing


def docs(
    port: Annotated[int, typer.Option(help="Port of the docs site (on LAKEHOUSE_HOST, 127.0.0.1 by default).")] = 8580,
    serve: Annotated[bool, typer.Option("--serve/--no-serve", help="Serve the site after generating it.")] = True,
) -> None:
    """Generate dbt's documentation (models, columns, lineage, the warehouse's catalog) and serve it."""
    from lakehouse.dbt_docs import DocsError, generate_docs, serve_docs

    settings = get_settings()
    try:
        site = generate_docs(settings)
        console.print(f"dbt docs generated in {site} (single file: {site / 'static_index.html'})")
        if serve:
            console.print(f"serving on http://{settings.host}:{port} (Ctrl-C stops)")
            serve_docs(settings, port).wait()
    except (DocsError, ValueError) as exc:
        raise _fail(str(exc)) from None


class OutputFormat(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


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


def _register_unavailable(app: typer.Typer, missing: list[str]) -> None:
    """Local commands without the extra: listed in --help, and a clear error instead of a traceback."""
    for name in LOCAL_COMMANDS:

        def unavailable(ctx: typer.Context, _name: str = name) -> None:
            raise _fail(
                f"`lakehouse {_name}` is part of the local tooling, which this installation lacks "
                f"(missing: {', '.join(missing)}). To use it, {LOCAL_EXTRA_HINT}.",
                code=2,
            )

        app.command(
            name,
            help="Local tooling command: needs the `local` extra.",
            context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
            add_help_option=False,
        )(unavailable)


def build_app(local_tooling: bool | None = None) -> typer.Typer:
    """The CLI; `local_tooling=None` adds the tooling's commands when the `local` extra is installed."""
    cli = typer.Typer(help=__doc__.split("\n\n")[0], no_args_is_help=True, add_completion=False)
    missing = missing_local_extra() if local_tooling is None else ([] if local_tooling else ["local extra"])
    if missing:
        _register_unavailable(cli, missing)
    else:
        # the one place core reaches into the tooling (import-linter contract in pyproject.toml)
        from lakehouse.stack.commands import register

        register(cli)
    cli.add_typer(cdc_app, name="cdc")
    cli.command()(query)
    cli.command()(docs)
    return cli


app = build_app()


def main() -> None:
    """The `lakehouse` entry point: the command's own exit status, never a crash in interpreter teardown."""
    run_and_exit(app)


if __name__ == "__main__":
    main()
