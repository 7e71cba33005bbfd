""".ci/run's teardown: whatever happens, it removes what the tests created and stops the dockerd it
started - and nothing else (not another engine, not objects the tests did not create).

Runs on a separate engine (its own socket, data and exec roots; `DOCKER_HOST`), so the engine of this
session is left alone. The CI run is interrupted the way a cancelled CI job is: SIGTERM to its
process group, while it builds the images.
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import tarfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .support import REPO_ROOT, TEST_LABEL, run_script, wait_until

EMPTY_IMAGE = "lakehouse-test-empty:local"


@pytest.fixture
def separate_engine(tmp_path: Path) -> Iterator[dict[str, str]]:
    """The environment of an engine of its own; whatever the test leaves running is stopped after it."""
    run_dir = Path(f"/run/lakehouse-test-{uuid.uuid4().hex[:8]}")  # short: containerd's socket lives below it
    env = {
        "DOCKER_HOST": f"unix://{run_dir}/docker.sock",
        "LAKEHOUSE_DOCKER_DATA_ROOT": str(tmp_path / "data"),
        "LAKEHOUSE_DOCKER_STATE": str(tmp_path / "state"),
        "LAKEHOUSE_CI_TIMINGS": str(tmp_path / "ci-timings.txt"),
    }
    try:
        yield env
    finally:
        run_script("engine-stop", env=env, timeout=120)
        shutil.rmtree(run_dir, ignore_errors=True)


def _docker(env: dict[str, str], *args: str, stdin: bytes | None = None) -> str:
    result = subprocess.run(
        ["docker", *args], env={**os.environ, **env}, input=stdin, capture_output=True, timeout=120, check=False
    )
    assert result.returncode == 0, (args, result.stderr.decode(errors="replace"))
    return result.stdout.decode()


def _empty_image(env: dict[str, str]) -> None:
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        tar.addfile(tarfile.TarInfo("marker"), io.BytesIO(b""))
    _docker(env, "import", "-", EMPTY_IMAGE, stdin=archive.getvalue())


def _leave_test_objects(env: dict[str, str]) -> None:
    """What a killed test session leaves: a labelled container with an anonymous volume, a compose
    project's container and named volume, a labelled volume - and one volume that is not the tests'."""
    _empty_image(env)
    _docker(env, "create", "--label", f"{TEST_LABEL}=killed", "-v", "/scratch", EMPTY_IMAGE, "/none")
    project = "com.docker.compose.project=lakehouse-test-killed"
    _docker(env, "volume", "create", "--label", project, "lakehouse-test-killed_state")
    _docker(env, "create", "--label", project, "-v", "lakehouse-test-killed_state:/state", EMPTY_IMAGE, "/none")
    _docker(env, "volume", "create", "--label", f"{TEST_LABEL}=killed", "lakehouse-test-killed-volume")
    _docker(env, "volume", "create", "someone-elses-volume")


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip() != ""
    except OSError:
        return False


@pytest.mark.timeout(900)
def test_an_interrupted_ci_run_cleans_up_and_stops_its_dockerd(
    separate_engine: dict[str, str], tmp_path: Path, docker_engine: Any
) -> None:
    env = separate_engine
    scratch_before = set(Path("/var/tmp").glob("lakehouse-base.*"))
    log_path = tmp_path / "ci.log"
    with log_path.open("w") as log:
        ci = subprocess.Popen(
            ["bash", ".ci/run", "containers"],
            cwd=REPO_ROOT,
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, as a CI runner's job
        )
    try:
        wait_until(lambda: "==> images" in log_path.read_text(), 300, "the engine step", log_path.read_text)
        dockerd = int((Path(env["LAKEHOUSE_DOCKER_STATE"]) / "dockerd.pid").read_text())
        assert _alive(dockerd)
        _leave_test_objects(env)
        time.sleep(2)  # well into the image build (the base image's debootstrap here)
        os.killpg(ci.pid, signal.SIGTERM)
        code = ci.wait(timeout=300)
    finally:
        if ci.poll() is None:
            os.killpg(ci.pid, signal.SIGKILL)
    output = log_path.read_text()
    assert code == 143, output[-3000:]
    assert "CI FAILED (exit 143)" in output and "---- timings" in output, output[-3000:]
    assert "removed what the tests created" in output, output[-3000:]
    assert not _alive(dockerd), "the teardown stops the dockerd the run started"
    socket = env["DOCKER_HOST"].removeprefix("unix://")
    left = subprocess.run(["pgrep", "-f", str(Path(socket).parent)], capture_output=True, text=True, check=False)
    assert left.stdout == "", f"processes of the stopped engine are left: {left.stdout}"
    assert set(Path("/var/tmp").glob("lakehouse-base.*")) == scratch_before, "the base build's scratch directory"
    docker_engine.ping()  # the engine of this session was not touched

    # what is left on that engine: start it again and look
    started = run_script("engine", env=env, timeout=180)
    assert started.returncode == 0, started.stderr
    assert _docker(env, "ps", "-aq") == "", "every test container is gone"
    assert _docker(env, "volume", "ls", "-q").split() == ["someone-elses-volume"]
    assert EMPTY_IMAGE in _docker(env, "image", "ls", "--format", "{{.Repository}}:{{.Tag}}"), "images stay (cache)"


def test_engine_stop_stops_only_a_dockerd_this_script_started(tmp_path: Path, docker_engine: Any) -> None:
    env = {"LAKEHOUSE_DOCKER_STATE": str(tmp_path)}
    result = run_script("engine-stop", env=env, timeout=60)
    assert result.returncode == 0 and "no dockerd started by this script" in result.stderr
    # a stale pid file whose process id now belongs to another program
    other = subprocess.Popen(["sleep", "60"])
    try:
        (tmp_path / "dockerd.pid").write_text(str(other.pid))
        result = run_script("engine-stop", env=env, timeout=60)
        assert result.returncode == 0 and "already stopped" in result.stderr
        assert other.poll() is None, "engine-stop killed a process that is not its dockerd"
    finally:
        other.kill()
        other.wait()
    docker_engine.ping()
