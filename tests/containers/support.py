"""Docker helpers of the container tests (tests/containers, and the testcontainers stack of tests/conftest.py).

Images are built once per run by scripts/containers.sh (cached layers: seconds when nothing changed).
Every container and volume the tests create carries the label ``io.ecom-lakehouse.test``, so
``scripts/containers.sh clean`` (the CI teardown) removes whatever a killed test run left behind.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import pytest

from lakehouse.stack.process import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "scripts" / "containers.sh"
TEST_LABEL = "io.ecom-lakehouse.test"
IMAGE = "ecom-lakehouse:local"
DEV_IMAGE = "ecom-lakehouse-dev:local"
POSTGRES_IMAGE = "ecom-lakehouse-postgres:local"
#: host ports of the compose stack (host networking), as PORT_VARIABLES in scripts/containers.sh
COMPOSE_PORT_VARIABLES = (
    "LAKEHOUSE_S3_PORT",
    "LAKEHOUSE_KAFKA_PORT",
    "LAKEHOUSE_POSTGRES_PORT",
    "LAKEHOUSE_API_PORT",
    "LAKEHOUSE_DAGSTER_PORT",
    "DAGSTER_CODE_SERVER_PORT",
)
#: where the production image's app user writes (Dockerfile), and its uid
APP_UID = 10001

T = TypeVar("T")


def free_compose_ports() -> dict[str, str]:
    """Each compose port variable set to a port nothing listens on, so stacks never collide."""
    return {variable: str(free_port()) for variable in COMPOSE_PORT_VARIABLES}


def run_script(
    *args: str, env: Mapping[str, str] | None = None, timeout: float = 1800
) -> subprocess.CompletedProcess[str]:
    """scripts/containers.sh with `env` on top of ours."""
    return subprocess.run(
        ["bash", str(SCRIPT), *args],
        cwd=REPO_ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def docker_client() -> Any:
    """A client of the running engine; the test fails (never skips) when there is none."""
    import docker

    try:
        client = docker.from_env(timeout=120)
        client.ping()
    except Exception as exc:
        pytest.fail(
            f"no Docker engine answers ({exc}). Start one with `scripts/containers.sh engine` (as root), "
            "or run `make test-containers`, which does."
        )
    return client


def build_images() -> None:
    """Build (or confirm, from the layer cache) the production, dev and PostgreSQL images."""
    result = run_script("build")
    if result.returncode != 0:
        pytest.fail(f"building the images failed:\n{result.stderr[-4000:]}")


def wait_until(check: Callable[[], T | None], timeout: float, what: str, detail: Callable[[], str] = str) -> T:
    """Poll `check` until it returns something truthy; fail naming `what` and `detail()` otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {timeout:.0f} s\n{detail()}")
        time.sleep(1)


def tail(container: Any, lines: int = 30) -> str:
    try:
        return container.logs(tail=lines).decode(errors="replace")
    except Exception as exc:  # the container is gone
        return f"(no logs: {exc})"


def exec_in(container: Any, command: list[str], user: str | None = None, timeout: float = 300) -> tuple[int, str]:
    """`docker exec` (via the CLI: the SDK's exec has no timeout); returns (exit code, stdout+stderr)."""
    argv = ["docker", "exec", *(["--user", user] if user else []), container.id, *command]
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return 124, f"timed out after {timeout} s: {' '.join(command)}"
    return result.returncode, result.stdout + result.stderr


def run_once(client: Any, image: str, command: list[str], session: str) -> str:
    """`docker run --rm` of one command: its output; the container goes with its anonymous volumes
    (docker-py's `run(remove=True)` leaves those of the image's VOLUMEs behind)."""
    container = client.containers.create(image, command, network_mode="none", labels={TEST_LABEL: session})
    try:
        container.start()
        code = container.wait(timeout=600)["StatusCode"]
        output = container.logs().decode(errors="replace")
        assert code == 0, f"{image} {command[:2]} exited {code}:\n{output[-3000:]}"
        return output
    finally:
        container.remove(force=True, v=True)


def remove_labelled(client: Any, session: str) -> None:
    """Remove every container and volume of this test session (idempotent)."""
    selector = {"label": f"{TEST_LABEL}={session}"}
    for container in client.containers.list(all=True, filters=selector):
        with contextlib.suppress(Exception):  # already gone
            container.remove(force=True, v=True)
    for volume in client.volumes.list(filters=selector):
        with contextlib.suppress(Exception):
            volume.remove(force=True)
