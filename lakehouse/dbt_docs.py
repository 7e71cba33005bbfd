"""dbt's documentation site for `lakehouse docs`: `dbt docs generate`, then `dbt docs serve` on the
settings' host (127.0.0.1 by default), never on every interface.

The site is written to `<state dir>/dbt_docs` (not the repository's `target/`, which holds the
manifest Dagster loads), with the profile's target of the settings: locally the DuckDB warehouse,
so the catalog shows the real columns and types of what the last `dbt build` created.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from lakehouse.duck import extension_directory
from lakehouse.settings import Settings, child_env

REPO_ROOT = Path(__file__).resolve().parent.parent
#: the virtualenv's dbt, as orchestration.dbt_project.DBT_EXECUTABLE (not imported: core never
#: imports the Dagster layer)
DBT_EXECUTABLE = Path(sys.executable).parent / "dbt"
#: files `dbt docs serve` needs
SITE_FILES = ("index.html", "manifest.json", "catalog.json")


class DocsError(RuntimeError):
    """dbt could not build the documentation (the message carries dbt's output)."""


def docs_target_path(settings: Settings) -> Path:
    return settings.state_path / "dbt_docs"


def _dbt_command(settings: Settings, target_path: Path, *args: str) -> list[str]:
    return [
        str(DBT_EXECUTABLE), "docs", *args,
        "--project-dir", str(REPO_ROOT), "--profiles-dir", str(REPO_ROOT),
        "--target", settings.resolved_dbt_target,
        "--target-path", str(target_path), "--log-path", str(target_path / "logs"),
    ]  # fmt: skip


def generate_docs(settings: Settings, timeout: float = 900) -> Path:
    """`dbt docs generate` (manifest + catalog of the warehouse, plus a self-contained
    `static_index.html`); returns the directory holding the site."""
    target_path = docs_target_path(settings)
    target_path.mkdir(parents=True, exist_ok=True)
    extension_directory(settings)  # the local target loads DuckDB's extensions offline from there
    result = subprocess.run(
        _dbt_command(settings, target_path, "generate", "--static"),
        env=child_env(settings, DBT_SEND_ANONYMOUS_USAGE_STATS="false"),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    missing = [name for name in SITE_FILES if not (target_path / name).is_file()]
    if result.returncode != 0 or missing:
        output = result.stdout[-4000:] + result.stderr[-2000:]
        raise DocsError(f"dbt docs generate failed ({result.returncode}, missing {missing}):\n{output}")
    return target_path


def serve_docs(settings: Settings, port: int) -> subprocess.Popen[bytes]:
    """Start `dbt docs serve` on `settings.host:port` over the generated site; the caller waits
    for (or terminates) the process."""
    if not 1 <= port <= 65535:
        raise ValueError(f"port must be between 1 and 65535, got {port}")
    target_path = docs_target_path(settings)
    if not (target_path / "index.html").is_file():
        raise DocsError(f"no generated site in {target_path}: run generate_docs first")
    return subprocess.Popen(
        _dbt_command(settings, target_path, "serve", "--host", settings.host, "--port", str(port), "--no-browser"),
        env=child_env(settings, DBT_SEND_ANONYMOUS_USAGE_STATS="false"),
        cwd=REPO_ROOT,
    )
