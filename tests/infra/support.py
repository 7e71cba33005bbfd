"""Paths and helpers shared by the infrastructure tests."""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
TERRAFORM_DIR = REPO_ROOT / "terraform"
DOCKER_DIR = REPO_ROOT / "docker"
INFRA_VENV = REPO_ROOT / ".venv-infra"
INFRA_REQUIREMENTS = REPO_ROOT / "tools" / "requirements-infra.txt"
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
