"""An S3/DynamoDB endpoint the stack does not run (LAKEHOUSE_S3_ENDPOINT_URL): used, checked, never started.

The session's running emulator plays the external one (a LocalStack or moto someone started themselves),
on the very port the stack would otherwise try to bind: the case that made `lakehouse demo` fail with
"cannot start: 127.0.0.1:<port> is already in use".
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from lakehouse.aws import list_bucket_names, list_table_names, s3_client
from lakehouse.settings import DYNAMODB_TABLES, Settings
from lakehouse.stack import LocalStack, StackError
from lakehouse.stack.process import free_port
from lakehouse.stack.resources import dynamodb_client
from tests.conftest import REPO_ROOT


def _external(settings: Settings, tmp_path: Path, endpoint: str | None = None) -> Settings:
    """Settings pointing at `endpoint` (default: the session's emulator) with its own state and names."""
    return settings.model_copy(
        update={
            "state_dir": tmp_path / "state",
            "s3_endpoint_url": endpoint or settings.s3_endpoint,
            "name_prefix": f"x-{uuid.uuid4().hex[:8]}",
        }
    )


def test_up_uses_the_external_endpoint_and_creates_its_resources(
    local_stack: LocalStack, settings: Settings, tmp_path: Path
) -> None:
    external = _external(settings, tmp_path)
    stack = LocalStack(external, services=["s3"])
    messages: list[str] = []
    (status,) = stack.up(log=messages.append)

    assert status.state == "external" and status.healthy and status.pid is None
    assert status.address == settings.s3_endpoint
    assert any("external endpoint" in m and "LAKEHOUSE_S3_ENDPOINT_URL" in m for m in messages), messages
    assert stack.processes.get("s3") is None, "nothing may be started for an external endpoint"
    assert set(external.buckets) <= set(list_bucket_names(s3_client(external)))
    tables = set(list_table_names(dynamodb_client(external)))
    assert {external.dynamodb_table(t) for t in DYNAMODB_TABLES} <= tables

    # status checks the resources there, like for our own emulator; down leaves the endpoint alone
    s3_client(external).delete_bucket(Bucket=external.artifacts_bucket)
    (missing,) = stack.status()
    assert missing.state == "external" and not missing.healthy and external.artifacts_bucket in missing.health
    stack.down(purge=True, log=lambda _m: None)
    assert next(s for s in local_stack.status() if s.name == "s3").healthy


def test_an_external_endpoint_that_does_not_answer_is_reported(settings: Settings, tmp_path: Path) -> None:
    dead = _external(settings, tmp_path, endpoint=f"http://127.0.0.1:{free_port()}")
    stack = LocalStack(dead, services=["s3"])
    (status,) = stack.status()
    assert status.state == "external" and not status.healthy and "not answering" in status.health

    stack.service("s3").start_timeout = 1.0  # the default waits 20 s for an endpoint still starting
    with pytest.raises(StackError) as err:
        stack.up(log=lambda _m: None)
    message = str(err.value)
    assert dead.s3_endpoint_url in message and "LAKEHOUSE_S3_ENDPOINT_URL" in message
    assert stack.processes.get("s3") is None


def test_cli_up_and_status_say_the_endpoint_is_external(
    local_stack: LocalStack, settings: Settings, tmp_path: Path
) -> None:
    """The parity run's failure: an emulator the stack did not start already listens on LAKEHOUSE_S3_PORT."""
    external = _external(settings, tmp_path)
    assert external.s3_port == settings.s3_port  # the port is taken by "someone else's" emulator
    env = {**os.environ, **external.to_env(), "COLUMNS": "200"}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "lakehouse.cli", *args]
        return subprocess.run(command, env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)

    up = cli("up", "--service", "s3")
    assert up.returncode == 0, up.stdout + up.stderr
    assert "external endpoint" in up.stdout and "already in use" not in up.stdout + up.stderr
    status = cli("status")
    s3_row = next(line for line in status.stdout.splitlines() if "s3 (external)" in line)
    assert "external" in s3_row and "ok" in s3_row
    assert status.returncode == 1  # this state directory's other services were never started
    assert all(name in status.stdout for name in ("postgres", "kafka", "api", "cdc"))
