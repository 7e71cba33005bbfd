"""terraform/ with the real Terraform CLI and AWS provider (offline; terraform_cli.py).

`fmt`, `init` against the committed lock files, and `validate` of every environment: what
Terraform itself rejects (unknown or missing arguments, wrong types, dependency cycles, providers
that cannot be installed) fails here, not on the first `terraform apply`.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .support import TERRAFORM_DIR
from .terraform_cli import AWS_PROVIDER_VERSION, Terraform

ENVIRONMENTS = ("local", "prod")


def test_terraform_is_formatted(terraform: Terraform) -> None:
    result = terraform.run(TERRAFORM_DIR, "fmt", "-check", "-recursive", "-diff", "-no-color", check=False)
    assert result.returncode == 0, f"run `terraform fmt -recursive terraform/`:\n{result.stdout[-4000:]}"


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_environment_validates(terraform: Terraform, pristine_terraform: Path, environment: str) -> None:
    report = terraform.json(pristine_terraform / "environments" / environment, "validate", "-json", "-no-color")
    problems = [
        f"{d['severity']}: {d['summary']} {d.get('detail', '')} ({d.get('range', {}).get('filename', '')})"
        for d in report["diagnostics"]
    ]
    assert report["valid"] and not problems, "\n".join(problems)


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_lock_file_pins_the_tested_provider(environment: str) -> None:
    """The committed lock file selects exactly the provider the tests run (init -lockfile=readonly
    in `pristine_terraform` fails when the lock file and the constraints disagree)."""
    lock = (TERRAFORM_DIR / "environments" / environment / ".terraform.lock.hcl").read_text()
    providers = re.findall(r'provider "([^"]+)" \{\s*version\s*=\s*"([^"]+)"', lock)
    assert providers == [("registry.terraform.io/hashicorp/aws", AWS_PROVIDER_VERSION)], providers
    assert re.search(r'"h1:[A-Za-z0-9+/=]{44}"', lock), "the lock file records no package hash"
