"""Clear errors from the container tooling (scripts/containers.sh): no engine, no root, a port taken, a
failed build step, an unhealthy service (named, with its last log lines)."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .support import SCRIPT, free_compose_ports, run_script

NO_ENGINE = {"DOCKER_HOST": "unix:///nonexistent/docker.sock"}


def _stack_env(session_id: str) -> dict[str, str]:
    env = {"COMPOSE_PROJECT_NAME": f"lakehouse-test-{session_id}-{uuid.uuid4().hex[:4]}"}
    env.update(free_compose_ports())
    return env


@pytest.mark.parametrize("command", ["build", "up", "build-image"])
def test_no_docker_engine(command: str) -> None:
    args = [command, "x:local", "."] if command == "build-image" else [command]
    result = run_script(*args, env=NO_ENGINE, timeout=60)
    assert result.returncode == 1
    assert "no Docker engine answers" in result.stderr and "scripts/containers.sh engine" in result.stderr


def test_starting_an_engine_needs_root() -> None:
    result = run_script(timeout=60, env=NO_ENGINE)  # usage: lists the commands
    assert result.returncode == 2 and "engine" in result.stderr
    # `nobody` may not read the checkout (a clone under `mktemp -d` is mode 0700): run a readable copy
    readable = Path(tempfile.mkdtemp(prefix="containers-sh-"))
    try:
        readable.chmod(0o755)
        script = readable / SCRIPT.name
        shutil.copy(SCRIPT, script)
        script.chmod(0o755)
        as_nobody = subprocess.run(
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "bash", str(script), "engine"],
            cwd=readable,
            env={"PATH": "/usr/local/bin:/usr/bin:/bin", **NO_ENGINE},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        shutil.rmtree(readable)
    assert as_nobody.returncode == 1, as_nobody.stderr
    assert "no Docker engine answers" in as_nobody.stderr and "not root" in as_nobody.stderr


def test_a_failed_build_step_is_shown(images: None, tmp_path: Path, docker_engine: Any) -> None:
    (tmp_path / "Dockerfile").write_text(
        "ARG BASE_IMAGE=scratch\nFROM ${BASE_IMAGE}\nRUN echo preparing\nRUN echo the-step-that-breaks && exit 3\n"
    )
    name = f"lakehouse-test-broken-{uuid.uuid4().hex[:6]}:local"
    result = run_script("build-image", name, str(tmp_path))
    assert result.returncode == 1
    assert f"building {name} failed" in result.stderr
    assert "the-step-that-breaks" in result.stderr and "exit code: 3" in result.stderr  # the failing step, its code
    assert ".lakehouse/docker/build-" in result.stderr  # where the full log is
    assert not docker_engine.images.list(name=name)


@pytest.fixture
def held_port() -> Iterator[int]:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


def test_up_refuses_a_port_in_use(images: None, session_id: str, held_port: int, docker_engine: Any) -> None:
    env = {**_stack_env(session_id), "LAKEHOUSE_POSTGRES_PORT": str(held_port)}
    result = run_script("up", env=env, timeout=120)
    assert result.returncode == 1
    assert f"127.0.0.1:{held_port} (LAKEHOUSE_POSTGRES_PORT) already in use" in result.stderr
    project = {"label": f"com.docker.compose.project={env['COMPOSE_PROJECT_NAME']}"}
    assert docker_engine.containers.list(all=True, filters=project) == [], "nothing may start"


def test_an_unhealthy_service_is_named_with_its_last_log_lines(images: None, session_id: str) -> None:
    """A broker its health check cannot reach (port 0: the broker listens on a port of the kernel's choice,
    the check asks for 127.0.0.1:0): `up` fails after the wait, names the service and shows what its health
    check printed. Not a privileged port: whether the app user may bind one depends on the host's
    net.ipv4.ip_unprivileged_port_start, and CI's machine let it."""
    env = {**_stack_env(session_id), "LAKEHOUSE_KAFKA_PORT": "0", "LAKEHOUSE_COMPOSE_WAIT_SECONDS": "45"}
    try:
        result = run_script("up", env=env, timeout=600)
        assert result.returncode == 1
        assert "service kafka is" in result.stderr, result.stderr[-3000:]
        kafka = result.stderr.split("service kafka is", 1)[1]
        first_line, rest = kafka.split("\n", 1)
        assert re.match(r" running \((starting|unhealthy)\)", first_line), first_line
        health = rest.split("its health check (kafka) last printed:", 1)[1]
        assert "127.0.0.1:0" in health, f"what the check printed says what is wrong: {health[:500]}"
        assert "did not become healthy" in result.stderr
    finally:
        down = run_script("down", env=env)
        assert down.returncode == 0, down.stderr
