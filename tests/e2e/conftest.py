"""End-to-end fixtures: `lakehouse demo --no-ui` once per session, on the session's stack."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from lakehouse.settings import Settings
from lakehouse.stack import LocalStack
from tests.conftest import REPO_ROOT


def lakehouse_cli(settings: Settings, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run the `lakehouse` CLI as a user would, configured by the session's settings."""
    return subprocess.run(
        [sys.executable, "-m", "lakehouse.cli", *args],
        env={**os.environ, **settings.to_env(), "COLUMNS": "200"},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="session")
def demo(local_stack: LocalStack, settings: Settings) -> Settings:
    """The whole lakehouse built by the demo command (stack, data, ingestion, dbt backfill, maintenance).

    The demo is given the session's emulator as an external endpoint (LAKEHOUSE_S3_ENDPOINT_URL), the way a
    user points it at a LocalStack or moto of their own: it must use it rather than start another one.
    """
    external = settings.model_copy(update={"s3_endpoint_url": settings.s3_endpoint})
    result = lakehouse_cli(external, "demo", "--no-ui", timeout=1800)
    assert result.returncode == 0, f"demo failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return settings
