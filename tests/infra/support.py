"""Paths and helpers shared by the infrastructure tests."""

from __future__ import annotations

import subprocess
from pathlib import Path

from lakehouse.settings import DYNAMODB_TABLES, OLTP_TABLES, Settings

REPO_ROOT = Path(__file__).resolve().parents[2]
TERRAFORM_DIR = REPO_ROOT / "terraform"
DOCKER_DIR = REPO_ROOT / "docker"
INFRA_VENV = REPO_ROOT / ".venv-infra"
INFRA_REQUIREMENTS = REPO_ROOT / "tools" / "requirements-infra.txt"
#: the deployment profiles of environments/prod (variable `profile`, terraform/COSTS.md)
PROFILES = ("small", "scale")
CREATE_HINT = (
    "create it from the repository root with:\n"
    "  uv venv .venv-infra --python 3.11\n"
    "  uv pip install --python .venv-infra/bin/python -r tools/requirements-infra.txt"
)


def terraform_files() -> list[Path]:
    """All .tf files, plus terraform.tfvars files (values the name tests must honour)."""
    files = [*TERRAFORM_DIR.rglob("*.tf"), *TERRAFORM_DIR.rglob("terraform.tfvars")]
    return sorted(p for p in files if ".terraform" not in p.parts)


def run_tool(
    args: list[str], *, env: dict[str, str] | None = None, cwd: Path = REPO_ROOT, timeout: int = 600
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, check=False, cwd=cwd, env=env, timeout=timeout)


#: the bronze tables per source the catalog registers (bronze/<source>/<table>)
BRONZE_SOURCES = {
    "cdc": OLTP_TABLES,
    "dynamodb": DYNAMODB_TABLES,
    "landing": ("clickstream", "partner_feeds", "_objects"),  # _objects: the landing manifest dbt reads
    "marketing": ("campaigns", "ad_spend"),
}


def expected_delta_tables(settings: Settings) -> dict[tuple[str, str], str]:
    """(Glue database, table) => Delta location, by the settings' rules: what the catalog module
    must register."""
    databases = settings.glue_databases
    tables = {
        (databases["bronze"], f"{source}_{table}"): settings.lake_uri("bronze", source, table)
        for source, names in BRONZE_SOURCES.items()
        for table in names
    }
    for table in OLTP_TABLES:
        tables[(databases["silver"], table)] = settings.lake_uri("silver", table)
        tables[(databases["silver"], f"{table}_history")] = settings.lake_uri("silver", f"{table}_history")
    return tables
